//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A connection served by a Handler (Config.Handler) has a pollConn: the
// handle the Handler and other goroutines hold. Only the loop that owns
// the connection acts on it. Another goroutine's write, close or function
// is a task in the loop's queue; the loop runs the queue once a turn,
// after the events, and a task for a handle that has ended is dropped, so
// a handle never reaches the socket that takes its number next.

// pollConn is a Conn of the poll engine. fd and ended are the loop's.
type pollConn struct {
	Conn
	l  *loop
	fd int32
	// opened: OnOpen was called, so OnClose will be.
	opened bool
	// ended: the connection has ended (FIN sent, or dropped); the slot
	// may belong to another connection already.
	ended bool
	// why is OnClose's reason, once one is known (whySet).
	why    error
	whySet bool
	// in gathers the bytes of AsyncWrites until the loop takes them, so
	// that the writes a connection gets in a turn, from however many
	// goroutines, reach the socket as one send; queuedIn says a taskWrite
	// for them is in the queue. Both are under the loop's task queue's
	// lock. spare is the loop's: the buffer in was, kept for reuse.
	in       []byte
	queuedIn bool
	spare    []byte
	// inOwed is what the writes gathered in in charged beyond their bytes
	// (Conn.charge), for the loop to settle once they are sealed; under
	// the task queue's lock.
	inOwed int64
	// taken: runTasks holds bytes of in it has not written yet (the
	// loop's); a graceful close waits for them as for queuedIn.
	taken bool
	// dl checks the read and write timeouts: one entry in the loop's
	// timer heap while either is set, whatever the traffic. Input and
	// output record only their time (lastIn, lastOut: ticks of the last
	// input, and of the output's last progress or the start of its
	// wait); when dl comes due it finds the deadline moved, or acts.
	// readSet is the read timeout it measures, to tell a new one.
	dl                Timer
	lastIn, lastOut   int64
	readSet, writeSet time.Duration
	// closeBy is the tick by which a graceful close must be done (0:
	// none), after which the connection is reset.
	closeBy int64
}

// taskQueue holds tasks for a loop's connections from other goroutines.
type taskQueue struct {
	mu    sync.Mutex
	items []pollTask
	spare []pollTask
}

type pollTask struct {
	pc   *pollConn
	t    task
	owed int64 // a taskWrite's inOwed
}

func (pc *pollConn) post(c *Conn, t task) error {
	q := &pc.l.tasks
	q.mu.Lock()
	// Once a shutdown has begun, writes from other goroutines could hold
	// its FINs back for ever: they fail, and those before are sent.
	if c.closed.Load() || t.kind == taskWrite && pc.l.stop.Load() {
		q.mu.Unlock()
		return ErrClosed
	}
	switch t.kind {
	case taskWrite:
		pc.in = append(pc.in, t.b...)
		pc.inOwed += c.charge(len(t.b)) - int64(len(t.b))
		if pc.queuedIn {
			q.mu.Unlock()
			return nil // the loop has yet to take in: these go with it
		}
		pc.queuedIn = true
		t.b = nil
	case taskClose, taskAbort:
		// Nothing written after a close is sent; say so at once.
		c.closed.Store(true)
	}
	q.items = append(q.items, pollTask{pc: pc, t: t})
	wake := len(q.items) == 1
	q.mu.Unlock()
	if wake {
		// Later tasks find the queue non-empty: the loop has been woken
		// already, and takes them all in one go.
		pc.l.p.Wake()
	}
	return nil
}

func (pc *pollConn) write(c *Conn, b []byte) error {
	l := pc.l
	fd := int(pc.fd)
	l.owed = c.charge(len(b)) - int64(len(b))
	l.write(l.e.table.get(fd), fd, b)
	return nil
}

func (pc *pollConn) setReading(c *Conn, on bool) {
	if pc.ended {
		return
	}
	l := pc.l
	fd := int(pc.fd)
	s := l.e.table.get(fd)
	if on {
		s.state &^= stHeld
		l.resumeLater(s, fd)
	} else {
		s.state |= stHeld
	}
	l.setInterest(s, fd)
}

func (pc *pollConn) afterFunc(c *Conn, d time.Duration, f func()) *Timer {
	l := pc.l
	t := &Timer{at: l.e.now() + ceilTicks(d), f: func() {
		if !pc.ended {
			f()
		}
	}}
	l.timers.push(t)
	return t
}

