package server_test

import (
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/windows"
)

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

// isReset reports whether err is the peer's reset: Winsock reports it as
// WSAECONNRESET, or WSAECONNABORTED to a write that meets it.
func isReset(err error) bool {
	return errors.Is(err, windows.WSAECONNRESET) || errors.Is(err, windows.WSAECONNABORTED)
}

// isRefused reports whether err is a dial's refusal: nothing listens.
func isRefused(err error) bool { return errors.Is(err, windows.WSAECONNREFUSED) }

// underWine: only Wine's ntdll exports wine_get_version.
var underWine = windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil

// skipUnderWine skips the test where it runs under Wine (scripts/wine-exec)
// and says why: Wine's sockets differ from Windows' there, and the test
// stays for Windows itself.
func skipUnderWine(t *testing.T, why string) {
	t.Helper()
	if underWine {
		t.Skip("under Wine: " + why)
	}
}
