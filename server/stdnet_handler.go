//go:build !evio && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

package server

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// A connection served by a Handler (Config.Handler) on the stdnet engine
// has a stdHandle and two goroutines: its reader (serveConn) reads and
// calls the Handler, and its writer sends the queued writes with blocking
// Writes, then the FIN of a graceful close. Every call into the Handler
// for the connection (OnOpen, OnData, Run's functions, timers, OnClose)
// holds the handle's mu, so they never overlap; Run's functions and the
// timers run on a goroutine started while there are some (runLoop).
//
// The connection ends in one of two ways. Gracefully (Close, the client's
// EOF, the end of a shutdown's drain): closed is set under qmu, so a write
// is either queued before it or fails; the writer sends what is queued,
// then the FIN, and calls OnClose; the reader discards input until the
// client's EOF, as linger does. At once (Abort, a socket error, the idle
// timeout, a forced stop): the socket is closed, which ends the reader's
// Read and the writer's Write; with a reset (resetConn) where the output
// the kernel still holds is to be discarded too. Either way the reader
// waits for the writer and for the runner before its goroutine ends, so
// the engine's running count covers them all.

// stdEpoch is the origin of the handles' timer clock.
var stdEpoch = time.Now()

// stdNow is the timer clock: nanoseconds since stdEpoch, monotonic.
func stdNow() int64 { return int64(time.Since(stdEpoch)) }

// stdHandle is a Conn of the stdnet engine.
type stdHandle struct {
	Conn
	e  *stdnetEngine
	sc *stdConn

	// mu serializes the Handler's calls for the connection; it guards
	// timers, clock and notified too.
	mu       sync.Mutex
	timers   timerHeap
	clock    *time.Timer // armed for timers[0], once there was one
	notified bool        // OnClose was called

	// qmu guards what follows, and the setting of Conn.closed.
	qmu     sync.Mutex
	out     [][]byte // writes for the writer, in order
	spare   [][]byte
	fin     bool     // a graceful close: the FIN after out
	aborted bool     // the socket is closed
	runs    []func() // Run's functions, for the runner
	due     bool     // the clock fired
	runner  bool     // a runner goroutine runs (counted in runners)
	ended   bool     // OnClose was called or is being called
	why     error
	whySet  bool

	wake    chan struct{} // wakes the writer
	wdone   chan struct{} // closed when the writer returns
	stopc   chan struct{} // closed when closed is set
	resume  chan struct{} // ResumeReading
	paused  bool          // PauseReading; on the loop
	runners sync.WaitGroup

	// The timeouts (SetReadTimeout, SetWriteTimeout) as the reader and
	// the writer apply them, under sc.mu, with the times they measure
	// from: Conn's fields are the loop's, and a Read or a Write blocked
	// meanwhile gets its new deadline at once (timeoutsChanged).
	rto, wto time.Duration
	// rfrom is when the read timeout's wait began: the last input, or
	// the change of rto, whichever is later. idleAt is the IdleTimeout
	// deadline of the reader's Read, zero without one. rset: a read
	// deadline is set.
	rfrom, idleAt time.Time
	rset          bool
	// wfrom is when the writer's Write began, after the last progress;
	// writing: the writer is in a Write. wset: a write deadline is set.
	// closeBy bounds the writes of a Close (CloseTimeout); zero before.
	// wtoFrom is when wto last changed: its wait begins at the later of
	// wfrom and wtoFrom.
	wfrom, closeBy, wtoFrom time.Time
	writing                 bool
	wset                    bool
	// tlsWhy is why a Write over TLS gave up at its deadline
	// (tlsWriteTimedOut); the writer's.
	tlsWhy error
}

// wtoStart is when the write timeout's wait began. sc.mu is held.
func (h *stdHandle) wtoStart() time.Time {
	if h.wtoFrom.After(h.wfrom) {
		return h.wtoFrom
	}
	return h.wfrom
}

func newStdHandle(e *stdnetEngine, sc *stdConn) *stdHandle {
	h := &stdHandle{
		e:      e,
		sc:     sc,
		wake:   make(chan struct{}, 1),
		wdone:  make(chan struct{}),
		stopc:  make(chan struct{}),
		resume: make(chan struct{}, 1),
	}
	h.eng = h
	h.max = int64(e.cfg.MaxPendingOutput)
	h.remote = sc.remote
	return h
}

