//go:build (darwin || dragonfly || freebsd) && !tcpoll_poll

package poll

import "golang.org/x/sys/unix"

// wakeIdent names our EVFILT_USER event. User events have their own
// namespace in each kqueue, so 0 would work too. The runtime picked a number
// nobody else uses, 0xee1eb9f4, so that it is recognised wherever it is
// printed (runtime/netpoll_kqueue_event.go); ours is distinct from it for the
// same reason, never equals a zeroed kevent's ident, and fits the int that
// unix.SetKevent takes on 32-bit systems.
const wakeIdent = 0x7c9011ed

// waker is a user event (EVFILT_USER, FreeBSD and macOS kqueue(2)). It is
// registered with EV_CLEAR, so retrieving it resets it: there is nothing to
// drain.
type waker struct{}

func (*waker) init(kq int) error {
	var ev [1]unix.Kevent_t
	unix.SetKevent(&ev[0], wakeIdent, unix.EVFILT_USER, unix.EV_ADD|unix.EV_CLEAR)
	return applyChanges(kq, ev[:])
}

func (*waker) is(ev *unix.Kevent_t) bool {
	return ev.Filter == unix.EVFILT_USER && ev.Ident == wakeIdent
}

func (*waker) drain() {}

func (*waker) trigger(kq int) error {
	var ev [1]unix.Kevent_t
	unix.SetKevent(&ev[0], wakeIdent, unix.EVFILT_USER, 0)
	ev[0].Fflags = unix.NOTE_TRIGGER
	return applyChanges(kq, ev[:])
}

func (*waker) close() error { return nil }
