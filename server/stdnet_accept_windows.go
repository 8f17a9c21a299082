//go:build !evio

package server

import (
	"errors"

	"golang.org/x/sys/windows"
)

// connAcceptErr reports whether err, from Accept, is the failure of the
// one connection AcceptEx took off the queue, not of the listener: its
// client reset or aborted it before it was accepted. The next AcceptEx
// takes the next connection, so the accept loop retries at once; backing
// off instead serves the queue one dead connection per back-off, and
// under a storm of resets the live ones behind them wait for ever.
//
// Wine completes such an AcceptEx with WSAENOTCONN (the getpeername of the
// dead socket it accepted fails); Windows with WSAECONNRESET, which Go's
// internal/poll retries itself today, or WSAECONNABORTED.
func connAcceptErr(err error) bool {
	var errno windows.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case windows.WSAENOTCONN, windows.WSAECONNRESET, windows.WSAECONNABORTED:
		return true
	}
	return false
}