func (h *stdHandle) post(c *Conn, t task) error {
	h.qmu.Lock()
	// As on the poll engine: no write from another goroutine once a
	// shutdown has begun, or it could hold the FIN back for ever.
	if c.closed.Load() || t.kind == taskWrite && h.e.draining.Load() {
		h.qmu.Unlock()
		return ErrClosed
	}
	switch t.kind {
	case taskWrite:
		h.queueLocked(t.b)
		h.qmu.Unlock()
		h.wakeWriter()
	case taskRun:
		h.runs = append(h.runs, t.f)
		h.startRunnerLocked()
		h.qmu.Unlock()
	case taskClose:
		h.closeLocked(t.why)
		h.qmu.Unlock()
		h.boundClose()
		h.wakeWriter()
	case taskAbort:
		h.abortLocked(t.why)
		h.qmu.Unlock()
		resetConn(h.sc.raw)
		h.wakeWriter()
	}
	return nil
}

func (h *stdHandle) write(c *Conn, b []byte) error {
	h.qmu.Lock()
	if c.closed.Load() {
		h.qmu.Unlock()
		c.pending.Add(-int64(len(b)))
		return ErrClosed
	}
	h.queueLocked(b)
	h.qmu.Unlock()
	h.wakeWriter()
	return nil
}

// queueLocked queues a copy of b for the writer (b may be OnData's input,
// whose buffer the next read reuses), added to the last buffer queued
// while that stays within a record's plaintext: the writer makes a Write
// (a system call, with TLS a record) per buffer, not per write, as the
// poll engine sends a turn's writes at once. h.qmu is held.
func (h *stdHandle) queueLocked(b []byte) {
	if n := len(h.out); n > 0 && len(h.out[n-1])+len(b) <= stdRecordPlain {
		last := h.out[n-1]
		if need := len(last) + len(b); need > cap(last) {
			// Grown within a record, so that what MaxPendingOutput
			// counts is most of what the queue holds.
			grown := make([]byte, len(last), min(max(2*cap(last), need), stdRecordPlain))
			copy(grown, last)
			last = grown
		}
		h.out[n-1] = append(last, b...)
		return
	}
	h.out = append(h.out, append([]byte(nil), b...))
}

func (h *stdHandle) setReading(c *Conn, on bool) {
	h.paused = !on
	if on {
		select {
		case h.resume <- struct{}{}:
		default:
		}
	}
}

// timeoutsChanged hands the connection's timeouts to the reader and the
// writer, and moves the deadline of a Read or a Write already blocked, as
// the reader and the writer set their own: under sc.mu, so the later one
// wins. A new read timeout's wait starts now. The read deadline stays
// the closing's (finish) once the connection is closing, and the
// drain's during a shutdown; the write timeout goes on bounding the
// writes of a graceful close.
func (h *stdHandle) timeoutsChanged(c *Conn) {
	if h.notified {
		return // the end: h.mu is held, as on every call on the loop
	}
	sc := h.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if c.readTimeout != h.rto {
		h.rto, h.rfrom = c.readTimeout, time.Now()
	}
	if c.writeTimeout != h.wto {
		h.wto, h.wtoFrom = c.writeTimeout, time.Now()
	}
	if !h.closed.Load() && !h.e.draining.Load() {
		h.applyReadDeadlineLocked()
	}
	if h.writing {
		h.applyWriteDeadlineLocked()
	}
}

// applyReadDeadlineLocked sets the read deadline to the earlier of
// IdleTimeout's and the read timeout's. sc.mu is held.
func (h *stdHandle) applyReadDeadlineLocked() {
	at := h.idleAt
	if h.rto > 0 {
		if r := h.rfrom.Add(h.rto); at.IsZero() || r.Before(at) {
			at = r
		}
	}
	if !at.IsZero() || h.rset {
		h.sc.c.SetReadDeadline(at)
		h.rset = !at.IsZero()
	}
}

// readExpired reports whether the read deadline has passed: false when
// a callback moved it meanwhile.
func (h *stdHandle) readExpired() bool {
	h.sc.mu.Lock()
	defer h.sc.mu.Unlock()
	now := time.Now()
	return !h.idleAt.IsZero() && !now.Before(h.idleAt) ||
		h.rto > 0 && !now.Before(h.rfrom.Add(h.rto))
}

