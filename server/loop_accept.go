//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

const (
	// acceptBatch bounds the accepts per listener event, so a connection
	// storm cannot starve the loop's clients.
	acceptBatch = 64
	// acceptQueued bounds the accepts that empty a listener's queue before
	// it closes: the kernel caps the backlog at somaxconn (4096 by default
	// on Linux), so this is that and the arrivals while it is taken.
	acceptQueued = 1 << 14
	maxBackoff   = time.Second
)

// accept takes up to n connections queued on listener i.
func (l *loop) accept(i, n int) {
	cfg, st := l.e.cfg, l.e.st
	for range n {
		fd, err := accept(l.lfds[i])
		if err != nil {
			switch err {
			case unix.EAGAIN:
				l.backoff = 0
				return
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM,
				unix.EBADF, unix.EINVAL, unix.ENOTSOCK, unix.EFAULT:
				// Out of descriptors or memory, or a broken listener. The
				// listener stays readable, so keep polling it and the loop
				// would spin: unwatch it until a connection of ours closes
				// or the back-off passes.
				st.AcceptErrors.Add(1)
				l.e.acceptErr.Log("err", err)
				l.unwatchListeners()
				return
			}
			// The connection failed while queued: ECONNABORTED, or an
			// error accept(2) passes on from the new socket (EPROTO,
			// ENETDOWN, EHOSTUNREACH, EPERM from a firewall, ...). The
			// listener is fine and the queue may hold more: take the next.
			continue
		}
		if !l.e.reserve() {
			unix.Close(fd)
			st.Rejected.Add(1)
			l.e.rejected.Log("reason", "MaxConns", "max_conns", cfg.MaxConns)
			continue
		}
		if l.e.handoff {
			t := l.e.loops[l.next]
			l.next = (l.next + 1) % len(l.e.loops)
			if t != l && t.give(fd) {
				continue
			}
		}
		if l.openAccepted(fd) {
			l.readEarly(fd)
		}
	}
}

// openAccepted opens a connection reserved in Open, or closes it and
// reports false.
func (l *loop) openAccepted(fd int) bool {
	if err := l.open(fd); err != nil {
		l.e.st.Open.Add(-1)
		unix.Close(fd)
		l.e.st.AcceptErrors.Add(1)
		l.e.acceptErr.Log("err", err)
		return false
	}
	return true
}

// readEarly reads a connection just opened rather than wait for the
// poller to report it. A client writes as soon as its connect completes,
// so by the time the loop accepts, the request is usually there (8 times
// in 10 under bench/cmd/churn), and answering it in the accept's turn
// saves the turn its readiness would take. Under churn (`churn -c 32`,
// `perf stat -p PID`) a connection then cost 0.27 epoll_wait calls and
// 0.32 context switches instead of 0.55 and 0.54, for 0.2 more read(2);
// in six rounds side by side with the C server, the median of tcpoll's
// CPU per connection over C's went from 1.11 to 1.06.
//
// Not once a shutdown is asked for: beginStop accepts what is queued and
// then drains each connection from what it holds (startDrain), and one
// whose request was read here would hold nothing and wait drainWait before
// its FIN.
func (l *loop) readEarly(fd int) {
	if l.stop.Load() {
		return
	}
	if c := l.e.table.get(fd); c.state&stOpen != 0 {
		l.readable(c, fd)
	}
}

// token is a connection's poll token.
func token(gen uint32, fd int) uint64 { return uint64(gen)<<32 | uint64(fd) }

// inbox passes accepted descriptors from the accepting loop to another.
// Its mutex is the handover: the number is the receiver's from then on,
// and the accepting loop never touches it or its slot again.
type inbox struct {
	mu     sync.Mutex
	fds    []int32
	spare  []int32
	sealed bool // the receiver has stopped: give fails
}

// give hands fd to l, unless l has stopped.
func (l *loop) give(fd int) bool {
	l.inbox.mu.Lock()
	if l.inbox.sealed {
		l.inbox.mu.Unlock()
		return false
	}
	l.inbox.fds = append(l.inbox.fds, int32(fd))
	l.inbox.mu.Unlock()
	l.p.Wake()
	return true
}

// takeInbox opens the connections handed to this loop. Once the loop is
// stopping they are served as a shutdown serves the others: what they
// sent is answered, then they close.
func (l *loop) takeInbox() {
	in := &l.inbox
	in.mu.Lock()
	fds := in.fds
	in.fds, in.spare = in.spare[:0], fds
	in.mu.Unlock()
	for _, fd := range fds {
		switch {
		case !l.openAccepted(int(fd)):
		case l.drain != nil:
			c := l.e.table.get(int(fd))
			if c.state&(stProxy|stHandshake) != 0 {
				// Its PROXY header or TLS handshake gets drainWait, as
				// those of beginStop do (see endWaits).
				l.waitUntil(l.e.ticks() + uint32(drainWait/time.Millisecond))
				l.awaitHeaders = true
				continue
			}
			l.startDrain(c, int(fd))
		default:
			l.readEarly(int(fd))
		}
	}
}

// seal reports whether the inbox is empty, and if so makes every later
// give fail, so that a stopping loop cannot leave a connection behind.
func (l *loop) seal() bool {
	if !l.e.handoff {
		return true
	}
	in := &l.inbox
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.fds) > 0 {
		return false
	}
	in.sealed = true
	return true
}

// closeInbox closes what was handed to a loop that is exiting at once
// (forced, or its poller failed).
func (l *loop) closeInbox() {
	in := &l.inbox
	in.mu.Lock()
	in.sealed = true
	fds := in.fds
	in.fds = nil
	in.mu.Unlock()
	for _, fd := range fds {
		unix.Close(int(fd))
	}
	l.e.st.Open.Add(-int64(len(fds)))
}

func (l *loop) unwatchListeners() {
	if l.acceptOff {
		return
	}
	l.backoff = min(max(2*l.backoff, 10*time.Millisecond), maxBackoff)
	for i, lfd := range l.lfds {
		l.p.Modify(lfd, listenerToken|uint64(i), 0)
	}
	l.acceptOff = true
	l.acceptRetry = l.e.ticks() + uint32(l.backoff/time.Millisecond)
}

func (l *loop) watchListeners() {
	if !l.acceptOff || !l.listening {
		return
	}
	l.acceptOff = false
	for i, lfd := range l.lfds {
		l.p.Modify(lfd, listenerToken|uint64(i), poll.Readable)
	}
}

// open makes fd, just accepted, a connection of this loop.
func (l *loop) open(fd int) error {
	if !optsInherited {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	c, err := l.e.table.slot(fd)
	if err != nil {
		return err
	}
	// The slot is ours from here: this load orders what follows after the
	// previous owner's last touch (see loop).
	g := c.gen.Load()
	c.state = stOpen
	c.interest = poll.Readable
	switch {
	case l.e.cfg.builtin:
		c.fr = newFramer(l.e.cfg.MaxMessage, l.e.cfg.Framing)
	case l.e.cfg.Handler != nil:
		l.newHandle(c, fd)
	default:
		l.ext(c).proto = l.e.cfg.NewProtocol()
	}
	c.since = l.e.ticks()
	if err := l.p.Add(fd, token(g, fd), poll.Readable); err != nil {
		l.putExt(c)
		c.reset()
		return err
	}
	if l.e.cfg.ProxyProtocol {
		c.state |= stProxy
		l.newHeader(c)
		l.headers.pushBack(l.e, fd)
		return nil
	}
	l.active.pushBack(l.e, fd)
	l.admit(c, fd, netip.AddrPort{}, false)
	return nil
}
