//go:build unix

package server_test

import "syscall"

// soErrorOf reads and clears the pending error of the socket fd (SO_ERROR,
// socket(7)).
func soErrorOf(fd uintptr) (int, error) {
	return syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
}

// setRcvBuf sets a socket's receive buffer.
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