// boundClose starts CloseTimeout's wait for the writes of a Close, and
// bounds a Write already blocked.
func (h *stdHandle) boundClose() {
	h.sc.mu.Lock()
	defer h.sc.mu.Unlock()
	h.closeBy = time.Now().Add(CloseTimeout)
	if h.writing {
		h.applyWriteDeadlineLocked()
	}
}

// applyWriteDeadlineLocked sets the deadline of the writer's Write to the
// earliest of IdleTimeout's and the write timeout's, both measured from
// wfrom, and a Close's bound. sc.mu is held.
func (h *stdHandle) applyWriteDeadlineLocked() time.Time {
	at := h.closeBy
	if d := h.e.cfg.IdleTimeout; d > 0 && (at.IsZero() || h.wfrom.Add(d).Before(at)) {
		at = h.wfrom.Add(d)
	}
	if d := h.wto; d > 0 && (at.IsZero() || h.wtoStart().Add(d).Before(at)) {
		at = h.wtoStart().Add(d)
	}
	if !at.IsZero() || h.wset {
		h.sc.c.SetWriteDeadline(at)
		h.wset = !at.IsZero()
	}
	return at
}

// writeExpired says why a Write met its deadline: the write timeout
// (ErrWriteTimeout) or IdleTimeout (ErrIdle) when it took nothing, a
// Close's bound (the close's reason stands: nil); ok is false when the
// deadline has not passed, moved by a callback meanwhile, or when the
// Write made progress, which restarts the wait.
func (h *stdHandle) writeExpired(progress bool) (why error, ok bool) {
	h.sc.mu.Lock()
	defer h.sc.mu.Unlock()
	now := time.Now()
	wtoPassed := h.wto > 0 && !now.Before(h.wtoStart().Add(h.wto))
	idle := h.e.cfg.IdleTimeout
	idlePassed := idle > 0 && !now.Before(h.wfrom.Add(idle))
	switch {
	case !h.closeBy.IsZero() && !now.Before(h.closeBy):
		return nil, true
	case progress:
		return nil, false
	case wtoPassed && (!idlePassed || h.wto <= idle):
		return ErrWriteTimeout, true
	case idlePassed:
		return ErrIdle, true
	}
	return nil, false
}

// afterFunc keeps the connection's timers in a heap, as a loop does, with
// one runtime timer armed for the earliest, so Timer.Stop works the same.
func (h *stdHandle) afterFunc(c *Conn, d time.Duration, f func()) *Timer {
	t := &Timer{at: stdNow() + int64(min(max(d, 0), 1<<60)), f: f}
	h.timers.push(t)
	if t.idx == 0 {
		h.arm()
	}
	return t
}

// arm sets the runtime timer for the earliest timer. h.mu is held.
func (h *stdHandle) arm() {
	if h.timers.len() == 0 {
		return
	}
	d := time.Duration(h.timers.first().at - stdNow())
	if h.clock == nil {
		h.clock = time.AfterFunc(d, h.tick)
	} else {
		h.clock.Reset(d)
	}
}

// tick is the runtime timer's function: the runner runs the due timers.
func (h *stdHandle) tick() {
	h.qmu.Lock()
	h.due = true
	h.startRunnerLocked()
	h.qmu.Unlock()
}

// startRunnerLocked starts a runner for the queued functions and timers,
// unless one runs or the connection has ended. h.qmu is held.
func (h *stdHandle) startRunnerLocked() {
	if h.runner || h.ended {
		return
	}
	h.runner = true
	h.runners.Add(1)
	go h.runLoop()
}

// runLoop runs Run's functions and the due timers, serialized with the
// Handler's calls, until there are none; none runs after the end.
func (h *stdHandle) runLoop() {
	defer h.runners.Done()
	for {
		h.qmu.Lock()
		runs, due := h.runs, h.due
		h.runs, h.due = nil, false
		if len(runs) == 0 && !due {
			h.runner = false
			h.qmu.Unlock()
			return
		}
		h.qmu.Unlock()
		h.mu.Lock()
		for _, f := range runs {
			if !h.notified {
				f()
			}
		}
		if due && !h.notified {
			now := stdNow()
			for t := h.timers.due(now); t != nil; t = h.timers.due(now) {
				t.f()
			}
			h.arm()
		}
		h.mu.Unlock()
	}
}

func (h *stdHandle) wakeWriter() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// setWhyLocked records why the connection ends, unless a reason was
// recorded already: the first is the cause. h.qmu is held.
func (h *stdHandle) setWhyLocked(why error) {
	if !h.whySet {
		h.why, h.whySet = why, true
	}
}

