// Package restart is the client side of a test in which a server of the
// acknowledgement protocol (see PROTOCOL.md) restarts itself under load: a
// new process takes over the listening sockets, and the old one stops
// accepting and shuts down gracefully, answering every message it has
// received and closing each connection with a FIN. The clients here count
// everything a restart could make them see, so that a test can tell
// whether any client saw one.
//
// Two kinds of clients run until Stop:
//
//   - Churners loop as fast as they can: connect, write one message, read
//     its answer, close. A refused dial, a reset, an EOF before the answer
//     (lost), a timeout, a wrong byte: each is counted.
//   - Long-lived clients stay connected and pipeline: a burst of
//     Config.Burst messages in one write, then its answers, then a pause of
//     about Config.Think. When the server ends a connection with a FIN
//     (LongEnded) the client connects again and goes on.
//
// A long-lived client cannot know in advance that the server is about to
// close: a burst it writes while the server's FIN is on its way crosses
// it. The server never read that burst, so the protocol owes it nothing,
// and the client sees EOF before any of its answers. Such a burst is
// counted as LongCrossed, with LongEnded, and is not a loss. To keep the
// window small, a client looks for a FIN that has already arrived
// (without blocking) before each burst and reconnects if it finds one. An
// EOF after some but not all of a burst's answers is a loss (LongPartial):
// one write arrives whole on loopback, so the server read all of it and
// answered only part. The counting has one blind spot: a server that
// reads a whole burst and closes without answering any of it looks like a
// crossing; a restart test can bound LongCrossed against LongEnded.
//
// Everything is bounded: every dial, and every exchange (a churner's
// write and read, a burst's write and reads), has a deadline of
// Config.Timeout, and Stop returns once the exchanges in progress end, at
// most about Timeout later. The counters are atomic: Snapshot is cheap and
// may be called at any time, from any goroutine.
package restart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// answer is the bytes owed for every message, written again from
// PROTOCOL.md.
const answer = "I recieved your message\n"

// Defaults, used where a Config field is zero.
const (
	DefaultChurners  = 32
	DefaultLongLived = 200
	DefaultBurst     = 8
	DefaultThink     = 20 * time.Millisecond
	DefaultTimeout   = 5 * time.Second
)

// maxErrors is how many example failures a Result keeps.
const maxErrors = 10

// pauseAfterFailure is a client's pause after a failed dial or exchange:
// once the server is gone, or resets everything, its clients do not spin.
const pauseAfterFailure = 10 * time.Millisecond

// Config describes the workload. Zero fields take the defaults.
type Config struct {
	// Addr is the server's address, host:port.
	Addr string
	// Churners is the number of clients that connect, send one message,
	// read its answer and close, in a loop (default 32).
	Churners int
	// LongLived is the number of clients that stay connected and
	// pipeline bursts of messages (default 200).
	LongLived int
	// Burst is the number of messages in a long-lived client's burst, all
	// sent in one write (default 8).
	Burst int
	// Think is the mean pause between a long-lived client's bursts; each
	// pause is drawn between Think/2 and 3*Think/2 (default 20ms).
	Think time.Duration
	// Timeout bounds each dial and each exchange (default 5s).
	Timeout time.Duration
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		return c, errors.New("restart: no server address")
	}
	if c.Churners == 0 {
		c.Churners = DefaultChurners
	}
	if c.LongLived == 0 {
		c.LongLived = DefaultLongLived
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.Think == 0 {
		c.Think = DefaultThink
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.Churners < 0, c.LongLived < 0, c.Burst < 0:
		return c, errors.New("restart: negative client or message count")
	case c.Think < 0, c.Timeout < 0:
		return c, errors.New("restart: negative pause or timeout")
	}
	return c, nil
}

