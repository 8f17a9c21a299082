package server_test

import (
	"net"
	"syscall"
)

// soError is SO_ERROR in winsock2.h; the syscall package does not name it.
const soError = 0x1007

// pendingError reads and clears the socket's pending error (SO_ERROR).
func pendingError(c *net.TCPConn) (syscall.Errno, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	cerr := raw.Control(func(fd uintptr) {
		n, err = syscall.GetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, soError)
	})
	if cerr != nil {
		return 0, cerr
	}
	return syscall.Errno(n), err
}
