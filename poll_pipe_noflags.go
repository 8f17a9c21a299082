//go:build aix || (tcpoll_poll && darwin)

package poll

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openPipe makes a non-blocking self-pipe closed on exec. macOS and AIX
// have no pipe2, so the flags are set after the fact, under ForkLock so
// that a fork+exec on another goroutine cannot inherit the descriptors (as
// os.Pipe does there). It happens once per poller.
func openPipe(fds *[2]int) error {
	syscall.ForkLock.RLock()
	err := unix.Pipe(fds[:])
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return os.NewSyscallError("pipe", err)
	}
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return os.NewSyscallError("fcntl", err)
		}
	}
	return nil
}