// Result is what the clients did and saw so far.
type Result struct {
	// ChurnConns counts the churners' connections, ChurnAnswered those
	// whose answer came whole and right.
	ChurnConns, ChurnAnswered int64
	// ChurnRefused counts the churners' dials refused (ECONNREFUSED),
	// ChurnResets their connections reset (ECONNRESET, EPIPE), even as
	// they were made, ChurnLost those the server ended before the answer
	// came whole, and ChurnOtherErrors any other failure: a timeout,
	// another dial error.
	ChurnRefused, ChurnResets, ChurnLost, ChurnOtherErrors int64

	// LongConns counts the long-lived clients' connections, LongMessages
	// the messages they sent that were answered.
	LongConns, LongMessages int64
	// LongEnded counts the long-lived connections the server ended
	// cleanly, with a FIN after every answer owed; LongCrossed those of
	// them whose last burst crossed the FIN (see the package comment).
	LongEnded, LongCrossed int64
	// LongRefused, LongResets and LongOtherErrors count the long-lived
	// clients' failures as for the churners.
	LongRefused, LongResets, LongOtherErrors int64
	// LongPartial counts the bursts of which some answers, not all, came
	// before EOF. LongUnanswered counts the messages written whose answers
	// never came, whatever ended the connection (a reset, a timeout, an
	// EOF after a partial burst), crossed bursts excepted.
	LongPartial, LongUnanswered int64

	// BadAnswers counts the connections, of either kind, on which a byte
	// came that was not the one owed: a wrong answer, or bytes nothing
	// asked for. The connection is dropped at the first such byte.
	BadAnswers int64

	// Stuck is the number of clients Stop gave up waiting for. Every
	// dial and exchange has a deadline, so it is 0 unless the machine is
	// starved.
	Stuck int64

	// Errors holds an example of each kind of failure, the first ones
	// seen, at most 10.
	Errors []string
}

// Failures lists what in r breaks "nothing lost": refused dials, resets,
// lost or partial answers, unanswered messages, wrong bytes, any other
// error. An empty list means the clients saw nothing wrong; r.Errors has
// examples.
func (r Result) Failures() []string {
	var f []string
	add := func(n int64, what string) {
		if n > 0 {
			f = append(f, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(r.ChurnRefused, "churner dials refused")
	add(r.ChurnResets, "churner connections reset")
	add(r.ChurnLost, "churner connections ended before the answer")
	add(r.ChurnOtherErrors, "other churner failures (timeouts, dial errors)")
	add(r.LongRefused, "long-lived dials refused")
	add(r.LongResets, "long-lived connections reset")
	add(r.LongPartial, "bursts answered in part before EOF")
	add(r.LongUnanswered, "long-lived messages unanswered")
	add(r.LongOtherErrors, "other long-lived failures (timeouts, dial errors)")
	add(r.BadAnswers, "connections that read bytes other than the answer")
	add(r.Stuck, "clients still running after Stop")
	return f
}

// String sums r up on one line.
func (r Result) String() string {
	return fmt.Sprintf("churners: %d connections, %d answered, %d refused, %d reset, %d lost, %d other; "+
		"long-lived: %d connections, %d messages answered, %d ended (%d crossed), %d refused, %d reset, "+
		"%d partial, %d unanswered, %d other; %d bad answers",
		r.ChurnConns, r.ChurnAnswered, r.ChurnRefused, r.ChurnResets, r.ChurnLost, r.ChurnOtherErrors,
		r.LongConns, r.LongMessages, r.LongEnded, r.LongCrossed, r.LongRefused, r.LongResets,
		r.LongPartial, r.LongUnanswered, r.LongOtherErrors, r.BadAnswers)
}

// counters are a Result's counts while the clients run.
type counters struct {
	churnConns, churnAnswered, churnRefused, churnResets, churnLost, churnOther atomic.Int64

	longConns, longMessages, longEnded, longCrossed                 atomic.Int64
	longRefused, longResets, longOther, longPartial, longUnanswered atomic.Int64

	badAnswers atomic.Int64
}

// Run is a started workload. Its methods may be called concurrently.
type Run struct {
	cfg     Config
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	running atomic.Int64 // clients not yet returned
	n       counters

	mu     sync.Mutex
	kinds  map[string]bool // kinds of failure with an example kept
	errors []string
	stuck  int64

	stop sync.Once
}

// Start validates cfg and starts the clients. They run until Stop, or
// until ctx ends; then Stop still waits for them.
func Start(ctx context.Context, cfg Config) (*Run, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Run{cfg: cfg, cancel: cancel, kinds: make(map[string]bool)}
	start := func(f func()) {
		r.running.Add(1)
		r.wg.Go(func() {
			defer r.running.Add(-1)
			f()
		})
	}
	for i := range cfg.Churners {
		start(func() { r.churner(ctx, i) })
	}
	for i := range cfg.LongLived {
		start(func() { r.longLived(ctx, i) })
	}
	return r, nil
}

// Snapshot returns the counts so far.
func (r *Run) Snapshot() Result {
	n := &r.n
	res := Result{
		ChurnConns:       n.churnConns.Load(),
		ChurnAnswered:    n.churnAnswered.Load(),
		ChurnRefused:     n.churnRefused.Load(),
		ChurnResets:      n.churnResets.Load(),
		ChurnLost:        n.churnLost.Load(),
		ChurnOtherErrors: n.churnOther.Load(),
		LongConns:        n.longConns.Load(),
		LongMessages:     n.longMessages.Load(),
		LongEnded:        n.longEnded.Load(),
		LongCrossed:      n.longCrossed.Load(),
		LongRefused:      n.longRefused.Load(),
		LongResets:       n.longResets.Load(),
		LongOtherErrors:  n.longOther.Load(),
		LongPartial:      n.longPartial.Load(),
		LongUnanswered:   n.longUnanswered.Load(),
		BadAnswers:       n.badAnswers.Load(),
	}
	r.mu.Lock()
	res.Stuck = r.stuck
	res.Errors = append([]string(nil), r.errors...)
	r.mu.Unlock()
	return res
}

// Stop stops the clients and returns the final counts. A client stops
// between exchanges: one waiting for an answer waits for it, up to
// Config.Timeout. Stop gives up on clients still running 2*Timeout+1s
// later and counts them as Stuck. Calling Stop again returns the counts
// again.
func (r *Run) Stop() Result {
	r.stop.Do(func() {
		r.cancel()
		done := make(chan struct{})
		go func() {
			r.wg.Wait()
			close(done)
		}()
		bound := 2*r.cfg.Timeout + time.Second
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			n := r.running.Load()
			r.mu.Lock()
			r.stuck = n
			r.mu.Unlock()
			r.note("stop", fmt.Errorf("%d clients still running %v after Stop", n, bound))
		}
	})
	return r.Snapshot()
}

// note keeps err as the example of its kind of failure, if it is the first
// of its kind and there is room.
func (r *Run) note(kind string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kinds[kind] || len(r.errors) >= maxErrors {
		return
	}
	r.kinds[kind] = true
	r.errors = append(r.errors, kind+": "+err.Error())
}

// dial connects to the server within Config.Timeout, or until ctx ends.
func (r *Run) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: r.cfg.Timeout}
	return d.DialContext(ctx, "tcp", r.cfg.Addr)
}

