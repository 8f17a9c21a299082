//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import "time"

// drainWait is how long a graceful shutdown waits for the next input of
// a connection that has nothing unread when the shutdown begins. A
// message can be on its way: a client that has just connected sends its
// first message a round trip after its handshake, and a client that
// pipelines sends its next burst once it has read its answers. The first
// input that arrives is answered and the FIN follows the answers at once,
// so a client that reads its answers sees the EOF with them, before it
// writes again. A connection quiet for drainWait gets its FIN then.
const drainWait = 100 * time.Millisecond

// drainAwait marks, in loop.drain, a connection waiting for its first
// input of the drain.
const drainAwait = -1

// beginStop starts a graceful shutdown of this loop: it serves the
// connections already queued on its listeners, stops accepting, and once
// every loop has closed its listeners, each connection answers what it
// has received, then closes (see startDrains).
//
// Closing a listener resets the connections still in its accept queue, so
// the queue is emptied first, unless the listeners were handed over
// (StopAccepting) and the queue belongs to the process that took them. A
// client whose handshake completes after that and before the close is
// still reset (on Linux, net.ipv4.tcp_migrate_req=1 moves it to a sibling
// SO_REUSEPORT listener that is still open instead); one that connects
// later is refused.
func (l *loop) beginStop() {
	if l.listening {
		for i := range l.lfds {
			l.accept(i, acceptQueued)
		}
	}
	l.releaseListeners()
	// A client that reconnects on its connection's FIN would find a
	// sibling loop's listener still open, and be served past the start
	// of the shutdown, or reset as that listener closes: it is refused
	// only once every listener is closed. Until then, for at most
	// siblingWait, the connections are served as before.
	l.drainHeld = l.e.listenersOpen.Load() > 0
	if l.drainHeld {
		l.heldUntil = l.e.ticks() + uint32(siblingWait/time.Millisecond)
	} else {
		l.startDrains()
	}
}

// siblingWait bounds how long a stopping loop waits for its siblings to
// close their listeners before it ends its connections anyway: a sibling
// stuck in a callback for longer should not hold every loop's shutdown.
const siblingWait = 2 * time.Second

// endHold starts the drains held by beginStop once every listener is
// closed, or siblingWait has passed.
func (l *loop) endHold() {
	if l.e.listenersOpen.Load() == 0 || int32(l.e.ticks()-l.heldUntil) >= 0 {
		l.drainHeld = false
		l.startDrains()
	}
}

// startDrains makes every connection of the loop answer what it has
// received, then close (see startDrain).
func (l *loop) startDrains() {
	l.drain = make(map[int]int)
	// A connection still owing its PROXY header, or still in its TLS
	// handshake, has sent no message yet; one may be on its way, from a
	// connection just accepted. The header or the handshake completes
	// within drainWait (see readHeader, established) or the connection is
	// closed.
	if l.headers.head >= 0 || l.handshakes.head >= 0 {
		l.waitUntil(l.e.ticks() + uint32(drainWait/time.Millisecond))
		l.awaitHeaders = true
	}
	// The walk goes over a copy of the list: reading a connection can send
	// the batch, which can move or drop others.
	l.walk = l.walk[:0]
	for fd := l.active.head; fd >= 0; fd = l.e.table.get(int(fd)).next {
		l.walk = append(l.walk, fd)
	}
	for _, fd := range l.walk {
		l.startDrain(l.e.table.get(int(fd)), int(fd))
	}
}

// startDrain makes a connection answer what it has received, then close:
// what its socket holds now, or if that is nothing, its next input within
// drainWait. A connection still reading its PROXY header comes back here
// once the header is complete.
func (l *loop) startDrain(c *conn, fd int) {
	if c.state&(stOpen|stNoRead|stProxy|stHandshake) != stOpen {
		return
	}
	setWhy(c, ErrServerClosed)
	c.state |= stDraining
	if n := unread(fd); n > 0 {
		if l.drain[fd] == drainAwait {
			l.awaiting--
		}
		l.drain[fd] = n
		l.readable(c, fd)
		return
	}
	if l.drain[fd] != drainAwait {
		l.drain[fd] = drainAwait
		l.awaiting++
	}
	l.waitUntil(l.e.ticks() + uint32(drainWait/time.Millisecond))
}

// waitUntil moves drainAt to at, unless it is later already and something
// waits for it: a connection handed over late gets its own drainWait.
func (l *loop) waitUntil(at uint32) {
	if (l.awaiting <= 1 && !l.awaitHeaders) || int32(at-l.drainAt) > 0 {
		l.drainAt = at
	}
}

// endWaits closes, once drainWait has passed, the connections whose next
// input has not come, and those still owing their PROXY header.
func (l *loop) endWaits() {
	if (l.awaiting == 0 && !l.awaitHeaders) || int32(l.e.ticks()-l.drainAt) < 0 {
		return
	}
	if l.awaitHeaders {
		l.awaitHeaders = false
		for l.headers.head >= 0 {
			fd := int(l.headers.head)
			l.drop(l.e.table.get(fd), fd, "shutdown")
		}
		for l.handshakes.head >= 0 {
			fd := int(l.handshakes.head)
			l.drop(l.e.table.get(fd), fd, "shutdown")
		}
	}
	l.walk = l.walk[:0]
	for fd, n := range l.drain {
		if n == drainAwait {
			l.walk = append(l.walk, int32(fd))
		}
	}
	for _, fd := range l.walk {
		c := l.e.table.get(int(fd))
		if c.state&stOpen != 0 && l.drain[int(fd)] == drainAwait {
			// Unmarked first: the connection lingers on after endDrain,
			// and drop must not count it out of awaiting again.
			l.drain[int(fd)] = 0
			l.awaiting--
			// Only a read of the socket unmarks a connection, and a TLS
			// one can stop reading without one: closing from input it
			// held (tlsResume), or at the EOF behind it. It is not read,
			// nor ended, again.
			if c.state&stNoRead == 0 {
				l.endDrain(c, int(fd))
			}
		}
	}
}

// closeEverything drops every connection at once.
func (l *loop) closeEverything() {
	for l.headers.head >= 0 {
		fd := int(l.headers.head)
		l.drop(l.e.table.get(fd), fd, "shutdown")
	}
	for l.handshakes.head >= 0 {
		fd := int(l.handshakes.head)
		l.drop(l.e.table.get(fd), fd, "shutdown")
	}
	for l.active.head >= 0 {
		fd := int(l.active.head)
		l.drop(l.e.table.get(fd), fd, "shutdown")
	}
	for l.linger.head >= 0 {
		fd := int(l.linger.head)
		l.drop(l.e.table.get(fd), fd, "shutdown")
	}
	if !l.stopping {
		l.releaseListeners()
	}
}

// releaseListeners stops accepting in this loop and closes its listeners.
func (l *loop) releaseListeners() {
	l.stopping = true
	l.unlisten()
	l.e.mu.Lock()
	l.e.listenersGone = true
	closeFDs(l.lfds)
	l.e.mu.Unlock()
	if len(l.lfds) > 0 && l.e.listenersOpen.Add(-1) == 0 {
		for _, o := range l.e.loops {
			if o != l {
				o.p.Wake() // its drains were held (beginStop)
			}
		}
	}
	l.lfds = nil
}

// unlisten takes the listeners out of the poller: the loop accepts no more.
func (l *loop) unlisten() {
	if !l.listening {
		return
	}
	l.listening = false
	// An accept back-off ends here: nothing is to be watched again, and a
	// retry time left in the past would make every Wait return at once.
	l.acceptOff = false
	for _, lfd := range l.lfds {
		l.p.Delete(lfd)
	}
}
