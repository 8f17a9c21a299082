//go:build (netbsd || openbsd) && !tcpoll_poll

package poll

import "golang.org/x/sys/unix"

// waker is the self-pipe of poll_pipe.go with its read end registered for
// EVFILT_READ. OpenBSD has no EVFILT_USER, and NetBSD has it only since
// 10.0, so the runtime uses a pipe on both too
// (runtime/netpoll_kqueue_pipe.go).
type waker struct {
	fd wakefd
}

func (wk *waker) init(kq int) error {
	if err := wk.fd.open(); err != nil {
		return err
	}
	var ev [1]unix.Kevent_t
	unix.SetKevent(&ev[0], wk.fd.readFD(), unix.EVFILT_READ, unix.EV_ADD)
	if err := applyChanges(kq, ev[:]); err != nil {
		wk.fd.close()
		return err
	}
	return nil
}

func (wk *waker) is(ev *unix.Kevent_t) bool {
	return ev.Filter == unix.EVFILT_READ && int(ev.Ident) == wk.fd.readFD()
}

// drain empties the pipe; the filter is level-triggered and would report
// it again otherwise.
func (wk *waker) drain() { wk.fd.drain() }

func (wk *waker) trigger(int) error { return wk.fd.signal() }

func (wk *waker) close() error { return wk.fd.close() }
