//go:build unix && !linux

package load

import (
	"os"

	"golang.org/x/sys/unix"
)

// newSocket returns a non-blocking, close-on-exec TCP socket. Darwin has
// no SOCK_NONBLOCK, so both flags are set after the fact; a child forked
// in between could inherit the socket, which a load generator can bear.
func newSocket(v4 bool) (int, error) {
	family := unix.AF_INET6
	if v4 {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}

// bindNoPort does nothing: only Linux can defer the port to connect.
func bindNoPort(fd int) {}