// stopLocked makes every later write fail. h.qmu is held.
func (h *stdHandle) stopLocked() {
	if !h.closed.Load() {
		h.closed.Store(true)
		close(h.stopc)
	}
}

// closeLocked begins a graceful close: the writer sends what is queued,
// then the FIN. h.qmu is held.
func (h *stdHandle) closeLocked(why error) {
	if h.closed.Load() {
		return
	}
	h.setWhyLocked(why)
	h.fin = true
	h.stopLocked()
}

// abortLocked marks the connection ended at once; the caller closes the
// socket. It reports false if it was aborted already. h.qmu is held.
func (h *stdHandle) abortLocked(why error) bool {
	if h.aborted {
		return false
	}
	h.aborted = true
	h.setWhyLocked(why)
	h.stopLocked()
	h.out = nil
	return true
}

// closeGracefully begins a graceful close from the engine's side.
func (h *stdHandle) closeGracefully(why error) {
	h.qmu.Lock()
	h.closeLocked(why)
	h.qmu.Unlock()
	h.wakeWriter()
}

// abort ends the connection at once, and reports false if it was
// aborted already. With reset, the output the kernel still holds is
// discarded too (resetConn); without, it goes out before the FIN.
func (h *stdHandle) abort(why error, reset bool) bool {
	h.qmu.Lock()
	ok := h.abortLocked(why)
	h.qmu.Unlock()
	if ok {
		if reset {
			resetConn(h.sc.raw)
		} else {
			h.sc.raw.Close()
		}
		h.wakeWriter()
	}
	return ok
}

// resetConn closes c, a socket, with a reset, discarding what its send
// buffer holds: SO_LINGER with a zero time (socket(7)). A plain close leaves the kernel
// sending a client that does not read what it was owed, for as long as
// the client keeps its window open a crack (zero-window probes), and the
// client sees no end meanwhile. Abort promises the opposite.
func resetConn(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}

// fail ends the connection after a socket error or a TLS error (a bad
// record, an alert): the error is the reason, unless a forced stop closed
// the socket, or the connection was aborted already (the error is then
// that close's). The connection is broken: nothing the kernel holds for it
// is worth sending.
func (h *stdHandle) fail(err error) {
	if h.e.killed.Load() {
		h.abort(ErrServerClosed, false)
		return
	}
	if h.abort(err, true) {
		if isTLSError(err) {
			h.e.st.TLSErrors.Add(1)
		} else {
			h.e.st.Resets.Add(1)
		}
	}
}

// isAborted reports whether the socket was closed at once.
func (h *stdHandle) isAborted() bool {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	return h.aborted
}

// notify ends the handle: OnClose, once, and the waiting writers wake to
// find ErrClosed.
func (h *stdHandle) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.notified {
		return
	}
	h.notified = true
	h.qmu.Lock()
	h.ended = true
	h.stopLocked()
	why := h.why
	h.qmu.Unlock()
	if h.clock != nil {
		h.clock.Stop()
	}
	h.signalRoom()
	h.e.cfg.Handler.OnClose(&h.Conn, why)
}

// writeLoop sends the queued writes in order, then the FIN of a graceful
// close. Conn.sent uncounts what the kernel took.
func (h *stdHandle) writeLoop() {
	defer close(h.wdone)
	for {
		h.qmu.Lock()
		out, fin, aborted := h.out, h.fin, h.aborted
		h.out, h.spare = h.spare[:0], nil
		h.qmu.Unlock()
		if aborted {
			return
		}
		if len(out) == 0 {
			if fin {
				h.finish()
				return
			}
			<-h.wake
			continue
		}
		for i, b := range out {
			out[i] = nil
			if !h.send(b) {
				return
			}
		}
		h.qmu.Lock()
		if h.spare == nil {
			h.spare = out[:0]
		}
		h.qmu.Unlock()
	}
}

