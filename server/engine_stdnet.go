//go:build !evio && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

// Exactly one engine compiles for every GOOS and tag set:
//
//	engine_evio.go    evio
//	engine_stdnet.go  !evio && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd))
//	engine_poll.go    !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd)
//
// evio takes precedence: -tags evio,stdnet builds the evio engine. stdnet
// is the default where package poll has no backend (Windows, Plan 9, ...).

package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const engineName = "stdnet"

// handlers: the engine serves a Config.Handler (stdnet_handler.go). A
// client that does not read meets MaxPendingOutput about as soon as on the
// poll engine where the system has TCP_NOTSENT_LOWAT (limitUnsentStd), and
// Abort resets the connection, so the kernel does not go on sending it
// what it was owed (resetConn).
const handlers = true

// Timing of the goroutine-per-connection engine.
const (
	// stdLinger bounds how long a connection that sent "close" is drained
	// after its write side is shut, waiting for the client's EOF. Closing a
	// socket with unread input sends a reset (RFC 1122, 4.2.2.13), and a
	// reset can destroy answers the client has not read yet.
	stdLinger = 2 * time.Second
	// stdShutdownLinger is that bound during a graceful shutdown.
	stdShutdownLinger = 500 * time.Millisecond
	// stdDrainWait: during a graceful shutdown a connection waits this long
	// for input already on its way (as the poll engine's drainWait), and
	// once input has come, reads on until none arrives for stdDrainQuiet.
	// So the FIN follows the answers at once, and a client that reads its
	// answers sees the EOF before it writes again.
	stdDrainWait  = 100 * time.Millisecond
	stdDrainQuiet = time.Millisecond
	// stdDrainMax bounds that drain for a client that keeps sending.
	stdDrainMax = time.Second
	// Accept failures (EMFILE, ENFILE, ENOBUFS) back off exponentially
	// between these bounds instead of spinning on a listener that stays
	// readable. A failure of the one connection taken (connAcceptErr) does
	// not: it is off the queue, and waiting would hold up those behind it.
	stdBackoffMin = 5 * time.Millisecond
	stdBackoffMax = time.Second
	// maxDeadAccepts is how many accepts in a row may fail for their own
	// connection (connAcceptErr) and be retried at once, enough for a
	// reset storm's queue; then one back-off, so that a listener failing
	// every accept so cannot spin.
	maxDeadAccepts = 1024
	// A graceful shutdown takes the connections queued on a listener
	// before closing it (see takeQueued), at most stdAcceptQueued of them
	// (the poll engine's acceptQueued).
	stdAcceptQueued = 1 << 14
	// stdReadMax bounds a connection's read buffer, as the poll engine's
	// one per loop (readBufSize).
	stdReadMax = 64 << 10
	// stdUnsentLimit is about the most of a connection's output the
	// kernel holds unsent, where the system has TCP_NOTSENT_LOWAT: the
	// poll engine's unsentLimit, whose comment says why. Without it a
	// blocking Write to a client that does not read goes on until the
	// send buffer, autotuned up to tcp_wmem's maximum (4 MiB), is full.
	stdUnsentLimit = 16 << 10
)

