//go:build aix || solaris || netbsd || openbsd || (tcpoll_poll && (darwin || dragonfly || freebsd)) || (linux && tcpoll_kqsim && tcpoll_kqpipe && !tcpoll_poll)

package poll

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// wakefd is the descriptor a Wait watches to be woken, where there is no
// eventfd: a self-pipe. signal writes a byte, drain empties the pipe. kqueue
// uses it where it has no EVFILT_USER (OpenBSD; NetBSD before 10.0), as the
// runtime does (runtime/netpoll_kqueue_pipe.go), and so does poll(2) off
// Linux. The kqueue model on Linux (poll_kqsim_linux.go) takes it with
// -tags tcpoll_kqsim,tcpoll_kqpipe, so that kqueue's pipe waker is tested.
type wakefd struct{ r, w int }

func (p *wakefd) open() error {
	var fds [2]int
	if err := openPipe(&fds); err != nil {
		return err
	}
	p.r, p.w = fds[0], fds[1]
	return nil
}

// readFD is the descriptor that becomes readable when signalled.
func (p *wakefd) readFD() int { return p.r }

func (p *wakefd) signal() error {
	_, err := unix.Write(p.w, []byte{0})
	if err == unix.EAGAIN {
		// The pipe is full, so a Wait will wake anyway.
		return nil
	}
	return os.NewSyscallError("write", err)
}

// drain empties the pipe, which would stay readable otherwise.
func (p *wakefd) drain() {
	var buf [16]byte
	for {
		n, err := unix.Read(p.r, buf[:])
		if err != nil || n < len(buf) {
			// EAGAIN: empty.
			return
		}
	}
}

func (p *wakefd) close() error {
	e1 := unix.Close(p.r)
	e2 := unix.Close(p.w)
	return errors.Join(os.NewSyscallError("close", e1), os.NewSyscallError("close", e2))
}
