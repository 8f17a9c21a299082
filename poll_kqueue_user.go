//go:build (darwin || dragonfly || freebsd || (linux && tcpoll_kqsim && !tcpoll_kqpipe)) && !tcpoll_poll

package poll

// wakeIdent names our EVFILT_USER event. User events have their own
// namespace in each kqueue, so 0 would work too. The runtime picked a number
// nobody else uses, 0xee1eb9f4, so that it is recognised wherever it is
// printed (runtime/netpoll_kqueue_event.go); ours is distinct from it for the
// same reason, never equals a zeroed kevent's ident, and fits the int that
// setKevent takes on 32-bit systems.
const wakeIdent = 0x7c9011ed

// waker is a user event (EVFILT_USER, FreeBSD and macOS kqueue(2)). It is
// registered with EV_CLEAR, so retrieving it resets it: there is nothing to
// drain.
type waker struct{}

func (*waker) init(kq int) error {
	var ev [1]kevent_t
	setKevent(&ev[0], wakeIdent, evfiltUser, evAdd|evClear)
	return applyChanges(kq, ev[:])
}

func (*waker) is(ev *kevent_t) bool {
	return ev.Filter == evfiltUser && ev.Ident == wakeIdent
}

func (*waker) drain() {}

func (*waker) trigger(kq int) error {
	var ev [1]kevent_t
	setKevent(&ev[0], wakeIdent, evfiltUser, 0)
	ev[0].Fflags = noteTrigger
	return applyChanges(kq, ev[:])
}

func (*waker) close() error { return nil }