// ceilTicks is d in ticks, rounded up, plus one for the truncation of the
// tick it starts from: a timer never runs sooner than asked.
func ceilTicks(d time.Duration) int64 {
	if d <= 0 {
		return 1
	}
	return int64(min((d+time.Millisecond-1)/time.Millisecond, 1<<50)) + 1
}

// newHandle gives a connection just accepted its handle.
func (l *loop) newHandle(c *conn, fd int) {
	pc := &pollConn{l: l, fd: int32(fd)}
	pc.eng = pc
	pc.max = int64(l.e.cfg.MaxPendingOutput)
	pc.dl = Timer{idx: -1}
	pc.dl.f = pc.checkTimeouts
	l.ext(c).h = pc
}

func (pc *pollConn) timeoutsChanged(c *Conn) {
	if pc.ended {
		return
	}
	now := pc.l.e.now()
	// A new timeout counts from now at the earliest: progress made
	// while none was set was not recorded.
	if c.readTimeout != pc.readSet {
		pc.readSet = c.readTimeout
		pc.lastIn = now
	}
	if c.writeTimeout != pc.writeSet {
		pc.writeSet = c.writeTimeout
		pc.lastOut = now
	}
	pc.dl.Stop()
	pc.armTimeouts(now)
}

// armTimeouts puts dl in the heap for the earliest deadline, if any.
func (pc *pollConn) armTimeouts(now int64) {
	l := pc.l
	at := int64(-1)
	if d := pc.readTimeout; d > 0 {
		at = pc.lastIn + ceilTicks(d)
	}
	if d := pc.writeTimeout; d > 0 && l.e.table.get(int(pc.fd)).output() != nil {
		if w := pc.lastOut + ceilTicks(d); at < 0 || w < at {
			at = w
		}
	}
	if pc.closeBy > 0 && (at < 0 || pc.closeBy < at) {
		at = pc.closeBy
	}
	if at >= 0 {
		pc.dl.at = max(at, now+1)
		l.timers.push(&pc.dl)
	}
}

// checkTimeouts runs when dl comes due: it ends a connection past a
// deadline, or puts dl back for the next.
func (pc *pollConn) checkTimeouts() {
	if pc.ended {
		return
	}
	l := pc.l
	fd := int(pc.fd)
	c := l.e.table.get(fd)
	now := l.e.now()
	if c.state&(stPaused|stHeld) != 0 {
		// Not reading is not the client's idleness: the wait starts again
		// (as on stdnet, where no read is made meanwhile).
		pc.lastIn = now
	}
	if d := pc.readTimeout; d > 0 && now >= pc.lastIn+ceilTicks(d) {
		l.e.st.IdleClosed.Add(1)
		setWhy(c, ErrIdle)
		l.drop(c, fd, "idle")
		return
	}
	if d := pc.writeTimeout; d > 0 && c.output() != nil && now >= pc.lastOut+ceilTicks(d) {
		setWhy(c, ErrWriteTimeout)
		reset(fd)
		l.drop(c, fd, "write timeout")
		return
	}
	if pc.closeBy > 0 && now >= pc.closeBy {
		reset(fd)
		l.drop(c, fd, "close timed out")
		return
	}
	pc.armTimeouts(now)
}

// outputWaits starts the write timeout's wait: output has just begun to
// wait for the socket.
func (pc *pollConn) outputWaits() {
	if pc.writeTimeout <= 0 {
		return
	}
	now := pc.l.e.now()
	pc.lastOut = now
	if at := now + ceilTicks(pc.writeTimeout); pc.dl.idx < 0 || at < pc.dl.at {
		pc.dl.Stop()
		pc.armTimeouts(now)
	}
}

// setWhy records why a handled connection ends, unless a reason was
// recorded already: the first is the cause, what follows its effect.
func setWhy(c *conn, why error) {
	if h := c.handle(); h != nil && !h.whySet {
		h.why, h.whySet = why, true
	}
}

// endHandle ends a connection's handle: at the FIN of a graceful close,
// or when the connection is dropped. Writes fail from then on, and writers
// waiting for room wake to find ErrClosed. The Handler hears of it at the
// end of the turn (notifyClosed): an OnClose called from within a Write
// that failed would run inside the Handler's own OnData.
func (l *loop) endHandle(c *conn) {
	pc := c.handle()
	if pc == nil || pc.ended {
		return
	}
	pc.ended = true
	pc.dl.Stop()
	l.stopWrites(pc)
	pc.signalRoom()
	if pc.opened {
		l.ended = append(l.ended, pc)
	}
}

