package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// gate is the line protocol, except that its Feed of a message "block"
// waits for release: on the poll engine Feed runs on the loop, so with
// one loop nothing is accepted meanwhile.
type gate struct {
	f       *server.Framer
	entered chan<- struct{}
	release <-chan struct{}
}

func (g *gate) Feed(out, in []byte) ([]byte, bool) {
	if bytes.Contains(in, []byte("block\n")) {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.f.Feed(out, in)
}

func (g *gate) End(out []byte) []byte { return g.f.End(out) }

// startBlocked serves one loop (cfg's other fields as given), connects a
// client and has the server stop in that client's Feed, then makes it
// leave new connections queued: on the poll engine the blocked loop does,
// on stdnet HoldAccepts. It returns the server, that client, whose
// message "block\n" is answered once unblock is called, and unblock.
func startBlocked(t *testing.T, cfg server.Config) (s *server.Server, blocker *client, unblock func()) {
	t.Helper()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	cfg.Loops = 1
	cfg.NewProtocol = func() server.Protocol {
		return &gate{f: server.NewFramer(server.DefaultMaxMessage, server.FramingLine), entered: entered, release: release}
	}
	s = startServer(t, cfg)
	if s.Engine() == "evio" {
		t.Skip("evio accepts inside the library: nothing can keep connections queued until Shutdown")
	}
	var once sync.Once
	unblock = func() { once.Do(func() { close(release) }) }
	// Before the server's own cleanup, which would wait for the loop.
	t.Cleanup(unblock)
	blocker = dial(t, s.Addr())
	// A round trip first: the poll engine reads a connection it has just
	// accepted at once, and a Feed that blocked there would leave the
	// rest of the accept batch to be taken after it returns.
	blocker.send("hi\n")
	blocker.expect(server.Answer)
	blocker.send("block\n")
	select {
	case <-entered:
	case <-time.After(ioTimeout):
		t.Fatal("Feed of \"block\" not called")
	}
	if !server.HoldAccepts(s) && s.Engine() != "poll" {
		t.Fatalf("engine %s: its accept loops could not be held", s.Engine())
	}
	return s, blocker, unblock
}

// shutdownAsync starts s's Shutdown; the result comes on the channel.
func shutdownAsync(s *server.Server) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	return done
}

// startShutdown is shutdownAsync, returning once every part of the engine
// has been told.
func startShutdown(t *testing.T, s *server.Server) <-chan error {
	t.Helper()
	done := shutdownAsync(s)
	waitFor(t, "Shutdown to reach the engine", func() bool { return server.StopRequested(s) })
	return done
}

// shutdownUnblocked is startShutdown, then unblocks s.
func shutdownUnblocked(t *testing.T, s *server.Server, unblock func()) <-chan error {
	t.Helper()
	done := startShutdown(t, s)
	unblock()
	return done
}

// TestShutdownServesAcceptQueue: connections waiting in a listener's
// accept queue when Shutdown begins, their handshakes done and their
// messages sent, are served as accepted ones are: each client reads its
// answer, then EOF. Closing the listener first resets them.
func TestShutdownServesAcceptQueue(t *testing.T) {
	const queued = 8
	s, blocker, unblock := startBlocked(t, server.Config{})
	var cs []*client
	for range queued {
		c := dial(t, s.Addr())
		c.send("m\n")
		cs = append(cs, c)
	}
	done := shutdownUnblocked(t, s, unblock)
	blocker.expectEnd(server.Answer)
	for i, c := range cs {
		if got, err := c.readEnd(); got != server.Answer || err != nil {
			t.Errorf("queued client %d: read %q then %v; want %q then EOF", i, got, err, server.Answer)
		}
		c.c.Close() // as expectEnd does: the server lingers until then
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	st := s.Stats()
	if got, want := st.Accepted.Load(), int64(1+queued); got != want {
		t.Errorf("Accepted = %d, want %d", got, want)
	}
	// Holding the queue sets a deadline on the listeners (HoldAccepts),
	// as a stop does: no accept error.
	if n := st.AcceptErrors.Load(); n != 0 {
		t.Errorf("AcceptErrors = %d, want 0", n)
	}
}

// TestShutdownLeavesHandedOverQueue: after StopAccepting, the connections
// queued on the listeners are the successor's: Shutdown closes this
// server's copies of the sockets without taking them, and the successor
// serves them.
func TestShutdownLeavesHandedOverQueue(t *testing.T) {
	if !supportsListeners(t) {
		t.Skip("this engine has no Listeners (TestListenersEvioRefuses)")
	}
	const queued = 4
	old, blocker, unblock := startBlocked(t, server.Config{})
	files, err := old.ListenerFiles()
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skip("ListenerFiles: sockets pass to a successor by descriptor number, on Unix only")
		}
		t.Fatal(err)
	}
	for _, f := range files {
		t.Cleanup(func() { f.Close() })
	}
	if err := old.StopAccepting(); err != nil {
		t.Fatal(err)
	}
	var cs []*client
	for range queued {
		c := dial(t, old.Addr())
		c.send("m\n")
		cs = append(cs, c)
	}
	done := shutdownUnblocked(t, old, unblock)
	blocker.expectEnd(server.Answer)
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if got := old.Stats().Accepted.Load(); got != 1 {
		t.Errorf("old server accepted %d, want 1: it took the successor's queue", got)
	}
	startServer(t, server.Config{Listeners: files})
	for _, c := range cs {
		c.expect(server.Answer)
		c.send("close\n")
		c.expectEnd(server.Closing)
	}
}

