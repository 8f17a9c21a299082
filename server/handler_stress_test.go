package server_test

// Handler tests under load, on whichever engine this build runs: writers
// from other goroutines racing a shutdown, and timers racing the ends of
// their connections.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// stressServer is handlerServer for the tests here, which can wedge a
// loop: its cleanup gives up on a Shutdown that does not return, so that
// the test fails, instead of hanging until go test's -timeout.
func stressServer(t *testing.T, cfg server.Config, h server.Handler) (*server.Server, bool) {
	t.Helper()
	cfg.Handler = h
	cfg.Addr = "127.0.0.1:0"
	if os.Getenv("TCPOLL_DIRECT_SEND") == "1" {
		cfg.DirectSend = true // as startServer does
	}
	s, err := server.New(cfg)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Logf("engine without Handlers: %v", err)
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := shutdownWithin(ctx, s, 2*ioTimeout); err != nil {
			t.Errorf("Shutdown: %v", err)
			return
		}
		select {
		case err := <-served:
			if !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(ioTimeout):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return s, true
}

// shutdownWithin is s.Shutdown(ctx), unless that has not returned after
// limit: then it is left running, and the error says where the loops are.
func shutdownWithin(ctx context.Context, s *server.Server, limit time.Duration) error {
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	select {
	case err := <-shut:
		return err
	case <-time.After(limit):
		return fmt.Errorf("still running after %v, left running; a loop that never waits again cannot see the deadline:\n%s",
			limit, loopStacks())
	}
}

// loopStacks is the stacks of the goroutines running the engine's
// connections: the poll engine's loops, or the stdnet engine's goroutines,
// the first 20 of them.
func loopStacks() string {
	buf := make([]byte, 16<<20)
	var gs []string
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "server.(*loop).run(") || strings.Contains(g, "server.(*stdnetEngine)") {
			if n++; n <= 20 {
				gs = append(gs, g)
			}
		}
	}
	if n > len(gs) {
		gs = append(gs, fmt.Sprintf("(and %d more)", n-len(gs)))
	}
	return strings.Join(gs, "\n\n")
}

