// Package storm attacks a server of the acknowledgement protocol (see
// PROTOCOL.md) where its close path is weakest, while well-behaved clients
// check that they are still served.
//
// It was written for issue 12: clients that send a burst of messages and
// "close" in one write, then reset the connection without reading. The
// server's own decision to close such a connection (after "close", at EOF,
// while answers are still pending or after its FIN, when the connection
// lingers) then races with the client's reset (ECONNRESET, EPOLLHUP), and a
// server that frees a connection twice, or touches it after its descriptor
// number was reused, shows it within seconds: a list of connections that
// becomes a cycle and a loop at 100% CPU, answers that never come,
// descriptors that leak, a shutdown that never ends.
//
// Two kinds of clients run side by side for Config.Duration:
//
//   - Stormers make connections one after another. Every one ends in a
//     reset (SO_LINGER 0, then close), never in a FIN, and never reads
//     before the end it was given says so. What it sends (Kind) and how it
//     ends (End) are drawn from Config.Kinds and Config.Ends by a random
//     generator seeded with Config.Seed and the client's number: a run
//     makes the same sequence of connections each time, only the timing
//     differs.
//   - Polite clients loop: connect, send "hi\n", read and check the answer,
//     close. Their failures are the storm's verdict on the server.
//
// With Config.TLS the same storm runs inside TLS, against a server of the
// protocol inside TLS: every connection that sends a message first
// completes a handshake, a half-close is close_notify and then the FIN, a
// Drain wants the server's close_notify and then its FIN, and the polite
// clients shake hands too. Two more kinds then reset a connection in the
// middle of its handshake (Hello, PartialHello), where a server that runs
// handshakes off its loop hands a connection between goroutines. The
// resets stay TCP's: the client's TLS session is dropped, never closed.
//
// The storm is bounded: at most Stormers+Polite connections are open at
// once, every dial, read and write has a deadline (Config.Timeout), and Run
// returns about Config.Duration after it starts, once the connections in
// progress end (at most Timeout later).
package storm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// The bytes of the contract, written again from PROTOCOL.md.
const (
	answer  = "I recieved your message\n"
	closing = "closing"
)

// Defaults, used where a Config field is zero.
const (
	DefaultDuration    = 20 * time.Second
	DefaultStormers    = 48
	DefaultPolite      = 16
	DefaultMaxMessages = 200
	DefaultMaxWait     = 200 * time.Microsecond
	DefaultTimeout     = 5 * time.Second
)

// maxExamples is how many errors of each kind a Result keeps.
const maxExamples = 5

// Kind is what a storm connection sends before it ends.
type Kind uint8

const (
	// Close sends 1 to MaxMessages messages and "close" in one write: the
	// server decides to close a connection that still owes answers (with a
	// small MaxPendingOutput, one it has also stopped reading). This is
	// the pattern of issue 12.
	Close Kind = iota
	// CloseOnly sends "close" alone: the server closes a connection that
	// owes nothing but "closing".
	CloseOnly
	// Pipelined sends 0 to MaxMessages messages, "close" and a few more
	// messages, cut at random bytes into 2 to 8 writes made back to back:
	// "close" arrives in a later read than the messages before it, is
	// sometimes split itself, and the input after it must be read and
	// ignored while the connection lingers.
	Pipelined
	// Partial sends 0 to MaxMessages messages and then part of one (no LF,
	// no "close"): the reset finds the connection open, holding unfinished
	// input and perhaps answers.
	Partial
	// HalfClose sends 0 to MaxMessages messages, sometimes a last message
	// or "close" without its LF, and half-closes (CloseWrite): the server
	// sees EOF, answers, flushes and closes while the reset is on its way.
	HalfClose
	// Silent connects and resets without sending: the reset may arrive
	// before the server has accepted the connection, or just after.
	Silent
	// Hello sends a whole ClientHello and no more (TLS only): the reset
	// finds the handshake waiting for a slot, being computed, or waiting
	// for the client's second flight after the server's first. A Drain
	// ends Now.
	Hello
	// PartialHello sends the start of a ClientHello, cut at a random byte,
	// record header included (TLS only): the reset finds the server
	// waiting for the rest of the hello. A Drain ends Now.
	PartialHello

	numKinds = iota
)

