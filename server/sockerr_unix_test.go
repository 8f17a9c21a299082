//go:build unix

package server_test

import (
	"errors"
	"syscall"
	"testing"
)

// soErrorOf reads and clears the pending error of the socket fd (SO_ERROR,
// socket(7)).
func soErrorOf(fd uintptr) (int, error) {
	return syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
}

// setRcvBuf sets a socket's receive buffer.
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}

// isReset reports whether err is the peer's reset, read (ECONNRESET) or
// met by a write (EPIPE).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isRefused reports whether err is a dial's refusal: nothing listens.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// skipUnderWine skips the test under Wine (sockerr_windows_test.go).
func skipUnderWine(*testing.T, string) {}