// failure names the kind of a socket error: "refused", "reset", "timeout"
// or "error".
func failure(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		// EPIPE: a write after the reset arrived.
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return "error"
}

// mismatch returns the index of the first byte of b that is not the
// answer's, b being the stream of answers from offset off on; -1 if all
// are.
func mismatch(b []byte, off int) int {
	for i, c := range b {
		if c != answer[(off+i)%len(answer)] {
			return i
		}
	}
	return -1
}

// badBytes describes the wrong byte at index i of b, a stream of answers.
func badBytes(b []byte, i int) error {
	start := i - i%len(answer)
	got := b[start:min(len(b), start+len(answer))]
	return fmt.Errorf("answer %d, byte %d: got %q, want %q", i/len(answer)+1, i%len(answer), got, answer[:len(got)])
}

// sleep pauses for d, or until ctx ends; it reports whether ctx is still
// live.
func sleep(ctx context.Context, t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

// churner is one churn client: a connection per message, until ctx ends.
func (r *Run) churner(ctx context.Context, id int) {
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	prefix := "c" + strconv.Itoa(id) + "-"
	msg := make([]byte, 0, 32)
	var got [len(answer)]byte
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		msg = strconv.AppendUint(append(msg[:0], prefix...), seq, 10)
		msg = append(msg, '\n')
		if !r.churn(ctx, msg, got[:]) {
			sleep(ctx, pause, pauseAfterFailure)
		}
	}
}

// churn makes one churn connection: it writes msg, reads the answer into
// got and closes. It reports whether all went well; a dial canceled by
// ctx counts as well.
func (r *Run) churn(ctx context.Context, msg, got []byte) bool {
	n := &r.n
	c, err := r.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return true // stopped, not refused
		}
		r.churnFailed(err)
		return false
	}
	defer c.Close()
	n.churnConns.Add(1)
	c.SetDeadline(time.Now().Add(r.cfg.Timeout))
	if _, err := c.Write(msg); err != nil {
		r.churnFailed(fmt.Errorf("write: %w", err))
		return false
	}
	k, err := io.ReadFull(c, got)
	if i := mismatch(got[:k], 0); i >= 0 {
		n.badAnswers.Add(1)
		r.note("churner: bad answer", badBytes(got[:k], i))
		return false
	}
	switch {
	case err == nil:
		n.churnAnswered.Add(1)
		return true
	case err == io.EOF, err == io.ErrUnexpectedEOF:
		n.churnLost.Add(1)
		r.note("churner: lost", fmt.Errorf("EOF after %d bytes of the answer to %q", k, msg))
	default:
		r.churnFailed(fmt.Errorf("read after %d bytes: %w", k, err))
	}
	return false
}