// send writes b in full. A Write that makes no progress for the write
// timeout resets the connection, with ErrWriteTimeout; for IdleTimeout,
// it ends the connection as idle, as the engine's write does. Each Write
// has its own deadline, so any progress restarts the wait. A Close's
// writes not done within CloseTimeout end in a reset too, progress or
// not. It reports false if the connection ended.
func (h *stdHandle) send(b []byte) bool {
	e, sc := h.e, h.sc
	for len(b) > 0 {
		chunk := b
		if sc.tls != nil && len(chunk) > stdRecordPlain {
			// A record per Write, so that what the client takes is
			// counted as it goes, as a plain Write's progress is.
			chunk = chunk[:stdRecordPlain]
		}
		sc.mu.Lock()
		h.wfrom, h.writing = time.Now(), true
		h.applyWriteDeadlineLocked()
		sc.mu.Unlock()
		n, err := sc.c.Write(chunk)
		sc.mu.Lock()
		h.writing = false
		sc.mu.Unlock()
		if sc.tls == nil {
			e.st.BytesOut.Add(int64(n))
		}
		if n > 0 {
			h.sent(n)
		}
		b = b[n:]
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && !h.isAborted():
			why, ok := h.writeExpired(n > 0)
			if sc.tls != nil {
				// The transport went on as long as the wait allowed
				// (tlsWriteTimedOut), and crypto/tls fails every Write
				// after this one.
				why, ok = h.tlsWhy, true
			}
			if !ok {
				break
			}
			// The client would not take the rest either.
			if h.abort(why, true) && why == ErrIdle {
				e.st.IdleClosed.Add(1)
			}
			return false
		default:
			h.fail(err)
			return false
		}
	}
	return true
}

// tlsWriteTimedOut is the TLS transport's onWriteTimeout: a Write that
// met its deadline goes on, with the deadline send would set, unless its
// wait is over (writeExpired); then tlsWhy says why. A deadline that is
// none of the handle's (crypto/tls bounds its close_notify by 5 s of its
// own) ends the Write: going on against it would fail at once, for ever.
func (h *stdHandle) tlsWriteTimedOut(progress bool) bool {
	why, ok := h.writeExpired(progress)
	if ok {
		h.tlsWhy = why
		return false
	}
	h.sc.mu.Lock()
	defer h.sc.mu.Unlock()
	if progress {
		h.wfrom = time.Now()
	}
	at := h.applyWriteDeadlineLocked()
	return at.After(time.Now())
}

// finish sends the FIN of a graceful close (after TLS's close_notify),
// once every write queued before it is out, and ends the handle. The
// reader may be blocked in a Read: a deadline in the past wakes it, to
// linger (see handlerDeadline).
func (h *stdHandle) finish() {
	if err := h.sc.closeWrite(); err != nil && err != errors.ErrUnsupported {
		h.fail(err)
		return
	}
	h.sc.mu.Lock()
	h.sc.c.SetReadDeadline(time.Unix(1, 0))
	h.sc.mu.Unlock()
	h.notify()
}

// handlerDeadline sets the next read's deadline, as setReadDeadline does,
// or the read timeout's if it is earlier (dlIdle either way); once the
// connection is closing it sets one in the past instead, so a Read does
// not block past the writer's wake-up (finish). in is when input last
// came, or reading resumed: the read timeout's wait starts again then.
func (h *stdHandle) handlerDeadline(cur int, in time.Time) int {
	sc := h.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if in.After(h.rfrom) {
		h.rfrom = in
	}
	if h.closed.Load() {
		sc.c.SetReadDeadline(time.Unix(1, 0))
		h.rset = true
		return cur
	}
	if h.e.draining.Load() {
		// A shutdown's drain is short, and ends the connection anyway.
		dl := h.e.setReadDeadlineLocked(sc, cur)
		h.rset = true
		if cur != dlDrain {
			// If nothing else ends the connection, the shutdown does.
			h.qmu.Lock()
			h.setWhyLocked(ErrServerClosed)
			h.qmu.Unlock()
		}
		return dl
	}
	h.idleAt = time.Time{}
	if d := h.e.cfg.IdleTimeout; d > 0 {
		h.idleAt = time.Now().Add(d)
	}
	h.applyReadDeadlineLocked()
	if h.rset {
		return dlIdle
	}
	return dlNone
}

// waitToRead waits while reading is paused: by PauseReading, or while the
// pending output is at MaxPendingOutput, until it is down to half. It
// returns false if the server stops meanwhile (its listeners closed, so
// that stopped's FIN comes after: see draining), and whether it waited.
func (h *stdHandle) waitToRead() (ok, waited bool) {
	for ; !h.closed.Load(); waited = true {
		h.mu.Lock()
		paused := h.paused
		h.mu.Unlock()
		if paused {
			select {
			case <-h.resume:
			case <-h.stopc:
			case <-h.e.listenersGone:
				return false, true
			}
			continue
		}
		if h.pending.Load() < h.max {
			return true, waited
		}
		for {
			room := h.roomChan()
			if h.pending.Load() <= h.max/2 {
				h.waiters.Add(-1)
				break
			}
			select {
			case <-room:
			case <-h.stopc:
			case <-h.e.listenersGone:
				h.waiters.Add(-1)
				return false, true
			}
			h.waiters.Add(-1)
			if h.closed.Load() {
				return true, true
			}
		}
	}
	return true, waited
}

