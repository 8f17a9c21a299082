//go:build evio

// The evio tag takes precedence over stdnet; see engine_stdnet.go for the
// build lines of all three engines.

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/evio"
)

const engineName = "evio"

// handlers: evio has no way for another goroutine to write to a
// connection without overwriting what is pending (evio issue #74).
const handlers = false

// The evio engine serves the protocol on github.com/tidwall/evio v1.0.8, for
// comparison with the native engine. evio owns the sockets and calls back
// with bytes; this file maps Config onto those callbacks as far as evio
// allows. What it cannot do, with the evio code responsible (file:line in
// the module at v1.0.8; evio_unix.go serves Linux and the BSDs, evio_std.go
// every other GOOS):
//
//   - No answer at EOF. On a read of 0 bytes evio closes the descriptor and
//     only then fires Closed (evio_unix.go:432-436, loopCloseConn at
//     161-166), so Protocol.End's answer has no socket to go to: "bye" then
//     EOF gets nothing, "close" then EOF gets no "closing".
//   - No half-close and no linger, so answers are lost after "close". Close
//     is a bare close(2) as soon as the last answer is handed to the kernel
//     (evio_unix.go:397-403, 164); there is no shutdown(SHUT_WR) and no
//     draining. If the client's input is unread at that moment, or more
//     arrives later (a client that sent more after "close"), the kernel
//     resets the connection and throws away the answers still in the
//     socket's send buffer, up to megabytes: the client gets its answers
//     cut short and then ECONNRESET, or EOF if a write of its own took the
//     reset error. TestCloseQueuedAnswers and TestDifferential pin this
//     down (one run: 128000 of 2400007 bytes delivered). The same holds
//     for the close that ends a graceful shutdown.
//   - No MaxPendingOutput. evio never reads while a connection has unwritten
//     output (the dispatch in evio_unix.go:239-244 puts writes first), which
//     pauses a client that does not read, but each read takes up to 64 KiB
//     (evio_unix.go:145), so up to 64 KiB × MaxExpansion (1.5 MiB) of answers
//     wait per connection whatever MaxPendingOutput says. Stats.Backpressure
//     stays zero.
//   - Busy loop while paused. The descriptor stays registered for input and
//     output, level-triggered (evio_unix.go:449-451, internal_linux.go:
//     112-121). While such a client's socket buffer is full and more of its
//     input waits, every epoll_wait returns at once, the dispatch picks the
//     write, which fails with EAGAIN (evio_unix.go:373-377): the loop spins
//     at 100% CPU until the client reads. Its other clients are still
//     served, each pass.
//   - Accept errors stop the server. Any accept error but EAGAIN, EMFILE
//     included, ends the loop (evio_unix.go:283-289); loopRun drops the error
//     (229) and the server shuts down (118-137). Serve then returns an error
//     saying so. Stats.AcceptErrors stays zero.
//   - Opened fires late: accept only registers the descriptor
//     (evio_unix.go:293-297) and Opened runs on its first event (237-238).
//     MaxConns is enforced there, on a connection evio already holds, by
//     returning Close; new connections during a shutdown are closed the same
//     way, as evio cannot stop accepting short of stopping.
//   - No TCP_NODELAY: accepted with a bare syscall.Accept (evio_unix.go:283,
//     290), so Nagle's algorithm may hold a second small answer until the
//     first is acknowledged. Correctness is unaffected, latency is not.
//   - Output can be lost by evio's own shutdown, which closes every
//     connection without writing what is pending (evio_unix.go:130-136), and
//     by a Wake that returns output, which replaces the pending output
//     instead of appending (evio_unix.go:418-422). This engine never returns
//     output from a wake, and its graceful shutdown closes each connection
//     itself, through a wake that returns Close, which evio honours only
//     after the pending output is written (239-242); only a shutdown whose
//     context expires, or Serve's context ending, falls back to evio's.
//     Partial writes themselves are safe: the rest stays queued
//     (evio_unix.go:388-390) and no read replaces it.
//   - Timers: evio runs Tick on a goroutine that sleeps between calls
//     (evio_unix.go:249-256) and cannot be woken early, so IdleTimeout,
//     shutdown and context cancellation act within one tick (at most
//     evioTick), and every loop also wakes 10 times a second when idle
//     (internal_linux.go:57).
//   - evio cannot tell whether input waits unread, so the shutdown drain
//     takes a connection whose Data has not run for evioDrainQuiet to be
//     done; a loop starved of CPU for that long can make it close a
//     connection with messages still unread (and reset it, as above).
//   - IdleTimeout needs a wake to close, and a Close waits for pending output
//     to be written: a client that neither reads nor sends, with answers
//     still pending, is never closed (until a shutdown's context expires).
//   - A stray write after evio stops: see evioNever. This engine stops evio
//     only from Tick, which avoids it, but when evio stops on its own (an
//     accept error) its ticker still writes uint64(1) into whatever then
//     holds the number of the closed eventfd, up to evioTick later.
//   - Its listener is closed twice: syscall.Close(ln.fd) and then
//     ln.f.Close() on the *os.File that fd came from (evio_unix.go:494-500,
//     ln.fd set at 531). If another goroutine opens a descriptor in between,
//     the second close closes that one instead.
//   - Panics: evio panics if epoll/kqueue creation or epoll_ctl fails
//     (internal_linux.go:20-35, 80-121).
//   - BytesOut counts answers when handed to evio, not when written: evio
//     reports no write completion.
//   - Elsewhere than Linux and the BSDs, evio_std.go runs a goroutine per
//     connection feeding one loop, which writes with a blocking Write and
//     ignores its error (evio_std.go:386): one client that does not read
//     stalls every client of its loop. Its Wake is a send on the loop's
//     unbuffered channel (evio_std.go:72), so wakes are sent from their own
//     goroutine there. That path is not tested here.

