package restart

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/proctest"
	"github.com/tcpoll/poll/server"
)

// small is a workload for tests: few clients, short pauses and timeouts.
func small(addr string) Config {
	return Config{Addr: addr, Churners: 2, LongLived: 6, Burst: 8, Think: 5 * time.Millisecond, Timeout: 2 * time.Second}
}

// startRun starts cfg and stops it when the test ends.
func startRun(t *testing.T, cfg Config) *Run {
	t.Helper()
	r, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}

// waitFor polls r until ok says yes, or fails the test after limit.
func waitFor(t *testing.T, r *Run, limit time.Duration, what string, ok func(Result) bool) Result {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		res := r.Snapshot()
		if ok(res) {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v: %v; errors %q", what, limit, res, res.Errors)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverEnv, set to 1, makes the test binary the server of
// TestServerShutdown (see TestMain).
const serverEnv = "RESTART_TEST_SERVER"

// TestMain runs the server when the test binary is started as one, by
// serve: in a process of its own, so that what a server does to
// descriptor numbers cannot reach the clients' (evio closes its
// listener's number twice, and a socket opened in between by a client in
// the same process loses its descriptor: see server/engine_evio.go).
func TestMain(m *testing.M) {
	if os.Getenv(serverEnv) == "1" {
		os.Exit(runServer(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runServer serves on -addr until SIGTERM or EOF on its standard input
// (proctest's lifeline), then shuts down within 5s. It prints "listening
// on ADDR" once it listens, and exits 0 only if the shutdown is clean.
func runServer(args []string) int {
	flags := flag.NewFlagSet("server", flag.ContinueOnError)
	addr := flags.String("addr", "127.0.0.1:0", "address to listen on")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		term <- syscall.SIGTERM
	}()
	// Two loops or more: each closes its listeners before any
	// connection gets its FIN, and waits for the others', so a long-lived
	// client that reconnects is refused, never queued behind a sibling
	// listener about to close.
	srv, err := server.New(server.Config{Addr: *addr, Loops: max(2, runtime.GOMAXPROCS(0))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	fmt.Printf("listening on %s\n", srv.Addr())
	select {
	case <-term:
	case err := <-done:
		fmt.Fprintln(os.Stderr, "Serve before SIGTERM:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "Shutdown:", err)
		return 1
	}
	if err := <-done; !errors.Is(err, server.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "Serve:", err)
		return 1
	}
	return 0
}

// serve starts the test binary as a server on a free loopback port; the
// test's cleanup stops it, and fails the test unless it exits cleanly.
func serve(t *testing.T) *proctest.Proc {
	t.Helper()
	t.Setenv(serverEnv, "1")
	return proctest.Start(t, "server", os.Args[0])
}

// TestServerShutdown runs the workload against a real server, shuts the
// server down in the middle and checks what the clients counted: progress
// and no failure while it serves; the connections its shutdown ended
// counted as ended, not as resets or losses; and, once it is gone, refused
// dials, so that a restart test built on these counts can fail.
func TestServerShutdown(t *testing.T) {
	srv := serve(t)
	cfg := small(srv.Addr)
	r := startRun(t, cfg)

	before := waitFor(t, r, 3*time.Second, "progress", func(res Result) bool {
		return res.ChurnAnswered >= 20 && res.LongConns >= int64(cfg.LongLived) &&
			res.LongMessages >= 4*int64(cfg.LongLived*cfg.Burst)
	})
	t.Logf("serving: %v", before)
	if f := before.Failures(); len(f) > 0 {
		t.Fatalf("failures while the server serves: %q; errors %q", f, before.Errors)
	}

	srv.Stop(t) // SIGTERM: a graceful shutdown, and the process's clean exit
	evio := new(server.Server).Engine() == "evio"
	waitFor(t, r, 3*time.Second, "refusals", func(res Result) bool {
		ended := res.LongEnded
		if evio {
			ended += res.LongResets
		}
		return res.ChurnRefused > 0 && res.LongRefused > 0 && ended >= int64(cfg.LongLived)
	})
	res := r.Stop()
	t.Logf("stopped: %v", res)
	t.Logf("errors: %q", res.Errors)

	if res.LongMessages < before.LongMessages || res.ChurnAnswered < before.ChurnAnswered {
		t.Errorf("counts went back: before %v, after %v", before, res)
	}
	if res.LongPartial != 0 || res.BadAnswers != 0 || res.LongOtherErrors != 0 {
		t.Errorf("got %d partial bursts, %d bad answers, %d other errors; want 0",
			res.LongPartial, res.BadAnswers, res.LongOtherErrors)
	}
	if evio {
		// evio closes without a linger, and closes the connections it
		// accepts while it shuts down: a burst that arrives as it closes
		// resets the connection, and its messages go unanswered (see
		// server/engine_evio.go).
		t.Logf("evio: %d long-lived connections reset, %d messages unanswered", res.LongResets, res.LongUnanswered)
	} else if res.LongResets != 0 || res.LongUnanswered != 0 {
		t.Errorf("got %d long-lived resets and %d unanswered messages, want 0: the shutdown answers and ends connections with a FIN",
			res.LongResets, res.LongUnanswered)
	}
	if res.LongCrossed > res.LongEnded {
		t.Errorf("%d crossed bursts but %d ended connections", res.LongCrossed, res.LongEnded)
	}
	// A churner between its dial and its message as the shutdown began
	// may be ended unanswered (the server has not received the message)
	// or, queued as the listener closes, reset: such counts are logged,
	// not judged here. The refusals are the point.
	f := strings.Join(res.Failures(), "; ")
	for _, want := range []string{"churner dials refused", "long-lived dials refused"} {
		if !strings.Contains(f, want) {
			t.Errorf("Failures() = %q, want it to say %q", f, want)
		}
	}
	if res.Stuck != 0 {
		t.Errorf("%d clients stuck", res.Stuck)
	}
}

// fakeServer listens on loopback and hands each connection to handle, in
// a goroutine of its own, until the test ends.
func fakeServer(t *testing.T, handle func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := make(map[net.Conn]bool)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				handle(c.(*net.TCPConn))
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			})
		}
	})
	return ln.Addr().String()
}

// halfCloser is a server that reads once, sends answers(lines) answers for
// the lines it read, then its FIN, and reads until the client closes: the
// client's late input is never answered, and never makes a reset.
func halfCloser(answers func(lines int) int) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			return
		}
		k := answers(bytes.Count(b[:n], []byte("\n")))
		if _, err := c.Write(bytes.Repeat([]byte(answer), k)); err != nil {
			return
		}
		c.CloseWrite()
		for err == nil {
			_, err = c.Read(b)
		}
	}
}