var kindNames = [numKinds]string{"close", "close-only", "pipelined", "partial", "half-close", "silent", "hello", "partial-hello"}

// handshakeOnly reports whether the kind exists only inside TLS, resetting
// a connection before its handshake ends.
func (k Kind) handshakeOnly() bool { return k == Hello || k == PartialHello }

// insideTLS reports whether a connection of this kind completes its
// handshake before it sends, when the storm runs inside TLS.
func (k Kind) insideTLS() bool { return k != Silent && !k.handshakeOnly() }

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// End is when a storm connection is reset.
type End uint8

const (
	// Now resets right after the last write: usually before the server
	// has read the input, and always before its FIN arrives.
	Now End = iota
	// Wait resets after a random pause of up to MaxWait: the reset lands
	// anywhere between the server reading the input and closing.
	Wait
	// Drain reads until the server's FIN, checking every byte (the
	// answers, "closing"), then resets: the reset reaches a connection
	// whose server side has already closed and lingers. A Partial
	// connection reads the answers it is owed and resets with its
	// unfinished message still held; a Silent, Hello or PartialHello one
	// ends Now.
	Drain

	numEnds = iota
)

var endNames = [numEnds]string{"now", "wait", "drain"}

func (e End) String() string {
	if int(e) < len(endNames) {
		return endNames[e]
	}
	return fmt.Sprintf("End(%d)", e)
}

// Config describes a storm. Zero fields take the defaults.
type Config struct {
	// Addr is the server's address, host:port.
	Addr string
	// Duration is how long clients start new connections (default 20s).
	Duration time.Duration
	// Stormers is the number of storm clients (default 48).
	Stormers int
	// Polite is the number of well-behaved clients (default 16).
	Polite int
	// MaxMessages is the most complete messages a storm connection sends
	// (default 200). Each message is "m\n" (sometimes "m\r\n").
	MaxMessages int
	// MaxWait is the longest pause of the Wait end (default 200µs).
	MaxWait time.Duration
	// Kinds are the kinds of storm connection drawn from, each equally
	// likely (nil: all of them; without TLS, all but Hello and
	// PartialHello, which need it). A kind listed twice is drawn twice as
	// often.
	Kinds []Kind
	// Ends are the ends drawn from, like Kinds (nil: all of them).
	Ends []End
	// Seed seeds the storm clients' choices; zero is a seed like another.
	Seed uint64
	// Timeout bounds each dial, and all the reads and writes of each
	// connection, its handshake included (default 5s).
	Timeout time.Duration
	// TLS, when set, runs the storm inside TLS with this client
	// configuration: it must trust the server's certificate.
	TLS *tls.Config

	// hello is a ClientHello record made with TLS, sent by the Hello and
	// PartialHello kinds.
	hello []byte
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		return c, errors.New("storm: no server address")
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Stormers == 0 {
		c.Stormers = DefaultStormers
	}
	if c.Polite == 0 {
		c.Polite = DefaultPolite
	}
	if c.MaxMessages == 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Kinds == nil {
		for k := range Kind(numKinds) {
			// Without TLS the defaults stay those of the plaintext storm,
			// so that a seed draws the same connections as before.
			if c.TLS != nil || !k.handshakeOnly() {
				c.Kinds = append(c.Kinds, k)
			}
		}
	}
	if c.Ends == nil {
		for e := range End(numEnds) {
			c.Ends = append(c.Ends, e)
		}
	}
	switch {
	case c.Duration < 0, c.MaxWait < 0, c.Timeout < 0:
		return c, errors.New("storm: negative duration, wait or timeout")
	case c.Stormers < 0, c.Polite < 0, c.MaxMessages < 0:
		return c, errors.New("storm: negative client or message count")
	case len(c.Kinds) == 0, len(c.Ends) == 0:
		return c, errors.New("storm: no kind or no end to draw from")
	}
	for _, k := range c.Kinds {
		if k >= numKinds {
			return c, fmt.Errorf("storm: unknown %v", k)
		}
		if k.handshakeOnly() && c.TLS == nil {
			return c, fmt.Errorf("storm: %v needs TLS", k)
		}
	}
	for _, e := range c.Ends {
		if e >= numEnds {
			return c, fmt.Errorf("storm: unknown %v", e)
		}
	}
	if c.TLS != nil {
		hello, err := clientHello(c.TLS)
		if err != nil {
			return c, fmt.Errorf("storm: making a ClientHello: %w", err)
		}
		c.hello = hello
	}
	return c, nil
}