// stdnetEngine runs a goroutine per connection on package net. Blocking
// writes give backpressure for free: a connection's goroutine does not read
// while its answers wait in Write, and it reads at most
// max(256, MaxPendingOutput/MaxExpansion) bytes at a time, so a client that
// does not read costs at most MaxPendingOutput of answers (6 KiB when that
// is smaller) plus the socket buffers (stdUnsentLimit of unsent output,
// where the system has TCP_NOTSENT_LOWAT). Over TLS crypto/tls adds the
// ciphertext of the record being written (at most 16 KiB and its
// overhead), which it keeps as a buffer for the next.
// Stats.Backpressure stays zero: the pause is invisible inside Write.
type stdnetEngine struct {
	cfg *Config
	st  *Stats
	lns []net.Listener

	rejected  *rateLog
	acceptErr *rateLog
	proxyErr  *rateLog
	tlsErr    *rateLog
	ips       *ipLimit // nil without Config.MaxConnsPerIP
	logConns  bool

	// draining: every listener is closed (or handed over) after a
	// graceful stop began, and each connection drains, then closes. It
	// waits for the listeners so that a client that reconnects when its
	// connection ends is refused, not queued on a listener about to close,
	// whose close would reset it.
	draining atomic.Bool
	killed   atomic.Bool // everything was closed at once
	// held counts the accept loops that a deadline made wait for the
	// stop (see acceptLoop), so that a test can know they take no more.
	held atomic.Int32

	// With Config.TLS (stdnet_tls.go): a handshake holds a slot of
	// hsSlots, MaxHandshakes of them, and its context derives from hsCtx,
	// which hsCancel ends on a forced stop, and stdDrainMax into a
	// shutdown.
	hsSlots  chan struct{}
	hsCtx    context.Context
	hsCancel context.CancelFunc

	mu        sync.Mutex
	conns     map[*stdConn]struct{}
	running   int  // accept loops and connection goroutines
	acceptors int  // accept loops
	served    bool // Serve was called
	stopping  bool // no accept loop starts; the running ones end
	shutting  bool // Shutdown was called
	// queueing: a graceful stop left the listeners to the accept loops,
	// which take what is queued, then close them (see takeQueued).
	queueing bool
	// handedOver: StopAccepting was called; the accept loops return and
	// the listeners stay open until the shutdown.
	handedOver atomic.Bool
	readyc     chan struct{} // closed once the accept loops run
	stop       chan struct{}
	// listenersGone is closed once stopping and acceptors == 0: every
	// listener is closed, or its queue handed over (StopAccepting).
	listenersGone chan struct{}
	gone          chan struct{} // closed once stopping and running == 0
}

// stdConn is one connection. mu orders the connection's own read deadlines
// with the one Shutdown sets to interrupt a blocked Read, and guards
// handshaking and the change of c.
type stdConn struct {
	// raw is the socket; c is what the protocol reads and writes: raw, or
	// the tls.Conn over it once the handshake is done, with tls its
	// transport. Closes and resets take raw (see stdnet_tls.go).
	raw, c      net.Conn
	tls         *stdTransport
	handshaking bool // in tls.Conn.HandshakeContext, bounded by its context
	mu          sync.Mutex
	drainUntil  time.Time      // set on the first drain read
	drained     bool           // input came during the drain
	remote      netip.AddrPort // the client's: the PROXY header's if it named one
	counted     bool           // remote counts in the engine's ipLimit
}

func newEngine(cfg *Config, st *Stats) (engine, error) {
	var lns []net.Listener
	var err error
	if len(cfg.Listeners) > 0 {
		lns, err = inheritStd(cfg.Listeners)
	} else {
		lns, err = listenStd(cfg.Addr)
	}
	if err != nil {
		return nil, err
	}
	e := &stdnetEngine{
		cfg:       cfg,
		st:        st,
		lns:       lns,
		rejected:  newRateLog(cfg.Logger, slog.LevelInfo, "connection rejected"),
		proxyErr:  newRateLog(cfg.Logger, slog.LevelInfo, "PROXY header rejected"),
		tlsErr:    newRateLog(cfg.Logger, slog.LevelInfo, "TLS handshake failed"),
		ips:       newIPLimit(cfg.MaxConnsPerIP),
		acceptErr: newRateLog(cfg.Logger, slog.LevelWarn, "accept failed"),
		logConns:  cfg.Logger.Enabled(context.Background(), slog.LevelDebug),
		conns:     make(map[*stdConn]struct{}),
		stop:      make(chan struct{}),
		gone:      make(chan struct{}),
		readyc:    make(chan struct{}),

		listenersGone: make(chan struct{}),
	}
	e.hsCtx, e.hsCancel = context.WithCancel(context.Background())
	if cfg.TLS != nil {
		e.hsSlots = make(chan struct{}, cfg.MaxHandshakes)
	}
	return e, nil
}