const (
	// evioTick is the Tick period when nothing needs closer attention.
	evioTick = 100 * time.Millisecond
	// evioDrainQuiet: during a graceful shutdown a connection is closed
	// once no input arrived for this long, so messages already on their
	// way are answered. Longer than stdnet's: it measures the time since
	// evio last called Data, not whether input waits.
	evioDrainQuiet = 50 * time.Millisecond
	// evioDrainMax bounds that drain for a client that keeps sending.
	evioDrainMax = time.Second
	// evioNever is the delay tick returns with evio.Shutdown. evio's ticker
	// goroutine sleeps for it and then triggers the loop's poller, even
	// after evio closed that poller (evio_unix.go:249-256, Trigger in
	// internal_linux.go:46-51; internal_bsd.go:46-54 likewise calls kevent
	// on the old kqueue number): on Linux it writes 8 bytes, uint64(1), to
	// the eventfd's old descriptor number, which by then may be any socket
	// or file of the process. Seen in these tests: a client of another
	// server "sent" "\x01\x00\x00\x00\x00\x00\x00\x00". So evio is
	// stopped only from tick, whose ticker then sleeps for ever: one parked
	// goroutine per stopped server instead of a stray write.
	evioNever = time.Duration(math.MaxInt64)
)

// Why a connection was woken.
const (
	wakeIdle = 1 + iota
	wakeShutdown
)

// evioStd: evio serves through evio_std.go on this GOOS.
var evioStd = !strings.Contains(" linux darwin dragonfly freebsd netbsd openbsd ", " "+runtime.GOOS+" ")

type evioEngine struct {
	cfg      *Config
	st       *Stats
	la       net.Addr
	rejected *rateLog
	logConns bool

	addrc   chan net.Addr // Serving's addresses, for newEngine
	release chan struct{} // closed by serve: Serving lets evio run
	abort   chan struct{} // closed by a Shutdown before Serve
	done    chan struct{} // closed when evio.Serve returned
	err     error         // evio.Serve's result, set before done closes

	draining atomic.Bool  // Shutdown began
	hard     atomic.Bool  // stop at the next tick, closing everything
	stopped  atomic.Bool  // this engine told evio to shut down
	writes   atomic.Int64 // write attempts (PreWrite), busy ones included

	mu         sync.Mutex
	conns      map[*evioConn]struct{}
	served     bool
	shut       bool
	drainStart time.Time
}

// evioConn is one connection's state. Only its loop's goroutine touches it,
// but for last and wake, which Tick reads from loop 0.
type evioConn struct {
	c       evio.Conn
	p       Protocol
	out     []byte
	remote  string
	why     string // why it closes, once it returned Close
	closing bool   // Close returned: evio writes what is pending, then closes
	last    atomic.Int64
	wake    atomic.Int32
}