// deliver calls OnData with in, once reading is not paused by the
// Handler. Input after a close is discarded. It returns false if the
// server stops meanwhile.
func (h *stdHandle) deliver(in []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.paused && !h.closed.Load() {
		h.mu.Unlock()
		select {
		case <-h.resume:
		case <-h.stopc:
		case <-h.e.listenersGone:
			h.mu.Lock()
			return false
		}
		h.mu.Lock()
	}
	if !h.closed.Load() {
		h.e.cfg.Handler.OnData(&h.Conn, in)
	}
	return true
}

// stopped ends a connection whose reading was paused when the server
// stopped: gracefully during a shutdown, at once on a forced stop.
func (h *stdHandle) stopped() (string, bool) {
	if h.e.killed.Load() {
		h.abort(ErrServerClosed, false)
		return "shutdown", false
	}
	h.closeGracefully(ErrServerClosed)
	return "shutdown", true
}

// converseHandler serves one connection with the Handler until it ends,
// and says why.
func (e *stdnetEngine) converseHandler(sc *stdConn) string {
	in := make([]byte, min(max(256, e.cfg.MaxPendingOutput), stdReadMax))
	pre, why := e.start(sc, nil, in)
	if why != "" {
		return why
	}
	h := newStdHandle(e, sc)
	if sc.tls != nil {
		sc.tls.onWriteTimeout = h.tlsWriteTimedOut
	}
	go h.writeLoop()
	h.mu.Lock()
	e.cfg.Handler.OnOpen(&h.Conn)
	h.mu.Unlock()
	why, linger := h.read(in, pre)
	<-h.wdone
	if linger && !h.isAborted() {
		e.drainToEOF(sc, in, why)
	}
	h.notify()
	h.runners.Wait()
	return why
}

// read reads and delivers input until the connection ends or begins to
// close, and says why, and whether to discard input until the client's
// EOF once the writer has sent the FIN.
func (h *stdHandle) read(in []byte, pre int) (string, bool) {
	e, sc := h.e, h.sc
	dl := dlNone
	var last time.Time // of the last input, or of reading's resumption
	for {
		var n int
		var err error
		if pre > 0 {
			n, pre = pre, 0
		} else {
			ok, waited := h.waitToRead()
			if !ok {
				return h.stopped()
			}
			if h.closed.Load() {
				return "closed", true
			}
			if waited {
				// Input may have waited in the kernel meanwhile.
				last = time.Now()
			}
			size := min(max(int(h.max-h.pending.Load()), 1), len(in))
			dl = h.handlerDeadline(dl, last)
			n, err = sc.c.Read(in[:size])
		}
		if n > 0 {
			last = time.Now()
			if sc.tls == nil {
				e.st.BytesIn.Add(int64(n))
			}
			if dl == dlDrain {
				sc.drained = true
			}
			if !h.deliver(in[:n]) {
				return h.stopped()
			}
		}
		if h.closed.Load() {
			return "closed", true
		}
		switch {
		case err == nil:
		case err == io.EOF:
			h.closeGracefully(io.EOF)
			return "eof", false
		case errors.Is(err, os.ErrDeadlineExceeded):
			switch {
			case dl == dlDrain:
				// Nothing more arrived: every input received is
				// delivered.
				h.closeGracefully(ErrServerClosed)
				return "shutdown", true
			case e.draining.Load():
				// Shutdown interrupted the read: drain from now on.
			default:
				// The client sent nothing for IdleTimeout or the read
				// timeout: what the kernel holds for it still goes,
				// then the FIN.
				if !h.readExpired() {
					break // a callback moved the deadline
				}
				if h.abort(ErrIdle, false) {
					e.st.IdleClosed.Add(1)
				}
				return "idle", false
			}
		default:
			h.fail(err)
			if e.killed.Load() {
				return "shutdown", false
			}
			return "error: " + err.Error(), false
		}
	}
}