// inheritStd makes listeners of files, which must be listening TCP
// sockets, so net makes them *net.TCPListener; net duplicates each
// descriptor.
func inheritStd(files []*os.File) ([]net.Listener, error) {
	var lns []net.Listener
	for _, f := range files {
		err := checkListenerFile(f)
		var ln net.Listener
		if err == nil {
			ln, err = net.FileListener(f)
		}
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, fmt.Errorf("server: listener %q: %w", f.Name(), err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// listenStd listens on addr. Package net already makes an empty host one
// dual-stack socket where the system allows IPv4-mapped addresses; where it
// does not (OpenBSD) that socket is IPv4 only, and an IPv6 listener on the
// same port is added, best effort.
func listenStd(addr string) ([]net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	lns := []net.Listener{ln}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && host == "" && a.IP.To4() != nil {
		if ln6, err := net.ListenTCP("tcp6", &net.TCPAddr{IP: net.IPv6unspecified, Port: a.Port}); err == nil {
			lns = append(lns, ln6)
		}
	}
	return lns, nil
}

func (e *stdnetEngine) addr() net.Addr { return e.lns[0].Addr() }

func (e *stdnetEngine) ready() <-chan struct{} { return e.readyc }

func (e *stdnetEngine) listenerFiles() ([]*os.File, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return nil, errors.New("server: stopping; the listeners are closed or about to be")
	}
	var files []*os.File
	for _, ln := range e.lns {
		rc, err := ln.(*net.TCPListener).SyscallConn()
		var f *os.File
		if err == nil {
			f, err = dupFile(rc, "tcp:"+ln.Addr().String())
		}
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func (e *stdnetEngine) stopAccepting() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return errors.New("server: stopping already")
	}
	e.handedOver.Store(true)
	// A deadline in the past wakes a blocked Accept without closing the
	// socket, whose queue is the new owner's.
	for _, ln := range e.lns {
		ln.(*net.TCPListener).SetDeadline(time.Unix(1, 0))
	}
	return nil
}

func (e *stdnetEngine) serve(ctx context.Context) error {
	e.mu.Lock()
	if e.served {
		e.mu.Unlock()
		return errors.New("server: Serve called twice")
	}
	e.served = true
	if !e.stopping {
		for _, ln := range e.lns {
			e.running++
			e.acceptors++
			go e.acceptLoop(ln)
		}
		close(e.readyc)
	}
	e.mu.Unlock()
	select {
	case <-e.gone:
		return ErrServerClosed
	case <-ctx.Done():
	}
	e.mu.Lock()
	shut := e.shutting
	e.mu.Unlock()
	e.kill()
	<-e.gone
	if shut {
		return ErrServerClosed
	}
	return ctx.Err()
}

func (e *stdnetEngine) shutdown(ctx context.Context) error {
	e.mu.Lock()
	first := !e.shutting
	if first {
		e.shutting = true
		e.stopLocked(true)
	}
	e.mu.Unlock()
	if first {
		// The accept loops take their queues and close their listeners
		// (takeQueued); a kill closes them too.
		select {
		case <-e.listenersGone:
		case <-ctx.Done():
		}
		e.mu.Lock()
		e.draining.Store(true)
		now := time.Now()
		for sc := range e.conns {
			// Wake a Read blocked in the kernel; the connection then sees
			// draining and switches to short drain deadlines. A TLS
			// handshake is left to end, within stdDrainMax.
			sc.mu.Lock()
			if !sc.handshaking {
				sc.raw.SetReadDeadline(now)
			}
			sc.mu.Unlock()
		}
		e.mu.Unlock()
		time.AfterFunc(stdDrainMax, e.hsCancel)
	}
	select {
	case <-e.gone:
		return nil
	case <-ctx.Done():
	}
	e.kill()
	<-e.gone
	return ctx.Err()
}

// kill closes the listeners and every connection at once.
func (e *stdnetEngine) kill() {
	e.mu.Lock()
	e.killed.Store(true)
	if e.queueing {
		// The accept loops may still be taking their queues: the close
		// ends their Accept, and admit refuses what it returned.
		for _, ln := range e.lns {
			ln.Close()
		}
	}
	e.stopLocked(false)
	e.hsCancel()
	for sc := range e.conns {
		sc.raw.Close()
	}
	e.mu.Unlock()
}

// stopLocked stops accepting, once. e.mu is held. Closing a listener
// resets the connections in its queue, so on a graceful stop (takeQueued)
// the accept loops take them first and close their listeners themselves;
// the listeners close here at once after StopAccepting, whose queues
// belong to the successor, where no accept loop runs, or on a kill.
func (e *stdnetEngine) stopLocked(takeQueued bool) {
	if e.stopping {
		return
	}
	e.stopping = true
	if takeQueued && e.served && !e.handedOver.Load() {
		e.queueing = true
		// The past deadline wakes a blocked Accept. It is set before
		// e.stop closes, so that an accept loop that sees e.stop sets its
		// own deadlines after this one.
		for _, ln := range e.lns {
			ln.(*net.TCPListener).SetDeadline(time.Unix(1, 0))
		}
	} else {
		for _, ln := range e.lns {
			ln.Close()
		}
	}
	close(e.stop)
	e.checkGoneLocked()
}

func (e *stdnetEngine) checkGoneLocked() {
	if !e.stopping {
		return
	}
	if e.acceptors == 0 {
		closeOnce(e.listenersGone)
	}
	if e.running == 0 {
		closeOnce(e.gone)
	}
}

// closeOnce closes ch unless it is closed already. Only e.mu's holder
// closes the engine's channels, so nothing closes one in between.
func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// exit ends a goroutine: a connection's if sc is not nil, else an accept
// loop.
func (e *stdnetEngine) exit(sc *stdConn) {
	e.mu.Lock()
	if sc != nil {
		delete(e.conns, sc)
	} else {
		e.acceptors--
	}
	e.running--
	e.checkGoneLocked()
	e.mu.Unlock()
}

func (e *stdnetEngine) acceptLoop(ln net.Listener) {
	defer e.exit(nil)
	var backoff time.Duration
	dead := 0 // accepts failed for their own connection since the last success
	for {
		c, err := ln.Accept()
		if err != nil {
			if e.handedOver.Load() {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Only a stop sets a deadline on a listener (besides
				// StopAccepting, above), and it closes e.stop next. The
				// tests set one to keep connections queued until then.
				e.held.Add(1)
				<-e.stop
			}
			select {
			case <-e.stop:
				e.takeQueued(ln)
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if connAcceptErr(err) {
				// The failed connection left the queue; the next may be
				// whole, and the listener is fine.
				if dead++; dead < maxDeadAccepts {
					continue
				}
				dead = 0
			}
			// Out of descriptors, most likely. The pending connection
			// stays in the backlog and the listener stays readable, so an
			// immediate retry would spin; wait, longer each time.
			e.st.AcceptErrors.Add(1)
			backoff = min(max(2*backoff, stdBackoffMin), stdBackoffMax)
			e.acceptErr.Log("err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-e.stop:
				t.Stop()
				e.takeQueued(ln)
				return
			}
			continue
		}
		backoff, dead = 0, 0
		e.admit(c)
	}
}

// takeQueued serves, on a graceful stop, the connections queued on ln,
// as the poll engine's beginStop does, then closes ln. They drain as the
// others do: their first read waits stdDrainWait for input on its way.
// After StopAccepting the queue is the successor's, and after a kill ln
// is closed already.
func (e *stdnetEngine) takeQueued(ln net.Listener) {
	if e.handedOver.Load() || e.killed.Load() {
		ln.Close()
		return
	}
	acceptQueued(ln.(*net.TCPListener), stdAcceptQueued, e.admit)
}

// admit starts serving c, or closes it at once past MaxConns.
func (e *stdnetEngine) admit(c net.Conn) {
	e.mu.Lock()
	if e.killed.Load() {
		e.mu.Unlock()
		c.Close()
		return
	}
	if e.cfg.MaxConns > 0 && len(e.conns) >= e.cfg.MaxConns {
		e.mu.Unlock()
		e.st.Rejected.Add(1)
		c.Close()
		e.rejected.Log("reason", "MaxConns", "max_conns", e.cfg.MaxConns)
		return
	}
	sc := &stdConn{raw: c, c: c}
	e.conns[sc] = struct{}{}
	e.running++
	e.mu.Unlock()
	e.st.Accepted.Add(1)
	e.st.Open.Add(1)
	go e.serveConn(sc)
}

// Read deadline kinds, to tell which one expired.
const (
	dlNone = iota
	dlIdle
	dlDrain
)

// setReadDeadline sets the deadline of the next read: the drain deadline
// during a shutdown, else the idle timeout if any.
func (e *stdnetEngine) setReadDeadline(sc *stdConn, cur int) int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return e.setReadDeadlineLocked(sc, cur)
}

// setReadDeadlineLocked is setReadDeadline with sc.mu held.
func (e *stdnetEngine) setReadDeadlineLocked(sc *stdConn, cur int) int {
	now := time.Now()
	switch {
	case e.draining.Load():
		if sc.drainUntil.IsZero() {
			sc.drainUntil = now.Add(stdDrainMax)
		}
		dl := now.Add(stdDrainWait)
		if sc.drained {
			dl = now.Add(stdDrainQuiet)
		}
		if dl.After(sc.drainUntil) {
			dl = sc.drainUntil
		}
		sc.c.SetReadDeadline(dl)
		return dlDrain
	case e.cfg.IdleTimeout > 0:
		sc.c.SetReadDeadline(now.Add(e.cfg.IdleTimeout))
		return dlIdle
	}
	if cur != dlNone {
		sc.c.SetReadDeadline(time.Time{})
	}
	return dlNone
}

func (e *stdnetEngine) serveConn(sc *stdConn) {
	limitUnsentStd(sc.raw)
	var why string
	if e.cfg.Handler != nil {
		why = e.converseHandler(sc)
	} else {
		why = e.converse(sc)
	}
	sc.raw.Close()
	if sc.counted {
		e.ips.release(sc.remote.Addr())
	}
	e.st.Open.Add(-1)
	if e.logConns && why != "proxy" && why != "per-ip" {
		e.cfg.Logger.Debug("connection closed", "remote", sc.remote, "reason", why)
	}
	e.exit(sc)
}

// start reads the PROXY header if there must be one, then admits the
// connection: MaxConnsPerIP, the log, the Protocol's address; with TLS it
// runs the handshake (stdnet_tls.go). It returns the input that came
// after the header, at the start of in (none with TLS: it was the
// handshake's), or why the connection must close.
func (e *stdnetEngine) start(sc *stdConn, p Protocol, in []byte) (n int, why string) {
	c := sc.raw
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		// Taken from the queue by acceptQueued, reset before: with no
		// peer, getpeername(2) fails and package net leaves the address
		// nil. Go's Accept would have served it, and its first read
		// failed.
		e.st.Resets.Add(1)
		return 0, "error: reset in the accept queue"
	}
	ap := a.AddrPort()
	sc.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	limit := e.ips != nil
	if e.cfg.ProxyProtocol {
		var h ProxyHeader
		// During a shutdown the header is input on its way, waited for
		// stdDrainWait (the poll engine's beginStop). The shutdown's wake
		// (a deadline now, under sc.mu) comes before this deadline or
		// interrupts the read below.
		sc.mu.Lock()
		draining := e.draining.Load()
		wait := ProxyHeaderTimeout
		if draining {
			wait = stdDrainWait
		}
		c.SetReadDeadline(time.Now().Add(wait))
		sc.mu.Unlock()
		for {
			m, err := c.Read(in)
			used, done, herr := h.Feed(in[:m])
			e.st.BytesIn.Add(int64(used))
			if herr == nil && !done && !draining && errors.Is(err, os.ErrDeadlineExceeded) && e.draining.Load() {
				draining = true
				c.SetReadDeadline(time.Now().Add(stdDrainWait))
				continue
			}
			switch {
			case herr == nil && !done && err != nil:
				herr = ErrProxyTruncated
			case herr == nil && !done:
				continue
			}
			if herr != nil {
				e.st.ProxyErrors.Add(1)
				e.proxyErr.Log("err", herr)
				return 0, "proxy"
			}
			n = copy(in, in[used:m])
			break
		}
		c.SetReadDeadline(time.Time{})
		if src, ok := h.Source(); ok {
			sc.remote = src
		} else {
			limit = false // the balancer's own connection
		}
	}
	if limit {
		if !e.ips.take(sc.remote.Addr()) {
			e.st.RejectedPerIP.Add(1)
			e.rejected.Log("reason", "MaxConnsPerIP", "remote", sc.remote.Addr(), "max_conns_per_ip", e.cfg.MaxConnsPerIP)
			return 0, "per-ip"
		}
		sc.counted = true
	}
	if e.logConns {
		e.cfg.Logger.Debug("connection opened", "remote", sc.remote)
	}
	if s, ok := p.(RemoteAddrSetter); ok {
		s.SetRemoteAddr(sc.remote)
	}
	if e.cfg.TLS != nil {
		return 0, e.handshake(sc, in, n)
	}
	return n, ""
}

// converse runs the protocol on one connection until it must close, and
// says why.
func (e *stdnetEngine) converse(sc *stdConn) string {
	p := e.cfg.NewProtocol()
	// Reading no more than this keeps the answers to one read within
	// MaxPendingOutput (see MaxExpansion); and no more than stdReadMax, so
	// that a large MaxPendingOutput does not size every connection's buffer.
	in := make([]byte, min(max(256, e.cfg.MaxPendingOutput/MaxExpansion), stdReadMax))
	pre, why := e.start(sc, p, in)
	if why != "" {
		return why
	}
	c := sc.c
	if sc.tls != nil {
		// As write does above TLS: progress restarts IdleTimeout's wait.
		sc.tls.onWriteTimeout = func(progress bool) bool {
			if !progress || e.cfg.IdleTimeout == 0 {
				return false
			}
			sc.raw.SetWriteDeadline(time.Now().Add(e.cfg.IdleTimeout))
			return true
		}
	}
	var out []byte
	dl := dlNone
	for {
		var n int
		var err error
		if pre > 0 {
			n, pre = pre, 0
		} else {
			dl = e.setReadDeadline(sc, dl)
			n, err = c.Read(in)
		}
		if n > 0 {
			if sc.tls == nil {
				e.st.BytesIn.Add(int64(n))
			}
			if dl == dlDrain {
				sc.drained = true
			}
			var done bool
			out, done = p.Feed(out[:0], in[:n])
			if e.cfg.builtin {
				e.st.Messages.Add(answered(out, done))
			}
			if why := e.write(sc, out); why != "" {
				return why
			}
			if done {
				return e.linger(sc, in, "close")
			}
		}
		switch {
		case err == nil:
		case err == io.EOF:
			out = p.End(out[:0])
			if e.cfg.builtin {
				e.st.Messages.Add(answered(out, true))
			}
			if why := e.write(sc, out); why != "" {
				return why
			}
			// Nothing can be left unread after the client's EOF: Close
			// sends a plain FIN, and with TLS the close_notify must
			// precede it.
			if sc.tls != nil {
				sc.closeWrite()
			}
			return "eof"
		case errors.Is(err, os.ErrDeadlineExceeded):
			switch {
			case dl == dlDrain:
				// Nothing more arrived: every message received is
				// answered.
				return e.linger(sc, in, "shutdown")
			case e.draining.Load():
				// Shutdown interrupted the read: drain from now on.
			default:
				e.st.IdleClosed.Add(1)
				return "idle"
			}
		default:
			return e.failed(err)
		}
	}
}

// write writes b in full. With IdleTimeout set, a write that makes no
// progress for that long closes the connection as idle: a client that
// neither sends nor reads is idle too. It returns why the connection must
// close, or "".
func (e *stdnetEngine) write(sc *stdConn, b []byte) string {
	c := sc.c
	for len(b) > 0 {
		if e.cfg.IdleTimeout > 0 {
			c.SetWriteDeadline(time.Now().Add(e.cfg.IdleTimeout))
		}
		n, err := c.Write(b)
		if sc.tls == nil {
			e.st.BytesOut.Add(int64(n))
		}
		b = b[n:]
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			if n == 0 {
				e.st.IdleClosed.Add(1)
				return "idle"
			}
		default:
			return e.failed(err)
		}
	}
	return ""
}

// failed accounts for a socket error, or a TLS error (a bad record, an
// alert).
func (e *stdnetEngine) failed(err error) string {
	if e.killed.Load() {
		return "shutdown"
	}
	if isTLSError(err) {
		e.st.TLSErrors.Add(1)
	} else {
		e.st.Resets.Add(1)
	}
	return "error: " + err.Error()
}

// linger sends FIN (after TLS's close_notify) and discards input until
// the client's EOF, for at most stdLinger (stdShutdownLinger once shutting
// down), so that the Close that follows finds nothing unread and sends no
// reset. It returns why.
func (e *stdnetEngine) linger(sc *stdConn, buf []byte, why string) string {
	if sc.closeWrite() != nil {
		return why
	}
	return e.drainToEOF(sc, buf, why)
}

// drainToEOF discards input until the client's EOF, for at most stdLinger
// (stdShutdownLinger once shutting down), once the FIN is sent. It reads
// the socket itself: with TLS, what comes after the FIN is discarded
// undecrypted. It returns why.
func (e *stdnetEngine) drainToEOF(sc *stdConn, buf []byte, why string) string {
	c := sc.raw
	deadline := time.Now().Add(stdLinger)
	short := false
	for {
		sc.mu.Lock()
		if !short && e.draining.Load() {
			short = true
			if d := time.Now().Add(stdShutdownLinger); d.Before(deadline) {
				deadline = d
			}
		}
		c.SetReadDeadline(deadline)
		sc.mu.Unlock()
		n, err := c.Read(buf)
		e.st.BytesIn.Add(int64(n))
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline):
			// Shutdown interrupted the read; go on with its bound.
		case err == io.EOF || errors.Is(err, os.ErrDeadlineExceeded):
			return why
		default:
			e.failed(err)
			return why
		}
	}
}
