package load

import (
	"os"

	"golang.org/x/sys/unix"
)

// newSocket returns a non-blocking, close-on-exec TCP socket.
func newSocket(v4 bool) (int, error) {
	family := unix.AF_INET6
	if v4 {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// bindNoPort asks the kernel to pick the source port at connect, not at
// bind, so that one source address serves as many connections as it has
// ports per destination rather than ports in all.
func bindNoPort(fd int) {
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
}
