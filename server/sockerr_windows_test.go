package server_test

import "syscall"

// soError is SO_ERROR in winsock2.h; the syscall package does not name it.
const soError = 0x1007

// soErrorOf reads and clears the pending error of the socket fd.
func soErrorOf(fd uintptr) (int, error) {
	return syscall.GetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, soError)
}

// setRcvBuf sets a socket's receive buffer.
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