// TestHandlerShutdownWhileWriting: 32 goroutines write numbered messages
// to 100 connections, each connection owned by one of them so that its
// messages have one order, while the clients read; then Shutdown, with
// the writers still writing. Every write that returned nil reaches its
// client, whole and in order, before the EOF; a write after the end fails
// with ErrClosed; Shutdown returns nil, and every OnClose says
// ErrServerClosed.
func TestHandlerShutdownWhileWriting(t *testing.T) {
	skipUnderWine(t, "each Write goes through the wineserver: the stdnet engine's one Write per message takes 13 s of the 20 s grace alone, and more beside other tests")
	const (
		conns   = 100
		writers = 32
		msgLen  = 6
	)
	r := newRecorder(false)
	s, ok := stressServer(t, server.Config{}, r)
	if !ok {
		return
	}
	clients := make([]*client, conns)
	handles := make([]*server.Conn, conns)
	for i := range clients {
		// One at a time: the handle opened next is this client's.
		clients[i] = dial(t, s.Addr())
		handles[i] = receive(t, r.opened, "OnOpen")
		if got, want := handles[i].RemoteAddr().String(), clients[i].c.LocalAddr().String(); got != want {
			t.Fatalf("connection %d: handle of %s, want %s", i, got, want)
		}
	}
	type read struct {
		b   []byte
		err error
	}
	reads := make([]chan read, conns)
	for i, c := range clients {
		reads[i] = make(chan read, 1)
		go func() {
			c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, err := io.ReadAll(c.c)
			c.c.Close() // the server lingers after its FIN until this
			reads[i] <- read{b, err}
		}()
	}

	// written[i] counts the messages AsyncWrite took for connection i:
	// only its owner, writer i%writers, touches it until wg.Wait.
	written := make([]int, conns)
	var (
		wg          sync.WaitGroup
		backlogged  atomic.Int64 // writes refused with ErrBackpressure
		writesAfter atomic.Int64 // writes made once Shutdown had begun
		stopping    atomic.Bool
	)
	deadline := time.Now().Add(40 * time.Second)
	quit := make(chan struct{}) // the test has failed: stop writing
	t.Cleanup(func() {
		close(quit)
		wg.Wait()
	})
	for w := range writers {
		wg.Go(func() {
			var mine []int
			for i := w; i < conns; i += writers {
				mine = append(mine, i)
			}
			ended := make(map[int]bool)
			for len(ended) < len(mine) {
				select {
				case <-quit:
					return
				default:
				}
				if time.Now().After(deadline) {
					t.Errorf("writer %d: connections %v still open at the deadline", w, mine)
					return
				}
				i := mine[rand.IntN(len(mine))]
				if ended[i] {
					continue
				}
				seq := written[i]
				msg := []byte{byte(i), byte(i >> 8), byte(seq), byte(seq >> 8), byte(seq >> 16), '\n'}
				var err error
				if rand.IntN(2) == 0 {
					err = handles[i].AsyncWrite(msg)
				} else {
					// Waits for room: never ErrBackpressure.
					ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
					err = handles[i].AsyncWriteContext(ctx, msg)
					cancel()
				}
				switch {
				case err == nil:
					written[i]++
					if stopping.Load() {
						writesAfter.Add(1)
					}
				case errors.Is(err, server.ErrBackpressure):
					backlogged.Add(1)
					runtime.Gosched()
				case errors.Is(err, server.ErrClosed):
					// The end is for good.
					if err := handles[i].AsyncWrite(msg); !errors.Is(err, server.ErrClosed) {
						t.Errorf("connection %d: AsyncWrite after ErrClosed: %v, want ErrClosed", i, err)
					}
					ended[i] = true
				default:
					t.Errorf("connection %d: write %d: %v", i, seq, err)
					ended[i] = true
				}
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	stopping.Store(true)
	const grace = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	if err := shutdownWithin(ctx, s, grace+ioTimeout); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	wg.Wait()

	total := 0
	for i, h := range handles {
		if err := h.AsyncWrite([]byte("late\n")); !errors.Is(err, server.ErrClosed) {
			t.Errorf("connection %d: AsyncWrite after Shutdown: %v, want ErrClosed", i, err)
		}
		if err := h.AsyncWriteContext(context.Background(), []byte("late\n")); !errors.Is(err, server.ErrClosed) {
			t.Errorf("connection %d: AsyncWriteContext after Shutdown: %v, want ErrClosed", i, err)
		}
		rd := receive(t, reads[i], "the client's EOF")
		if rd.err != nil {
			t.Errorf("client %d: %v after %d bytes, want EOF", i, rd.err, len(rd.b))
		}
		if len(rd.b) != msgLen*written[i] {
			t.Errorf("client %d read %d bytes, want %d: the %d messages written", i, len(rd.b), msgLen*written[i], written[i])
		}
		for k := 0; k+msgLen <= len(rd.b); k += msgLen {
			want := []byte{byte(i), byte(i >> 8), byte(k / msgLen), byte(k / msgLen >> 8), byte(k / msgLen >> 16), '\n'}
			if m := rd.b[k : k+msgLen]; !bytes.Equal(m, want) {
				t.Fatalf("client %d, message %d: %q, want %q", i, k/msgLen, m, want)
			}
		}
		total += written[i]
	}
	for range conns {
		receive(t, r.ended, "OnClose")
	}
	for i, h := range handles {
		if why := r.why(h); why != server.ErrServerClosed {
			t.Errorf("connection %d: OnClose reason %v, want ErrServerClosed", i, why)
		}
	}
	t.Logf("%s engine: %d messages to %d clients, %d of them after Shutdown began; %d writes refused with ErrBackpressure; Shutdown took %v",
		s.Engine(), total, conns, writesAfter.Load(), backlogged.Load(), took.Round(time.Millisecond))
}

// timerHandler arms timers on its connections and checks that none runs
// after its connection's OnClose, nor after Stop said it was stopped.
type timerHandler struct {
	mu       sync.Mutex
	open     map[*server.Conn]bool // true until OnClose
	opened   int
	closed   int
	ran      int
	stopped  int
	problems []string
}

// timerConn is a connection's timers, on its loop.
type timerConn struct {
	pending []*armed
	armed   int // by arm, up to maxTimersPerConn
}

// armed is a timer and what became of it.
type armed struct {
	t       *server.Timer
	stopped bool // Stop reported it pending
}

const (
	maxTimersPerConn = 12 // armed by arm: from OnOpen and from timers
	timerMaxDelay    = 50 // ms
)

func newTimerHandler() *timerHandler {
	return &timerHandler{open: make(map[*server.Conn]bool)}
}

func (h *timerHandler) problem(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.problems) < 10 {
		h.problems = append(h.problems, fmt.Sprintf(format, args...))
	}
}

// OnOpen says "+" and arms three timers.
func (h *timerHandler) OnOpen(c *server.Conn) {
	h.mu.Lock()
	if _, ok := h.open[c]; ok {
		h.mu.Unlock()
		h.problem("OnOpen twice for %v", c.RemoteAddr())
		return
	}
	h.open[c] = true
	h.opened++
	h.mu.Unlock()
	tc := &timerConn{}
	c.SetValue(tc)
	if err := c.Write([]byte("+")); err != nil {
		h.problem("Write in OnOpen: %v", err)
	}
	for range 3 {
		h.arm(c, tc, 0)
	}
}

// OnData echoes its input; an 'x' in it asks for the connection to be
// ended by a timer, which closes it or aborts it.
func (h *timerHandler) OnData(c *server.Conn, in []byte) {
	tc := c.Value().(*timerConn)
	c.Write(in) // fails once the connection is ending
	if bytes.IndexByte(in, 'x') >= 0 {
		h.armFunc(c, tc, false, func() {
			if rand.IntN(2) == 0 {
				c.Close()
			} else {
				c.Abort(nil)
			}
		})
	}
}

func (h *timerHandler) OnClose(c *server.Conn, why error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	open, ok := h.open[c]
	switch {
	case !ok:
		h.problems = append(h.problems, fmt.Sprintf("OnClose (%v) without OnOpen", why))
	case !open:
		h.problems = append(h.problems, fmt.Sprintf("OnClose twice, the second with %v", why))
	}
	h.open[c] = false
	h.closed++
}

// arm arms a timer that, when it runs, writes now and then, stops one of
// the connection's pending timers now and then, and arms up to two more
// while depth allows.
func (h *timerHandler) arm(c *server.Conn, tc *timerConn, depth int) {
	if tc.armed >= maxTimersPerConn {
		return
	}
	tc.armed++
	h.armFunc(c, tc, true, func() {
		if rand.IntN(4) == 0 {
			c.Write([]byte("t"))
		}
		if len(tc.pending) > 0 && rand.IntN(3) == 0 {
			a := tc.pending[rand.IntN(len(tc.pending))]
			if a.t.Stop() {
				a.stopped = true
				h.mu.Lock()
				h.stopped++
				h.mu.Unlock()
			}
		}
		if depth < 3 {
			for range rand.IntN(3) {
				h.arm(c, tc, depth+1)
			}
		}
	})
}

// armFunc arms f to run in 1 to timerMaxDelay ms, checking first that the
// connection is open and the timer was not stopped. A stoppable timer is
// one the connection's other timers may stop.
func (h *timerHandler) armFunc(c *server.Conn, tc *timerConn, stoppable bool, f func()) {
	a := new(armed)
	a.t = c.AfterFunc(time.Duration(1+rand.IntN(timerMaxDelay))*time.Millisecond, func() {
		for i, p := range tc.pending {
			if p == a {
				tc.pending = append(tc.pending[:i], tc.pending[i+1:]...)
				break
			}
		}
		h.mu.Lock()
		h.ran++
		open := h.open[c]
		h.mu.Unlock()
		switch {
		case !open:
			h.problem("a timer of %v ran after its OnClose", c.RemoteAddr())
			return
		case a.stopped:
			h.problem("a timer of %v ran after Stop reported it pending", c.RemoteAddr())
			return
		}
		f()
	})
	if stoppable {
		tc.pending = append(tc.pending, a)
	}
}

// counts returns the numbers of OnOpen, OnClose and timer runs, and the
// problems seen.
func (h *timerHandler) counts() (opened, closed, ran, stopped int, problems []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opened, h.closed, h.ran, h.stopped, append([]string(nil), h.problems...)
}

// TestHandlerTimersWhileClosing: 300 connections each arm timers of 1 to
// 50 ms, from OnOpen and from their timers, and stop some, while their
// clients close, reset, or have the server close or abort them, at random.
// No timer runs after its connection's OnClose, nor after Stop reported it
// pending; every connection has one OnClose; then no connection is open,
// and a new client is served.
func TestHandlerTimersWhileClosing(t *testing.T) {
	const conns = 300
	h := newTimerHandler()
	s, ok := stressServer(t, server.Config{}, h)
	if !ok {
		return
	}
	var wg sync.WaitGroup
	var ends [5]atomic.Int64
	for i := range conns {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			tc := c.(*net.TCPConn)
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(ioTimeout))
			// "+": OnOpen has run.
			var b [1]byte
			if _, err := io.ReadFull(tc, b[:]); err != nil || b[0] != '+' {
				t.Errorf("client %d: read %q, %v; want \"+\"", i, b[:], err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
			end := rand.IntN(len(ends))
			ends[end].Add(1)
			switch end {
			case 0: // a FIN
			case 1: // a reset
				tc.SetLinger(0)
			case 2: // input, then a reset
				tc.Write([]byte("hello"))
				tc.SetLinger(0)
			case 3: // input, then a FIN, and the rest of the stream
				tc.Write([]byte("hello"))
				tc.CloseWrite()
				if _, err := io.ReadAll(tc); err != nil && !isReset(err) {
					t.Errorf("client %d: %v, want the end", i, err)
				}
			case 4: // the server ends it
				tc.Write([]byte("x"))
				if _, err := io.ReadAll(tc); err != nil && !isReset(err) {
					t.Errorf("client %d: %v, want the end", i, err)
				}
			}
		})
	}
	wg.Wait()
	quiet := func() bool {
		opened, closed, _, _, _ := h.counts()
		return opened == closed && s.Stats().Open.Load() == 0
	}
	waitFor(t, "every connection closed", quiet)
	// Every timer armed has come due by now, run or not.
	time.Sleep(4 * timerMaxDelay * time.Millisecond)

	c := dial(t, s.Addr())
	c.send("ping")
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	var got []byte
	for !bytes.Equal(got, []byte("+ping")) {
		var b [64]byte
		n, err := c.c.Read(b[:])
		if err != nil {
			t.Fatalf("new client: read %q, then %v; want \"+ping\" (and timers' \"t\")", got, err)
		}
		got = append(got, bytes.ReplaceAll(b[:n], []byte("t"), nil)...)
		if !bytes.HasPrefix([]byte("+ping"), got) {
			t.Fatalf("new client: read %q, want \"+ping\" (and timers' \"t\")", got)
		}
	}
	c.c.Close()
	waitFor(t, "the new client's connection closed", quiet)
	time.Sleep(4 * timerMaxDelay * time.Millisecond)

	opened, closed, ran, stopped, problems := h.counts()
	t.Logf("%s engine: %d connections opened, %d closed, %d timers run, %d stopped; clients ended: %d FIN, %d reset, %d input and reset, %d input and FIN, %d by the server",
		s.Engine(), opened, closed, ran, stopped, ends[0].Load(), ends[1].Load(), ends[2].Load(), ends[3].Load(), ends[4].Load())
	if opened != conns+1 || closed != opened {
		t.Errorf("%d OnOpen, %d OnClose; want %d of each", opened, closed, conns+1)
	}
	if ran == 0 || stopped == 0 {
		t.Errorf("%d timers ran, %d were stopped: the test tests nothing", ran, stopped)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