// TestEnded: a server that answers a connection's first input and then
// closes it is seen clean. The long-lived clients find its FIN before
// they write again, most of the time: their bursts seldom cross it.
func TestEnded(t *testing.T) {
	addr := fakeServer(t, halfCloser(func(lines int) int { return lines }))
	cfg := small(addr)
	cfg.Think = 20 * time.Millisecond
	r := startRun(t, cfg)
	waitFor(t, r, 3*time.Second, "ends", func(res Result) bool {
		return res.ChurnAnswered >= 10 && res.LongEnded >= 3*int64(cfg.LongLived)
	})
	res := r.Stop()
	t.Logf("%v; errors %q", res, res.Errors)
	if f := res.Failures(); len(f) > 0 {
		t.Errorf("Failures() = %q, want none", f)
	}
	// One burst per connection; Stop may come before the FIN of the last
	// ones, or before their burst.
	if burst := int64(cfg.Burst); res.LongMessages < burst*res.LongEnded || res.LongMessages > burst*res.LongConns {
		t.Errorf("%d messages answered on %d connections (%d ended), want %d each",
			res.LongMessages, res.LongConns, res.LongEnded, cfg.Burst)
	}
	// The FIN comes right after the answers, and the next burst waits
	// for Think/2 at least: only a badly stalled machine lets it cross.
	if res.LongCrossed*2 > res.LongEnded {
		t.Errorf("%d of %d connections ended by a crossed burst: the check for a FIN before a burst does not work",
			res.LongCrossed, res.LongEnded)
	}
}