func newEngine(cfg *Config, st *Stats) (engine, error) {
	// evio binds its own sockets and never shows them: it cannot serve on
	// given ones or hand its own over.
	if len(cfg.Listeners) > 0 {
		return nil, fmt.Errorf("server: the evio engine has no Listeners: %w", errors.ErrUnsupported)
	}
	// evio parses its own scheme and "?options" out of the address.
	if strings.ContainsAny(cfg.Addr, "?/") {
		return nil, fmt.Errorf("server: address %q: want host:port", cfg.Addr)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, err
	}
	// The reference engine stays as small as evio's own model: it serves
	// the protocol, not a balancer's header or per-address caps.
	if cfg.ProxyProtocol || cfg.MaxConnsPerIP > 0 {
		return nil, errors.New("server: the evio engine has no ProxyProtocol or MaxConnsPerIP")
	}
	if cfg.TLS != nil {
		return nil, fmt.Errorf("server: the evio engine has no TLS: %w", errors.ErrUnsupported)
	}
	e := &evioEngine{
		cfg:      cfg,
		st:       st,
		rejected: newRateLog(cfg.Logger, slog.LevelInfo, "connection rejected"),
		logConns: cfg.Logger.Enabled(context.Background(), slog.LevelDebug),
		addrc:    make(chan net.Addr, 1),
		release:  make(chan struct{}),
		abort:    make(chan struct{}),
		done:     make(chan struct{}),
		conns:    make(map[*evioConn]struct{}),
	}
	events := evio.Events{
		NumLoops: cfg.Loops,
		Serving:  e.serving,
		Opened:   e.opened,
		Closed:   e.closed,
		Data:     e.data,
		Tick:     e.tick,
		PreWrite: func() { e.writes.Add(1) },
	}
	// evio binds in Serve and then calls Serving, which holds it until
	// serve is called: the address is bound now, and connections wait in
	// the backlog until then, as with the other engines.
	go func() {
		e.err = evio.Serve(events, "tcp://"+cfg.Addr)
		close(e.done)
	}()
	select {
	case e.la = <-e.addrc:
		return e, nil
	case <-e.done:
		if e.err == nil {
			e.err = errors.New("server: evio stopped before serving")
		}
		return nil, e.err
	}
}

func (e *evioEngine) addr() net.Addr { return e.la }

// ready is release: evio serves once Serving returns.
func (e *evioEngine) ready() <-chan struct{} { return e.release }

func (e *evioEngine) listenerFiles() ([]*os.File, error) {
	return nil, fmt.Errorf("server: the evio engine cannot hand its listeners over: %w", errors.ErrUnsupported)
}

func (e *evioEngine) stopAccepting() error {
	return fmt.Errorf("server: the evio engine cannot stop accepting alone: %w", errors.ErrUnsupported)
}

func (e *evioEngine) serving(srv evio.Server) evio.Action {
	e.addrc <- srv.Addrs[0]
	select {
	case <-e.release:
		return evio.None
	case <-e.abort:
		e.stopped.Store(true)
		return evio.Shutdown
	}
}

func (e *evioEngine) serve(ctx context.Context) error {
	e.mu.Lock()
	if e.served {
		e.mu.Unlock()
		return errors.New("server: Serve called twice")
	}
	e.served = true
	if e.shut {
		e.mu.Unlock()
		<-e.done
		return ErrServerClosed
	}
	close(e.release)
	e.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { e.hard.Store(true) })
	defer stop()
	<-e.done
	e.mu.Lock()
	shut := e.shut
	e.mu.Unlock()
	switch {
	case shut:
		return ErrServerClosed
	case ctx.Err() != nil:
		return ctx.Err()
	case e.err != nil:
		return e.err
	case !e.stopped.Load():
		// evio_unix.go:283-289 and 229: an accept error ends evio.
		return errors.New("server: evio stopped on its own, most likely after an accept error (EMFILE?)")
	}
	return ErrServerClosed
}

func (e *evioEngine) shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.shut {
		e.shut = true
		if e.served {
			e.drainStart = time.Now()
			e.draining.Store(true)
		} else {
			close(e.abort)
		}
	}
	e.mu.Unlock()
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	e.hard.Store(true)
	<-e.done
	return ctx.Err()
}

// tick closes idle connections and drives a shutdown. evio calls it on
// loop 0 and sleeps for the duration it returns.
func (e *evioEngine) tick() (time.Duration, evio.Action) {
	if e.hard.Load() {
		e.stopped.Store(true)
		return evioNever, evio.Shutdown
	}
	draining := e.draining.Load()
	now := time.Now()
	e.mu.Lock()
	if draining && len(e.conns) == 0 {
		e.mu.Unlock()
		e.stopped.Store(true)
		return evioNever, evio.Shutdown
	}
	for ec := range e.conns {
		if ec.wake.Load() != 0 {
			continue
		}
		quiet := now.Sub(time.Unix(0, ec.last.Load()))
		switch {
		case draining && (quiet >= evioDrainQuiet || now.Sub(e.drainStart) >= evioDrainMax):
			ec.wake.Store(wakeShutdown)
			e.wake(ec.c)
		case e.cfg.IdleTimeout > 0 && quiet >= e.cfg.IdleTimeout:
			ec.wake.Store(wakeIdle)
			e.wake(ec.c)
		}
	}
	e.mu.Unlock()
	d := evioTick
	if draining {
		d = evioDrainQuiet / 2
	}
	if e.cfg.IdleTimeout > 0 {
		d = min(d, max(e.cfg.IdleTimeout/4, time.Millisecond))
	}
	return d, evio.None
}

