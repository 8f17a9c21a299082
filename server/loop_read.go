//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import "golang.org/x/sys/unix"

// readsPerEvent bounds the reads a shutdown drain or a linger makes for one
// event, so that a client that never stops sending cannot hold the loop;
// the poller is level-triggered and reports what is left next turn.
const readsPerEvent = 16

// readable handles a read event: input for the protocol, or late input to
// discard while lingering.
func (l *loop) readable(c *conn, fd int) {
	if c.state&stLinger != 0 {
		l.discard(c, fd)
		return
	}
	if c.state&(stPaused|stNoRead|stHeld) != 0 {
		return
	}
	if c.state&stProxy != 0 {
		l.readHeader(c, fd)
		return
	}
	if c.state&stDraining != 0 && l.drain[fd] == drainAwait {
		// The first input since the shutdown began (see startDrain).
		l.drain[fd] = unread(fd)
		l.awaiting--
	}
	for range readsPerEvent {
		n := l.readSize(c)
		if c.state&stHandshake != 0 {
			if n = min(n, c.x.tls.room()); n == 0 {
				// What came after the ClientHello waits in the socket
				// until the handshake ends (established).
				c.state |= stPaused
				l.setInterest(c, fd)
				return
			}
		}
		if c.state&stDraining != 0 {
			if l.drain[fd] == 0 {
				l.endDrain(c, fd)
				return
			}
			n = min(n, l.drain[fd])
		}
		n, err := recv(fd, l.buf[:n])
		switch {
		case err == unix.EAGAIN:
			if c.state&stDraining != 0 {
				l.finish(c, fd, false)
			}
			return
		case err != nil:
			l.fail(c, fd, err)
			return
		case n == 0 && c.state&stHandshake != 0:
			l.handshakeEOF(c, fd)
			return
		case n == 0 && c.tlsConn() != nil:
			l.tlsEOF(c, fd)
			return
		case n == 0:
			c.state |= stEOF
			l.finish(c, fd, true)
			return
		}
		if !l.consume(c, fd, l.buf[:n]) {
			return
		}
		// Outside shutdown one read per event is enough: the poller is
		// level-triggered and reports what is left next time.
		if c.state&stDraining == 0 || c.state&stPaused != 0 {
			return
		}
	}
}

// readSize is how much to read: no more than the answers to it can add
// while keeping this client's unwritten answers within MaxPendingOutput.
func (l *loop) readSize(c *conn) int {
	room := l.e.cfg.MaxPendingOutput - l.outstanding(c)
	return min(max(room/c.expansion(), 1), len(l.buf))
}

// consume hands input to the protocol and writes its answers. It reports
// whether the connection reads on: false once it finished or was dropped.
func (l *loop) consume(c *conn, fd int, in []byte) bool {
	l.bytesIn += int64(len(in))
	if c.state&stDraining != 0 {
		l.drain[fd] -= len(in)
	}
	if t := c.tlsConn(); t != nil {
		return l.tlsInput(c, fd, t, in)
	}
	return l.deliver(c, fd, in)
}

// deliver hands plaintext input to the protocol or Handler and writes the
// protocol's answers. It reports whether the connection reads on.
func (l *loop) deliver(c *conn, fd int, in []byte) bool {
	if l.idleTicks > 0 {
		l.touch(c, fd)
	}
	var out []byte
	var done bool
	switch {
	case l.e.cfg.builtin:
		out, done = c.fr.Feed(l.out[:0], in)
		l.msgs += answered(out, done)
	case l.e.cfg.Handler != nil:
		h := c.x.h
		if h.readTimeout > 0 {
			h.lastIn = l.e.now()
		}
		l.e.cfg.Handler.OnData(&h.Conn, in)
		return c.state&(stOpen|stNoRead) == stOpen
	default:
		out, done = c.x.proto.Feed(l.out[:0], in)
	}
	if cap(out) > cap(l.out) {
		l.out = out[:0] // keep the grown scratch for the next read
	}
	if !l.write(c, fd, out) {
		return false
	}
	if done {
		l.finish(c, fd, false)
		return false
	}
	return true
}

// endDrain ends a shutdown drain once the input received before the
// shutdown is read. Only EOF is still honoured, so that an unfinished
// message followed by the client's FIN is answered; the one byte read to
// see it would have been discarded anyway.
func (l *loop) endDrain(c *conn, fd int) {
	n, err := recv(fd, l.buf[:1])
	l.finish(c, fd, n == 0 && err == nil)
}

// discard reads and drops a lingering connection's late input, and drops
// the connection at the client's EOF or error.
func (l *loop) discard(c *conn, fd int) {
	for range readsPerEvent {
		n, err := recv(fd, l.buf)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil || n == 0:
			l.drop(c, fd, "")
			return
		}
	}
}

// touch records input for the idle timeout, keeping the active list in
// order of last input.
func (l *loop) touch(c *conn, fd int) {
	now := l.e.ticks()
	if c.since == now {
		return
	}
	c.since = now
	l.active.remove(l.e, fd)
	l.active.pushBack(l.e, fd)
}