// TestCrossed: a server that closes without answering what it read looks,
// to a long-lived client, like a burst that crossed its FIN, which is no
// failure; a churner's message is lost.
func TestCrossed(t *testing.T) {
	addr := fakeServer(t, halfCloser(func(int) int { return 0 }))
	r := startRun(t, small(addr))
	waitFor(t, r, 3*time.Second, "crossed bursts", func(res Result) bool {
		return res.ChurnLost > 0 && res.LongCrossed > 0
	})
	res := r.Stop()
	t.Logf("%v; errors %q", res, res.Errors)
	if res.LongCrossed != res.LongEnded || res.LongMessages != 0 {
		t.Errorf("got %d crossed, %d ended, %d messages answered; want all ended crossed, none answered",
			res.LongCrossed, res.LongEnded, res.LongMessages)
	}
	if f := res.Failures(); len(f) != 1 || !strings.Contains(f[0], "churner connections ended before the answer") {
		t.Errorf("Failures() = %q, want lost churner messages only", f)
	}
}

// TestPartial: a server that answers half of a burst and closes loses the
// other half.
func TestPartial(t *testing.T) {
	addr := fakeServer(t, halfCloser(func(lines int) int { return lines / 2 }))
	cfg := small(addr)
	r := startRun(t, cfg)
	waitFor(t, r, 3*time.Second, "partial bursts", func(res Result) bool {
		return res.ChurnLost > 0 && res.LongPartial > 0
	})
	res := r.Stop()
	t.Logf("%v; errors %q", res, res.Errors)
	half := int64(cfg.Burst / 2)
	if res.LongMessages != half*res.LongPartial || res.LongUnanswered != half*res.LongPartial {
		t.Errorf("%d partial bursts, %d messages answered and %d unanswered; want %d of each per burst",
			res.LongPartial, res.LongMessages, res.LongUnanswered, half)
	}
	if res.LongEnded != 0 || res.LongCrossed != 0 || res.ChurnAnswered != 0 {
		t.Errorf("got %v, want no clean end and no churner answer", res)
	}
	if len(res.Failures()) != 3 {
		t.Errorf("Failures() = %q, want lost, partial and unanswered", res.Failures())
	}
}

// TestResets counts a server that reads and then resets every connection.
func TestResets(t *testing.T) {
	addr := fakeServer(t, func(c *net.TCPConn) {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var b [512]byte
		c.Read(b[:])
		c.SetLinger(0) // close sends a reset
	})
	r := startRun(t, small(addr))
	waitFor(t, r, 3*time.Second, "resets", func(res Result) bool {
		return res.ChurnResets > 0 && res.LongResets > 0
	})
	res := r.Stop()
	t.Logf("%v; errors %q", res, res.Errors)
	if res.ChurnAnswered != 0 || res.LongMessages != 0 || res.LongEnded != 0 || res.BadAnswers != 0 {
		t.Errorf("got %v, want no answers, no clean end, no bad answers", res)
	}
	if res.LongUnanswered == 0 {
		t.Errorf("no unanswered messages counted")
	}
	if !strings.Contains(strings.Join(res.Failures(), "; "), "reset") {
		t.Errorf("Failures() = %q, want resets", res.Failures())
	}
}

