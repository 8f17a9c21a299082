//go:build unix

package server_test

import (
	"net"
	"syscall"
)

// pendingError reads and clears the socket's pending error (SO_ERROR,
// socket(7)): a reset the kernel received leaves one there even after the
// data before it was read.
func pendingError(c *net.TCPConn) (syscall.Errno, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	cerr := raw.Control(func(fd uintptr) {
		n, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
	})
	if cerr != nil {
		return 0, cerr
	}
	return syscall.Errno(n), err
}