// churnFailed counts a churner's failed dial, write or read.
func (r *Run) churnFailed(err error) {
	r.tally("churner", err, &r.n.churnRefused, &r.n.churnResets, &r.n.churnOther)
}

// tally counts a failed dial, write or read by its kind (see failure),
// and keeps it as an example.
func (r *Run) tally(who string, err error, refused, resets, other *atomic.Int64) {
	kind := failure(err)
	switch kind {
	case "refused":
		refused.Add(1)
	case "reset":
		resets.Add(1)
	default:
		other.Add(1)
	}
	r.note(who+": "+kind, err)
}

// longClient is the state of one long-lived client.
type longClient struct {
	r      *Run
	prefix string
	seq    uint64
	burst  []byte // the messages of a burst
	got    []byte // their answers
	pause  *time.Timer
}

// longLived is one long-lived client: it connects, runs bursts until the
// connection ends, and connects again, until ctx ends.
func (r *Run) longLived(ctx context.Context, id int) {
	l := &longClient{
		r:      r,
		prefix: "l" + strconv.Itoa(id) + "-",
		got:    make([]byte, r.cfg.Burst*len(answer)),
		pause:  time.NewTimer(time.Hour),
	}
	l.pause.Stop()
	for ctx.Err() == nil {
		c, err := r.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.failed(err)
			sleep(ctx, l.pause, pauseAfterFailure)
			continue
		}
		r.n.longConns.Add(1)
		clean := l.session(ctx, c)
		c.Close()
		if !clean {
			sleep(ctx, l.pause, pauseAfterFailure)
		}
	}
}

// session runs bursts on c until the connection ends or ctx does. It
// reports whether it ended cleanly: by ctx, or by the server's FIN after
// every answer owed.
func (l *longClient) session(ctx context.Context, c net.Conn) bool {
	r, n, want := l.r, &l.r.n, int64(l.r.cfg.Burst)
	for ctx.Err() == nil {
		c.SetDeadline(time.Now().Add(r.cfg.Timeout))
		// A FIN that has already come ends the connection before the
		// burst, so that few bursts cross it.
		switch k, err := pending(c); {
		case err == io.EOF:
			n.longEnded.Add(1)
			return true
		case err != nil:
			l.failed(fmt.Errorf("before a burst: %w", err))
			return false
		case k > 0:
			b := make([]byte, 64)
			m, _ := c.Read(b)
			n.badAnswers.Add(1)
			r.note("long-lived: bad answer", fmt.Errorf("%q pending before a burst", b[:m]))
			return false
		}
		l.burst = l.burst[:0]
		for range want {
			l.seq++
			l.burst = strconv.AppendUint(append(l.burst, l.prefix...), l.seq, 10)
			l.burst = append(l.burst, '\n')
		}
		if _, err := c.Write(l.burst); err != nil {
			l.failed(fmt.Errorf("write: %w", err))
			return false
		}
		got, err := l.readAnswers(c)
		if i := mismatch(l.got[:got], 0); i >= 0 {
			n.longMessages.Add(int64(i / len(answer)))
			n.badAnswers.Add(1)
			r.note("long-lived: bad answer", badBytes(l.got[:got], i))
			return false
		}
		answered := int64(got / len(answer))
		n.longMessages.Add(answered)
		switch {
		case err == nil:
		case err == io.EOF && got == 0:
			n.longCrossed.Add(1)
			n.longEnded.Add(1)
			return true
		case err == io.EOF:
			n.longPartial.Add(1)
			n.longUnanswered.Add(want - answered)
			r.note("long-lived: partial", fmt.Errorf("EOF after %d bytes, %d of %d answers", got, answered, want))
			return false
		default:
			n.longUnanswered.Add(want - answered)
			l.failed(fmt.Errorf("read after %d of %d answers: %w", answered, want, err))
			return false
		}
		think := r.cfg.Think/2 + rand.N(r.cfg.Think)
		if !sleep(ctx, l.pause, think) {
			break
		}
	}
	return true
}

// readAnswers reads a burst's answers into l.got until it is full, or an
// error, or a wrong byte. It returns how many bytes came and the error.
func (l *longClient) readAnswers(c net.Conn) (int, error) {
	got := 0
	for got < len(l.got) {
		k, err := c.Read(l.got[got:])
		got += k
		if mismatch(l.got[got-k:got], got-k) >= 0 {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// failed counts a long-lived client's failed dial, write or read.
func (l *longClient) failed(err error) {
	n := &l.r.n
	l.r.tally("long-lived", err, &n.longRefused, &n.longResets, &n.longOther)
}