// TestShutdownRefusesReconnect: a graceful shutdown ends connections only
// once the listeners are closed, every loop's, so a client that dials
// again as soon as its connection ends is refused. Were a listener still
// open, the dial would be queued on it, and reset by its close, or served
// past the shutdown's start: a client that restarts its session on a
// server's EOF must be able to tell a server gone from one that failed
// it.
func TestShutdownRefusesReconnect(t *testing.T) {
	for _, loops := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) { testShutdownRefusesReconnect(t, loops) })
	}
}

func testShutdownRefusesReconnect(t *testing.T, loops int) {
	s := startServer(t, server.Config{Loops: loops})
	if s.Engine() == "evio" {
		t.Skip("evio closes its connections and its listener in no order it promises (see engine_evio.go)")
	}
	const clients = 4
	var cs []*client
	for range clients {
		c := dial(t, s.Addr())
		c.send("m\n")
		c.expect(server.Answer)
		cs = append(cs, c)
	}
	// Dials all along, so that the listener always has a connection on
	// its way: a shutdown that took its queue until none came for a while
	// would keep it open until its bound.
	dialing := make(chan struct{})
	go func() {
		defer close(dialing)
		for end := time.Now().Add(ioTimeout); time.Now().Before(end); {
			d, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
			if err != nil {
				return
			}
			d.Close()
		}
	}()
	time.Sleep(10 * time.Millisecond)
	done := startShutdown(t, s)
	// Input during the drain: each connection answers it and ends within
	// a millisecond or two of quiet, not after a wait for input.
	for _, c := range cs {
		c.send("m\n")
	}
	for i, c := range cs {
		if got, err := c.readEnd(); got != server.Answer || err != nil {
			t.Fatalf("client %d: read %q then %v; want %q then EOF", i, got, err, server.Answer)
		}
		c.c.Close()
		if d, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout); err == nil {
			d.Close()
			t.Fatalf("client %d: dial after the server's EOF connected; want it refused", i)
		} else if !isRefused(err) {
			t.Fatalf("client %d: dial after the server's EOF: %v; want it refused", i, err)
		}
	}
	<-dialing
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownTakesResetQueue: connections reset while they wait in the
// accept queue (a health check closing with SO_LINGER 0, say) are taken
// by a shutdown like the others, as Linux's accept(2) hands them out with
// no peer left, and closed; the server serves the rest and ends cleanly.
func TestShutdownTakesResetQueue(t *testing.T) {
	const queued = 4
	s, blocker, unblock := startBlocked(t, server.Config{})
	for range queued {
		c := dial(t, s.Addr())
		c.c.SetLinger(0)
		c.c.Close()
	}
	live := dial(t, s.Addr())
	live.send("m\n")
	done := shutdownUnblocked(t, s, unblock)
	blocker.expectEnd(server.Answer)
	live.expectEnd(server.Answer)
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// pausedOnOpen is a Handler that greets a client, then reads nothing.
type pausedOnOpen struct{}

func (pausedOnOpen) OnOpen(c *server.Conn) {
	c.Write([]byte("hi\n"))
	c.PauseReading()
}
func (pausedOnOpen) OnData(*server.Conn, []byte) {}
func (pausedOnOpen) OnClose(*server.Conn, error) {}

// TestShutdownRefusesReconnectPaused: as TestShutdownRefusesReconnect,
// for a Handler's connection whose reading is paused, which a shutdown
// ends from another path, while a long accept queue is taken first.
func TestShutdownRefusesReconnectPaused(t *testing.T) {
	s, ok := handlerServer(t, server.Config{Loops: 1}, pausedOnOpen{})
	if !ok {
		return
	}
	c := dial(t, s.Addr())
	c.expect("hi\n")
	// stdnet: the accept loops leave what comes next queued; the poll
	// engine's loop accepts it, which is no matter there, as the loop
	// closes its listener before it ends any connection.
	server.HoldAccepts(s)
	for range 3000 {
		dial(t, s.Addr())
	}
	// Read at once: the FIN that came before the listener closed is seen
	// while the queue is still being taken.
	done := shutdownAsync(s)
	if got, err := c.readEnd(); got != "" || err != nil {
		t.Fatalf("read %q then %v; want EOF", got, err)
	}
	if d, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout); err == nil {
		d.Close()
		t.Fatal("dial after the server's EOF connected; want it refused")
	} else if !isRefused(err) {
		t.Fatalf("dial after the server's EOF: %v; want it refused", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownWaitsForSiblingListeners: a loop that has closed its
// listener keeps its connections until every loop has closed its own, so
// that a client reconnecting on its FIN is refused, not served by a
// sibling loop that has not stopped yet; a sibling stuck past siblingWait
// (2 s) holds it no longer. One loop is held in a Run as the shutdown
// begins; a client of the other reads to its EOF and dials at once.
func TestShutdownWaitsForSiblingListeners(t *testing.T) {
	t.Run("released", func(t *testing.T) {
		c, redial, release, done := holdSibling(t)
		select {
		case err := <-redial:
			t.Fatalf("EOF while the held loop's listener was open, then the dial: %v; want no EOF before it closes", err)
		case <-time.After(500 * time.Millisecond):
		}
		close(release)
		released := time.Now()
		if err := receive(t, redial, "the EOF and the dial"); !isRefused(err) {
			t.Fatalf("dial after the server's EOF: %v; want it refused", err)
		}
		// The last listener's close wakes the loop that waits for it.
		if d := time.Since(released); d > time.Second {
			t.Errorf("EOF %v after the sibling closed its listener; want it within a second, not at siblingWait", d)
		}
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	t.Run("stuck", func(t *testing.T) {
		c, redial, release, done := holdSibling(t)
		start := time.Now()
		select {
		case <-redial:
			// Dialed onto the stuck loop's listener: served once it stops.
			if d := time.Since(start); d < time.Second {
				t.Errorf("EOF after %v; want it at siblingWait, 2s", d)
			}
		case <-time.After(4 * time.Second):
			t.Errorf("no EOF within 4s of a sibling stuck in a callback; want it at siblingWait, 2s")
		}
		close(release)
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

// holdSibling starts a server of two loops, holds one of them in a Run
// until release is closed, and begins its Shutdown (done). A client of the
// other loop reads to its EOF and dials the server again: redial says how
// that went, nil if it connected. closer closes every client.
func holdSibling(t *testing.T) (closer io.Closer, redial <-chan error, release chan struct{}, done <-chan error) {
	t.Helper()
	r := newRecorder(true)
	s, ok := handlerServer(t, server.Config{Loops: 2}, r)
	if !ok {
		t.SkipNow()
	}
	if !server.SiblingListeners(s) {
		t.Skipf("the %s engine here has no loops with listeners of their own", s.Engine())
	}
	release = make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	// Connections, each known by its client's address.
	clients := closers{}
	first := dial(t, s.Addr())
	clients[first.c.LocalAddr().String()] = first
	held := receive(t, r.opened, "OnOpen")
	// Its loop runs nothing else until release: a connection whose
	// OnOpen runs meanwhile is the other loop's.
	blocked := make(chan struct{})
	if err := held.Run(func() { close(blocked); <-release }); err != nil {
		t.Fatal(err)
	}
	receive(t, blocked, "the held loop's Run")
	var other *server.Conn
	for range 64 {
		c := dial(t, s.Addr())
		clients[c.c.LocalAddr().String()] = c
		select {
		case other = <-r.opened:
		case <-time.After(100 * time.Millisecond):
		}
		if other != nil {
			break
		}
	}
	if other == nil {
		t.Fatal("64 connections, all on the held loop")
	}
	c := clients[other.RemoteAddr().String()]
	done = shutdownAsync(s)
	ch := make(chan error, 1)
	go func() {
		if _, err := c.readEnd(); err != nil {
			ch <- fmt.Errorf("reading to EOF: %w", err)
			return
		}
		d, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
		if err == nil {
			d.Close()
		}
		ch <- err
	}()
	return clients, ch, release, done
}

// closers closes clients, so that the server's FINs need no linger.
type closers map[string]*client

func (cs closers) Close() error {
	for _, c := range cs {
		c.c.Close()
	}
	return nil
}
