//go:build (netbsd || openbsd || (linux && tcpoll_kqsim && tcpoll_kqpipe)) && !tcpoll_poll

package poll

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
	var ev [1]kevent_t
	setKevent(&ev[0], wk.fd.readFD(), evfiltRead, evAdd)
	if err := applyChanges(kq, ev[:]); err != nil {
		wk.fd.close()
		return err
	}
	return nil
}

func (wk *waker) is(ev *kevent_t) bool {
	return ev.Filter == evfiltRead && int(ev.Ident) == wk.fd.readFD()
}

// drain empties the pipe; the filter is level-triggered and would report
// it again otherwise.
func (wk *waker) drain() { wk.fd.drain() }

func (wk *waker) trigger(int) error { return wk.fd.signal() }

func (wk *waker) close() error { return wk.fd.close() }