// wake asks evio for a Data call with no input on c's loop. On the unix
// path it is an eventfd or kqueue trigger, safe while e.mu is held: a
// connection still in e.conns has its loop's poller open, since evio fires
// Closed for every connection before closing a poller (evio_unix.go:
// 131-135).
func (e *evioEngine) wake(c evio.Conn) {
	if evioStd {
		go c.Wake()
		return
	}
	c.Wake()
}

func (e *evioEngine) opened(c evio.Conn) ([]byte, evio.Options, evio.Action) {
	opts := evio.Options{ReuseInputBuffer: true} // Feed does not retain its input
	if e.draining.Load() || e.hard.Load() {
		return nil, opts, evio.Close
	}
	ec := &evioConn{c: c, p: e.cfg.NewProtocol()}
	ec.last.Store(time.Now().UnixNano())
	e.mu.Lock()
	if e.cfg.MaxConns > 0 && len(e.conns) >= e.cfg.MaxConns {
		e.mu.Unlock()
		e.st.Rejected.Add(1)
		e.rejected.Log("reason", "MaxConns", "max_conns", e.cfg.MaxConns)
		return nil, opts, evio.Close
	}
	e.conns[ec] = struct{}{}
	e.mu.Unlock()
	c.SetContext(ec)
	e.st.Accepted.Add(1)
	e.st.Open.Add(1)
	if e.logConns {
		ec.remote = c.RemoteAddr().String()
		e.cfg.Logger.Debug("connection opened", "remote", ec.remote)
	}
	return nil, opts, evio.None
}

func (e *evioEngine) data(c evio.Conn, in []byte) ([]byte, evio.Action) {
	ec, _ := c.Context().(*evioConn)
	if ec == nil || ec.closing {
		// Returning None here would cancel a pending Close
		// (evio_unix.go:419).
		return nil, evio.Close
	}
	if in == nil {
		return e.woken(ec)
	}
	ec.last.Store(time.Now().UnixNano())
	ec.wake.CompareAndSwap(wakeIdle, 0) // input after the idle tick: not idle
	e.st.BytesIn.Add(int64(len(in)))
	out, done := ec.p.Feed(ec.out[:0], in)
	ec.out = out // evio copies it (evio_unix.go:446)
	// Again after Feed: a long Feed is not a quiet connection.
	ec.last.Store(time.Now().UnixNano())
	e.st.BytesOut.Add(int64(len(out)))
	if e.cfg.builtin {
		e.st.Messages.Add(answered(out, done))
	}
	if done {
		ec.closing, ec.why = true, "close"
		return out, evio.Close
	}
	return out, evio.None
}

// woken handles a Data call without input: a wake from tick. It never
// returns output, which evio would put in place of what is pending.
func (e *evioEngine) woken(ec *evioConn) ([]byte, evio.Action) {
	switch ec.wake.Swap(0) {
	case wakeShutdown:
		ec.closing, ec.why = true, "shutdown"
		return nil, evio.Close
	case wakeIdle:
		if time.Since(time.Unix(0, ec.last.Load())) >= e.cfg.IdleTimeout {
			e.st.IdleClosed.Add(1)
			ec.closing, ec.why = true, "idle"
			return nil, evio.Close
		}
	}
	return nil, evio.None
}

func (e *evioEngine) closed(c evio.Conn, err error) evio.Action {
	ec, _ := c.Context().(*evioConn)
	if ec == nil {
		return evio.None // closed by opened
	}
	c.SetContext(nil)
	e.mu.Lock()
	delete(e.conns, ec)
	e.mu.Unlock()
	e.st.Open.Add(-1)
	why := ec.why
	switch {
	case why != "":
	case e.stopped.Load():
		why = "shutdown"
	case err != nil:
		e.st.Resets.Add(1)
		why = "error: " + err.Error()
	default:
		// EOF. Protocol.End's answer is lost: the descriptor is closed.
		why = "eof"
	}
	if e.logConns {
		e.cfg.Logger.Debug("connection closed", "remote", ec.remote, "reason", why)
	}
	// Not evio.Shutdown even for the last connection of a shutdown: only
	// tick may stop evio (see evioNever).
	return evio.None
}