// clientHello returns the first record a TLS client with cfg sends, its
// ClientHello, taken from a handshake over an in-memory pipe. One hello
// serves every connection: the server never gets far enough to tell a
// replay, and the plans stay the same for a seed.
func clientHello(cfg *tls.Config) ([]byte, error) {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Fails once server is closed, after the hello was read.
		tls.Client(client, cfg).Handshake()
		client.Close()
	}()
	defer func() {
		server.Close()
		<-done
	}()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [5]byte
	if _, err := io.ReadFull(server, hdr[:]); err != nil {
		return nil, err
	}
	const handshakeRecord = 22
	if hdr[0] != handshakeRecord {
		return nil, fmt.Errorf("first record of type %d, want a handshake (22)", hdr[0])
	}
	rec := make([]byte, len(hdr)+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr[:])
	if _, err := io.ReadFull(server, rec[len(hdr):]); err != nil {
		return nil, err
	}
	return rec, nil
}

// Result is what a storm did and saw.
type Result struct {
	// Elapsed is the time from start to the last connection's end.
	Elapsed time.Duration

	// Storm counts the storm connections made, StormDialErrors the dials
	// that failed. A storm connection is reset whatever happens.
	Storm, StormDialErrors int
	// Kinds and Ends count the storm connections made by kind and by end.
	Kinds map[Kind]int
	Ends  map[End]int
	// Drained counts the storm connections that read until the server's
	// FIN (or the answers they were owed) and found the right bytes.
	Drained int
	// StormFailures counts storm connections on which the server broke
	// the protocol before the reset: a write failed, or a Drain read
	// wrong bytes, an error or nothing before Timeout. StormErrors holds
	// the first few.
	StormFailures int
	StormErrors   []error

	// Polite counts the polite connections made or tried, PoliteAnswers
	// the answers they read and checked, and PoliteFailures those that
	// failed: a dial, a write, a wrong or missing answer. PoliteErrors
	// holds the first few.
	Polite, PoliteAnswers, PoliteFailures int
	PoliteErrors                          []error
}

// String sums the result up on one line.
func (r Result) String() string {
	var kinds, ends []string
	for k := range Kind(numKinds) {
		if r.Kinds[k] > 0 {
			kinds = append(kinds, fmt.Sprintf("%v %d", k, r.Kinds[k]))
		}
	}
	for e := range End(numEnds) {
		if r.Ends[e] > 0 {
			ends = append(ends, fmt.Sprintf("%v %d", e, r.Ends[e]))
		}
	}
	mix := ""
	if r.Storm > 0 {
		mix = fmt.Sprintf(" (%s; %s)", strings.Join(kinds, ", "), strings.Join(ends, ", "))
	}
	return fmt.Sprintf("%v: %d storm connections%s, %d dial errors, %d drained, %d failed; "+
		"%d polite connections, %d answers checked, %d failed",
		r.Elapsed.Round(time.Millisecond), r.Storm, mix,
		r.StormDialErrors, r.Drained, r.StormFailures, r.Polite, r.PoliteAnswers, r.PoliteFailures)
}

