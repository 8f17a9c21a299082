//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"io"

	"golang.org/x/sys/unix"
)

// finish stops reading and closes the connection once its answers are
// written. At EOF the protocol answers any unfinished message first.
func (l *loop) finish(c *conn, fd int, eof bool) {
	if eof && c.handle() != nil {
		setWhy(c, io.EOF)
	} else if eof {
		var out []byte
		if l.e.cfg.builtin {
			out = c.fr.End(l.out[:0])
			l.msgs += answered(out, true)
		} else {
			out = c.x.proto.End(l.out[:0])
		}
		if !l.write(c, fd, out) {
			return
		}
	}
	c.state |= stNoRead | stClosing
	if h := c.handle(); h != nil {
		// Writes made from now on could keep the FIN waiting for ever.
		l.stopWrites(h)
	}
	switch {
	case c.state&stBatched != 0:
		// sendBatch goes on to closeGracefully once the answers are out.
	case c.output() == nil:
		l.closeGracefully(c, fd)
	default:
		l.setInterest(c, fd) // flush goes on to closeGracefully
	}
}

// closeGracefully ends a connection whose answers are all written. After
// the client's EOF the socket is simply closed: FIN, nothing unread. Else
// input may still arrive, and closing a socket with unread input sends a
// reset, which can destroy answers the client has not read yet; so send the
// FIN alone and drain until the client closes too, for at most lingerTime.
func (l *loop) closeGracefully(c *conn, fd int) {
	if c.state&(stOpen|stLinger) != stOpen {
		// Ended or lingering already: reached a second time by another
		// path (a batch sent within runTasks, then wroteQueued), it would
		// put the connection in the linger list twice.
		return
	}
	if c.state&stBatched != 0 {
		// Output made since the caller looked (flush resumed reading,
		// and what it read was answered into the batch): sendBatch comes
		// back once it is out. The FIN, or TLS's close_notify, now would
		// overtake it.
		return
	}
	h := c.handle()
	if h != nil && l.writesQueued(h) {
		// Writes queued before the close are still in the task queue:
		// they go first (see wroteQueued).
		return
	}
	if t := c.tlsConn(); t != nil && !l.notify(c, fd, t) {
		// The alert waits in the output, the FIN after it; the handle's
		// deadlines (a Close's CloseTimeout) bound the wait.
		return
	}
	if h != nil {
		l.endHandle(c)
	}
	if c.state&stEOF != 0 {
		l.drop(c, fd, "")
		return
	}
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
		l.drop(c, fd, "")
		return
	}
	c.state |= stLinger
	if c.x != nil {
		c.x.proto = nil // lingering needs no protocol
		if t := c.x.tls; t != nil {
			l.endTLS(t) // nor TLS: what comes now is discarded unread
			c.x.tls = nil
		}
	}
	l.active.remove(l.e, fd)
	c.since = l.e.ticks()
	l.linger.pushBack(l.e, fd)
	l.setInterest(c, fd)
}

// fail drops a connection after a socket error. One that ends a TLS
// handshake is the handshake's failure, and counted as such.
func (l *loop) fail(c *conn, fd int, err error) {
	if c.state&stHandshake != 0 && !c.x.tls.silent() {
		l.tlsFail(c, fd, err)
		return
	}
	l.e.st.Resets.Add(1)
	setWhy(c, err)
	if l.logConns {
		l.e.connErr.Log("fd", fd, "err", err)
	}
	l.drop(c, fd, "")
}

// drop ends a connection's life in the loop: it leaves its list and the
// send batch, and what it holds is freed. Its descriptor
// stays open until reap, at the end of the turn (see loop), and its slot
// has state 0 meanwhile, so the turn's later events and batch entries for
// it are ignored. Dropping twice is harmless.
func (l *loop) drop(c *conn, fd int, why string) {
	if c.state&stOpen == 0 {
		return
	}
	switch {
	case c.state&stLinger != 0:
		l.linger.remove(l.e, fd)
	case c.state&stProxy != 0:
		l.endHeader(c, fd)
	case c.state&stHandshake != 0:
		l.handshakes.remove(l.e, fd)
	default:
		l.active.remove(l.e, fd)
	}
	if c.x != nil && c.x.ip.IsValid() {
		l.e.ips.release(c.x.ip)
	}
	// No Delete on epoll and kqueue: close(2) in reap takes the
	// registration with it, which spares a system call per connection
	// (epoll(7), "Will closing a file descriptor cause it to be removed
	// from all epoll interest lists?"; kqueue(2)). Not always at once on
	// Linux: while something else holds the socket (a child between fork
	// and exec, a send left in flight by a ring that failed), the
	// registration lives on and may report it again. Those events carry
	// the old generation, and run ignores them. poll(2) keeps its
	// registrations in the process and never sees the close: there the
	// registration goes now, before reap frees the number for another
	// loop's accept (package poll, the contract on Delete). It costs no
	// system call.
	if pollerMissesClose {
		l.p.Delete(fd)
	}
	if o := c.output(); o != nil {
		l.putBuf(o)
	}
	setWhy(c, ErrServerClosed) // if nothing else ended it, the shutdown did
	l.endHandle(c)
	if t := c.tlsConn(); t != nil {
		l.endTLS(t)
	}
	l.putExt(c)
	if l.drain != nil {
		if l.drain[fd] == drainAwait {
			l.awaiting--
		}
		delete(l.drain, fd)
	}
	c.reset()
	l.dead = append(l.dead, int32(fd))
	if l.logConns {
		if why != "" {
			l.e.cfg.Logger.Debug("connection closed", "fd", fd, "reason", why)
		} else {
			l.e.cfg.Logger.Debug("connection closed", "fd", fd)
		}
	}
}

// reap closes the descriptors dropped in this turn. It is the only place
// that closes a connection's descriptor, and it runs where nothing in the
// loop refers to one: at the end of the turn, after the batch is sent.
func (l *loop) reap() {
	if len(l.dead) == 0 {
		return
	}
	for _, fd := range l.dead {
		// The slot's last touch by this loop, before the number is free
		// for another loop's accept.
		c := l.e.table.get(int(fd))
		c.gen.Store(nextGen(c.gen.Load()))
		closeConn(int(fd))
	}
	l.e.st.Open.Add(-int64(len(l.dead)))
	l.dead = l.dead[:0]
	// Descriptors are free again: accepting may work now.
	l.watchListeners()
}
