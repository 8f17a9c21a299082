//go:build !tcpoll_kqsim || tcpoll_poll

package poll

import (
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// wakefd is the descriptor a Wait watches to be woken, on Linux an
// eventfd(2): signal adds one to its counter, drain reads it back to zero.
// epoll and poll(2) share it; each backend coalesces its own Wakes.
type wakefd struct{ fd int }

func (w *wakefd) open() error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	w.fd = fd
	return nil
}

// readFD is the descriptor that becomes readable when signalled.
func (w *wakefd) readFD() int { return w.fd }

func (w *wakefd) signal() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, err := unix.Write(w.fd, one[:])
	if err == unix.EAGAIN {
		// The counter is saturated, so a Wait will wake anyway.
		return nil
	}
	return os.NewSyscallError("write", err)
}

func (w *wakefd) drain() {
	var buf [8]byte
	// The read resets the counter; EAGAIN means a racing Wait drained it.
	unix.Read(w.fd, buf[:])
}

func (w *wakefd) close() error {
	return os.NewSyscallError("close", unix.Close(w.fd))
}