// Run storms the server at cfg.Addr for cfg.Duration and returns what it
// saw. The server's failures are counted in the Result, not returned as an
// error. If ctx ends first, the clients stop early and Run returns what
// they did with ctx.Err().
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	// runCtx ends the clients' loops; a connection in progress ends by
	// itself, or when ctx does.
	runCtx, cancel := context.WithDeadline(ctx, start.Add(cfg.Duration))
	defer cancel()

	var wg sync.WaitGroup
	tallies := make([]tally, cfg.Stormers+cfg.Polite)
	for i := range tallies {
		t := &tallies[i]
		if i < cfg.Stormers {
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
			wg.Go(func() {
				for runCtx.Err() == nil {
					t.stormConn(ctx, &cfg, newPlan(rng, &cfg))
				}
			})
		} else {
			wg.Go(func() {
				for runCtx.Err() == nil {
					t.politeConn(ctx, &cfg)
				}
			})
		}
	}
	wg.Wait()

	res := Result{Elapsed: time.Since(start), Kinds: make(map[Kind]int), Ends: make(map[End]int)}
	for i := range tallies {
		tallies[i].addTo(&res)
	}
	return res, ctx.Err()
}

// plan is one storm connection, drawn before it is made.
type plan struct {
	kind   Kind
	end    End
	msgs   int           // complete messages sent before "close" or the end
	writes [][]byte      // the input, in the writes that send it
	wait   time.Duration // the pause of the Wait end
	// want is what a Drain reads: everything the server sends until its
	// FIN if eof, else the answers owed (the connection stays open).
	want []byte
	eof  bool
}

