//go:build solaris || netbsd || openbsd || (tcpoll_poll && (dragonfly || freebsd)) || (linux && tcpoll_kqsim && tcpoll_kqpipe && !tcpoll_poll)

package poll

import (
	"os"

	"golang.org/x/sys/unix"
)

// openPipe makes a non-blocking self-pipe closed on exec, in one call.
func openPipe(fds *[2]int) error {
	return os.NewSyscallError("pipe2", unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
}
