//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

// beginStop starts a graceful shutdown of this loop: it serves the
// connections already queued on its listeners, stops accepting, and each
// connection answers what is already readable, then closes.
//
// Closing a listener resets the connections still in its accept queue, so
// the queue is emptied first. A client whose handshake completes after
// that and before the close is still reset (on Linux,
// net.ipv4.tcp_migrate_req=1 moves it to a sibling SO_REUSEPORT listener
// that is still open instead); one that connects later is refused.
func (l *loop) beginStop() {
	for i := range l.lfds {
		l.accept(i, acceptQueued)
	}
	l.releaseListeners()
	// A connection still owing its PROXY header has sent no message.
	for l.headers.head >= 0 {
		fd := int(l.headers.head)
		l.drop(l.e.table.get(fd), fd, "shutdown")
	}
	l.drain = make(map[int]int)
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

// startDrain makes a connection answer what it has received, then close.
func (l *loop) startDrain(c *conn, fd int) {
	if c.state&(stOpen|stNoRead) != stOpen {
		return
	}
	c.state |= stDraining
	l.drain[fd] = unread(fd)
	l.readable(c, fd)
}

// closeEverything drops every connection at once.
func (l *loop) closeEverything() {
	for l.headers.head >= 0 {
		fd := int(l.headers.head)
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
	// An accept back-off ends here: nothing is to be watched again, and a
	// retry time left in the past would make every Wait return at once.
	l.acceptOff = false
	for _, lfd := range l.lfds {
		l.p.Delete(lfd)
	}
	closeFDs(l.lfds)
	l.lfds = nil
}
