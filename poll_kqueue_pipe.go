//go:build netbsd || openbsd

package poll

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// waker is a self-pipe whose read end is registered for EVFILT_READ.
// OpenBSD has no EVFILT_USER, and NetBSD has it only since 10.0, so the
// runtime uses a pipe on both too (runtime/netpoll_kqueue_pipe.go).
type waker struct {
	r, w int
}

func (wk *waker) init(kq int) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	var ev [1]unix.Kevent_t
	unix.SetKevent(&ev[0], p[0], unix.EVFILT_READ, unix.EV_ADD)
	if err := applyChanges(kq, ev[:]); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return err
	}
	wk.r, wk.w = p[0], p[1]
	return nil
}

func (wk *waker) is(ev *unix.Kevent_t) bool {
	return ev.Filter == unix.EVFILT_READ && int(ev.Ident) == wk.r
}

// drain empties the pipe; the filter is level-triggered and would report
// it again otherwise.
func (wk *waker) drain() {
	var buf [16]byte
	for {
		n, err := unix.Read(wk.r, buf[:])
		if err != nil || n < len(buf) {
			// EAGAIN: empty.
			return
		}
	}
}

func (wk *waker) trigger(int) error {
	_, err := unix.Write(wk.w, []byte{0})
	if err == unix.EAGAIN {
		// The pipe is full, so a Wait will wake anyway.
		return nil
	}
	return os.NewSyscallError("write", err)
}

func (wk *waker) close() error {
	e1 := unix.Close(wk.r)
	e2 := unix.Close(wk.w)
	return errors.Join(os.NewSyscallError("close", e1), os.NewSyscallError("close", e2))
}