// notifyClosed calls OnClose for the handles that ended in this turn.
func (l *loop) notifyClosed() {
	for len(l.ended) > 0 {
		pc := l.ended[0]
		l.ended[0] = nil
		l.ended = l.ended[1:]
		l.e.cfg.Handler.OnClose(&pc.Conn, pc.why)
	}
	l.ended = l.ended[:0]
}

// stopWrites makes every later write to pc fail. Under the queue's lock,
// so a write either is queued before it (and sent before the FIN) or
// fails.
func (l *loop) stopWrites(pc *pollConn) {
	l.tasks.mu.Lock()
	pc.closed.Store(true)
	l.tasks.mu.Unlock()
}

// writesQueued makes every later write to pc fail, and reports whether
// writes made before are still in the task queue. Not the pending count:
// a write that counted its bytes may yet fail to queue them.
func (l *loop) writesQueued(pc *pollConn) bool {
	l.tasks.mu.Lock()
	defer l.tasks.mu.Unlock()
	pc.closed.Store(true)
	return pc.queuedIn || pc.taken
}

// runTasks runs the tasks queued so far. A task for a handle that has
// ended is dropped.
func (l *loop) runTasks() {
	q := &l.tasks
	q.mu.Lock()
	ts := q.items
	q.items, q.spare = q.spare[:0], ts
	for i := range ts {
		if pc := ts[i].pc; ts[i].t.kind == taskWrite {
			ts[i].t.b, pc.in, pc.spare = pc.in, pc.spare[:0], nil
			ts[i].owed, pc.inOwed = pc.inOwed, 0
			pc.queuedIn, pc.taken = false, true
		}
	}
	q.mu.Unlock()
	for i := range ts {
		pc, t, owed := ts[i].pc, ts[i].t, ts[i].owed
		ts[i] = pollTask{} // the task's bytes and function go now
		if pc.ended {
			pc.taken = false
			continue
		}
		fd := int(pc.fd)
		c := l.e.table.get(fd)
		switch t.kind {
		case taskWrite:
			// A batch sent while these bytes queue may reach the
			// connection's closeGracefully (sendBatch): taken tells it
			// they are still to go, until write has them.
			l.owed = owed
			ok := l.write(c, fd, t.b)
			pc.taken = false
			if cap(t.b) <= maxSpare {
				pc.spare = t.b[:0] // write copied what it kept
			}
			if ok {
				l.wroteQueued(c, fd)
			}
		case taskRun:
			t.f()
		case taskClose:
			setWhy(c, t.why)
			l.stopWrites(pc)
			if c.state&stNoRead == 0 {
				l.finish(c, fd, false)
			}
			if !pc.ended && pc.closeBy == 0 {
				// Output still waits for the client: bound the wait.
				pc.closeBy = l.e.now() + ceilTicks(CloseTimeout)
				pc.dl.Stop()
				pc.armTimeouts(l.e.now())
			}
		case taskAbort:
			setWhy(c, t.why)
			reset(fd)
			l.drop(c, fd, "aborted")
		}
	}
}

// reset makes the close of fd a reset (a linger time of 0), so that what
// the kernel still holds for the client is discarded too; close(2) does
// not wait then.
func reset(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
}

// maxSpare bounds the gathering buffer a connection keeps between turns:
// a burst's buffer goes back to the garbage collector.
const maxSpare = 16 << 10

// wroteQueued follows a queued write: a connection closing gracefully
// sends its FIN once the writes queued before its close are out, and one
// whose reading paused for its output may read again.
func (l *loop) wroteQueued(c *conn, fd int) {
	if c.state&stClosing != 0 && c.output() == nil && c.state&stBatched == 0 {
		l.closeGracefully(c, fd)
		return
	}
	if c.state&stPaused != 0 && c.output() == nil {
		l.resume(c, fd)
	}
}

// outstanding is a connection's output not yet taken by the kernel: its
// queued answers, or for a handled connection its handle's count, which
// takes in the writes waiting in the task queue too.
func (l *loop) outstanding(c *conn) int {
	if h := c.handle(); h != nil {
		return int(h.pending.Load())
	}
	return c.pending()
}

// expansion is the most output a connection's input can make per byte,
// as far as its reading is sized and paused: a Handler's output need not
// follow its input, so it is taken as one.
func (c *conn) expansion() int {
	if c.handle() != nil {
		return 1
	}
	return MaxExpansion
}

// sent uncounts output the kernel took.
func (c *conn) sent(n int) {
	if h := c.handle(); h != nil && n > 0 {
		h.sent(n)
		if h.writeTimeout > 0 {
			h.lastOut = h.l.e.now()
		}
	}
}
