package check

import (
	"errors"

	"golang.org/x/sys/windows"
)

// isReset reports whether a read ended in the server's reset. Winsock's
// error is WSAECONNRESET, which syscall.ECONNRESET (a number Go invented
// for Windows) does not match.
func isReset(err error) bool { return errors.Is(err, windows.WSAECONNRESET) }