// newPlan draws the next connection of a storm client.
func newPlan(rng *rand.Rand, cfg *Config) plan {
	p := plan{
		kind: cfg.Kinds[rng.IntN(len(cfg.Kinds))],
		end:  cfg.Ends[rng.IntN(len(cfg.Ends))],
	}
	if p.end == Wait {
		p.wait = time.Duration(rng.Int64N(int64(cfg.MaxWait) + 1))
	}
	var in bytes.Buffer
	messages := func(n int) {
		p.msgs = n
		for range n {
			if rng.IntN(8) == 0 {
				in.WriteString("m\r\n")
			} else {
				in.WriteString("m\n")
			}
		}
	}
	answers := func(n int) []byte { return bytes.Repeat([]byte(answer), n) }
	switch p.kind {
	case Close:
		messages(1 + rng.IntN(max(cfg.MaxMessages, 1)))
		in.WriteString("close\n")
		p.want, p.eof = append(answers(p.msgs), closing...), true
	case CloseOnly:
		in.WriteString("close\n")
		p.want, p.eof = []byte(closing), true
	case Pipelined:
		messages(rng.IntN(cfg.MaxMessages + 1))
		in.WriteString("close\n")
		for range 1 + rng.IntN(8) {
			in.WriteString("ignored\n")
		}
		p.want, p.eof = append(answers(p.msgs), closing...), true
	case Partial:
		messages(rng.IntN(cfg.MaxMessages + 1))
		if rng.IntN(2) == 0 {
			in.WriteString("close"[:1+rng.IntN(5)])
		} else {
			in.WriteString(strings.Repeat("m", 1+rng.IntN(15)))
		}
		p.want = answers(p.msgs)
	case HalfClose:
		messages(rng.IntN(cfg.MaxMessages + 1))
		p.want, p.eof = answers(p.msgs), true
		switch rng.IntN(3) {
		case 1: // answered at EOF
			in.WriteString("m")
			p.want = append(p.want, answer...)
		case 2: // a close at EOF
			in.WriteString("close")
			p.want = append(p.want, closing...)
		}
	case Silent:
		p.end, p.wait = Now, 0
	case Hello:
		in.Write(cfg.hello)
	case PartialHello:
		in.Write(cfg.hello[:1+rng.IntN(len(cfg.hello)-1)])
	}
	if p.kind.handshakeOnly() && p.end == Drain {
		// Nothing is owed before a handshake: nothing to drain.
		p.end = Now
	}
	b := in.Bytes()
	if p.kind == Pipelined {
		cuts := []int{0, len(b)}
		for range 1 + rng.IntN(7) {
			cuts = append(cuts, 1+rng.IntN(len(b)-1))
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		for i := 1; i < len(cuts); i++ {
			p.writes = append(p.writes, b[cuts[i-1]:cuts[i]])
		}
	} else if len(b) > 0 {
		p.writes = [][]byte{b}
	}
	return p
}

// tally is one client's counts, merged into the Result at the end.
type tally struct {
	storm, dialErrors, drained, stormFailures int
	kinds                                     [numKinds]int
	ends                                      [numEnds]int
	stormErrors                               []error

	polite, answers, politeFailures int
	politeErrors                    []error
}

func (t *tally) addTo(r *Result) {
	r.Storm += t.storm
	r.StormDialErrors += t.dialErrors
	r.Drained += t.drained
	r.StormFailures += t.stormFailures
	for k, n := range t.kinds {
		if n > 0 {
			r.Kinds[Kind(k)] += n
		}
	}
	for e, n := range t.ends {
		if n > 0 {
			r.Ends[End(e)] += n
		}
	}
	r.StormErrors = appendSome(r.StormErrors, t.stormErrors...)
	r.Polite += t.polite
	r.PoliteAnswers += t.answers
	r.PoliteFailures += t.politeFailures
	r.PoliteErrors = appendSome(r.PoliteErrors, t.politeErrors...)
}

// appendSome appends errs to s up to maxExamples in all.
func appendSome(s []error, errs ...error) []error {
	return append(s, errs[:min(len(errs), maxExamples-len(s))]...)
}

// dial connects within cfg.Timeout, or until ctx ends.
func dial(ctx context.Context, cfg *Config) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	c, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// pauseAfterDialError is a client's pause after a failed dial or polite
// exchange: once the server is gone, its clients do not spin on refused
// dials.
const pauseAfterDialError = 10 * time.Millisecond

// stormConn makes the connection p describes and resets it.
func (t *tally) stormConn(ctx context.Context, cfg *Config, p plan) {
	c, err := dial(ctx, cfg)
	if err != nil {
		if ctx.Err() == nil {
			t.dialErrors++
			time.Sleep(pauseAfterDialError)
		}
		return
	}
	t.storm++
	t.kinds[p.kind]++
	t.ends[p.end]++
	if err := p.run(c, cfg); err != nil {
		t.stormFailures++
		t.stormErrors = appendSome(t.stormErrors, fmt.Errorf("storm %v/%v, %d messages: %w", p.kind, p.end, p.msgs, err))
	} else if p.end == Drain && p.kind != Silent {
		t.drained++
	}
}

// run sends p's input on c, ends it as p says, and resets it.
func (p *plan) run(c *net.TCPConn, cfg *Config) error {
	defer func() {
		// SO_LINGER 0: close sends a reset, not a FIN, and drops
		// whatever is unread or unsent. Inside TLS too: the session is
		// dropped without its close_notify.
		c.SetLinger(0)
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(cfg.Timeout))
	var conn net.Conn = c
	var tc *tls.Conn
	var fc *finConn
	if cfg.TLS != nil && p.kind.insideTLS() {
		fc = &finConn{TCPConn: c}
		tc = tls.Client(fc, cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		conn = tc
	}
	for _, w := range p.writes {
		if _, err := conn.Write(w); err != nil {
			return err
		}
	}
	if p.kind == HalfClose {
		if tc != nil {
			// TLS's EOF is close_notify; the FIN follows it.
			if err := tc.CloseWrite(); err != nil {
				return err
			}
		}
		if err := c.CloseWrite(); err != nil {
			return err
		}
	}
	switch p.end {
	case Wait:
		// Sleeping for microseconds can take a millisecond when the
		// runtime's timers go through the netpoller; yielding until the
		// time has passed keeps the pause short and lets the other
		// clients run meanwhile.
		for t0 := time.Now(); time.Since(t0) < p.wait; {
			runtime.Gosched()
		}
	case Drain:
		return p.drain(conn, fc)
	}
	return nil
}

// finConn is the TCP connection under a TLS session. It notes the
// server's FIN: crypto/tls returns io.EOF for a close_notify, and also for
// a FIN that comes at a record's boundary without one, and only the FIN
// having been read tells the second.
type finConn struct {
	*net.TCPConn
	fin bool
}

func (c *finConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if err == io.EOF {
		c.fin = true
	}
	return n, err
}

// drain reads what p.want says from c and checks it. Inside TLS, c is the
// session over raw, and the end wanted is the server's close_notify, then
// its FIN; raw is nil outside TLS.
func (p *plan) drain(c net.Conn, raw *finConn) error {
	got := make([]byte, len(p.want), len(p.want)+64)
	n, err := io.ReadFull(c, got)
	got = got[:n]
	if err == nil && p.eof {
		// Nothing more, then the FIN (inside TLS: the close_notify, then
		// the FIN).
		var extra [64]byte
		var k int
		k, err = c.Read(extra[:])
		got = append(got, extra[:k]...)
		if k == 0 && err == io.EOF {
			err = nil
			switch {
			case raw == nil:
			case raw.fin:
				err = errors.New("the FIN without close_notify")
			default:
				// The FIN, not a reset, and not one byte after the
				// close_notify.
				if k, rerr := raw.Read(extra[:]); k != 0 || rerr != io.EOF {
					err = fmt.Errorf("after close_notify: %d more bytes and %v, want the FIN", k, rerr)
				}
			}
		} else if err == nil {
			err = errors.New("no FIN")
		}
	}
	if !bytes.Equal(got, p.want) || err != nil {
		want := describe(p.want)
		if p.eof {
			want += ", then the FIN"
		}
		return fmt.Errorf("read %s (%d bytes), then %v; want %s", describe(got), len(got), err, want)
	}
	return nil
}

// describe sums up bytes the server sent: how many whole answers they
// start with, and what follows.
func describe(b []byte) string {
	n := 0
	for bytes.HasPrefix(b, []byte(answer)) {
		b = b[len(answer):]
		n++
	}
	if len(b) > 32 {
		b = b[:32]
	}
	return fmt.Sprintf("%d answers then %q", n, b)
}

// politeConn makes one well-behaved connection.
func (t *tally) politeConn(ctx context.Context, cfg *Config) {
	c, err := dial(ctx, cfg)
	if ctx.Err() != nil {
		if c != nil {
			c.Close()
		}
		return // the run ended: not a try
	}
	t.polite++
	err = func() error {
		if err != nil {
			return err
		}
		var conn net.Conn = c
		if cfg.TLS != nil {
			// The handshake runs on the first write.
			conn = tls.Client(c, cfg.TLS)
		}
		defer conn.Close()
		c.SetDeadline(time.Now().Add(cfg.Timeout))
		if _, err := io.WriteString(conn, "hi\n"); err != nil {
			return err
		}
		var b [len(answer)]byte
		if n, err := io.ReadFull(conn, b[:]); err != nil {
			return fmt.Errorf("read %q: %w", b[:n], err)
		}
		if string(b[:]) != answer {
			return fmt.Errorf("got %q, want %q", b[:], answer)
		}
		t.answers++
		return nil
	}()
	if err != nil {
		t.politeFailures++
		t.politeErrors = appendSome(t.politeErrors, fmt.Errorf("polite: %w", err))
		time.Sleep(pauseAfterDialError)
	}
}