// TestWrongAnswers counts a server that answers with the wrong bytes.
func TestWrongAnswers(t *testing.T) {
	addr := fakeServer(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		br := bufio.NewReader(c)
		for {
			if _, err := br.ReadSlice('\n'); err != nil {
				return
			}
			// The spelling the protocol does not use: the same length.
			if _, err := c.Write([]byte("I received your message\n")); err != nil {
				return
			}
		}
	})
	r := startRun(t, small(addr))
	cfg := small(addr)
	waitFor(t, r, 3*time.Second, "bad answers", func(res Result) bool {
		return res.BadAnswers > int64(cfg.Churners+cfg.LongLived)
	})
	res := r.Stop()
	t.Logf("%v; errors %q", res, res.Errors)
	if res.ChurnAnswered != 0 || res.LongMessages != 0 {
		t.Errorf("got %d churner and %d long-lived answers, want 0", res.ChurnAnswered, res.LongMessages)
	}
	// Every connection made was judged by its bytes, nothing else.
	if f := res.Failures(); len(f) != 1 || !strings.Contains(f[0], "bytes other than the answer") {
		t.Errorf("Failures() = %q, want bad answers only", f)
	}
	var churn, long bool
	for _, e := range res.Errors {
		churn = churn || strings.HasPrefix(e, "churner: bad answer")
		long = long || strings.HasPrefix(e, "long-lived: bad answer")
	}
	if !churn || !long {
		t.Errorf("errors %q, want a bad answer from each kind of client", res.Errors)
	}
}

// TestStopBounded runs against a server that reads and never answers:
// every client waits for an answer, and Stop still returns within about
// Timeout, counting what never came.
func TestStopBounded(t *testing.T) {
	addr := fakeServer(t, func(c *net.TCPConn) {
		var b [512]byte
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	})
	cfg := small(addr)
	cfg.Timeout = 300 * time.Millisecond
	r := startRun(t, cfg)
	waitFor(t, r, 3*time.Second, "connections", func(res Result) bool {
		return res.ChurnConns >= int64(cfg.Churners) && res.LongConns >= int64(cfg.LongLived)
	})
	start := time.Now()
	res := r.Stop()
	took := time.Since(start)
	t.Logf("Stop took %v: %v; errors %q", took, res, res.Errors)
	if took > cfg.Timeout+time.Second {
		t.Errorf("Stop took %v, want about %v at most", took, cfg.Timeout)
	}
	if res.ChurnOtherErrors == 0 || res.LongUnanswered == 0 || res.LongOtherErrors == 0 {
		t.Errorf("got %v, want timeouts and unanswered messages", res)
	}
	if res.Stuck != 0 {
		t.Errorf("%d clients stuck", res.Stuck)
	}
}

// TestNoServer: with nothing listening, every dial is refused and counted,
// and the clients pause instead of spinning.
func TestNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := small(addr)
	r := startRun(t, cfg)
	const run = 200 * time.Millisecond
	time.Sleep(run)
	res := r.Stop()
	t.Logf("%v; errors %q", res, res.Errors)
	if res.ChurnRefused == 0 || res.LongRefused == 0 || res.ChurnConns != 0 || res.LongConns != 0 {
		t.Errorf("got %v, want refused dials only", res)
	}
	clients := int64(cfg.Churners + cfg.LongLived)
	// Each client pauses after a refused dial: twice the bound leaves
	// room for slow timers.
	if most := 2 * clients * int64(run/pauseAfterFailure); res.ChurnRefused+res.LongRefused > most {
		t.Errorf("%d refused dials in %v, want at most %d", res.ChurnRefused+res.LongRefused, run, most)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{},
		{Addr: "x:1", Churners: -1},
		{Addr: "x:1", LongLived: -1},
		{Addr: "x:1", Burst: -1},
		{Addr: "x:1", Think: -1},
		{Addr: "x:1", Timeout: -1},
	} {
		if r, err := Start(context.Background(), c); err == nil {
			r.Stop()
			t.Errorf("Start(%+v) = nil error", c)
		}
	}
}
