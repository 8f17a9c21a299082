//go:build (darwin || dragonfly || freebsd || netbsd || openbsd) && !tcpoll_poll

package poll

import "golang.org/x/sys/unix"

// The names the kqueue backend and its wakers take from the system, here
// x/sys/unix's. They are the whole seam between that code and the kernel:
// poll_kqsim_linux.go defines the same names over a model of kqueue, so
// that with -tags tcpoll_kqsim the same backend runs, and is tested, on
// Linux.

// kevent_t is struct kevent.
type kevent_t = unix.Kevent_t

const (
	evAdd     = unix.EV_ADD
	evDelete  = unix.EV_DELETE
	evEnable  = unix.EV_ENABLE
	evDisable = unix.EV_DISABLE
	evClear   = unix.EV_CLEAR
	evEOF     = unix.EV_EOF
	evError   = unix.EV_ERROR

	evfiltRead  = unix.EVFILT_READ
	evfiltWrite = unix.EVFILT_WRITE
)

func kqueue() (int, error) { return unix.Kqueue() }

func kevent(kq int, changes, events []kevent_t, timeout *unix.Timespec) (int, error) {
	return unix.Kevent(kq, changes, events, timeout)
}

func setKevent(k *kevent_t, fd, filter, flags int) { unix.SetKevent(k, fd, filter, flags) }

func closeKqueue(kq int) error { return unix.Close(kq) }
