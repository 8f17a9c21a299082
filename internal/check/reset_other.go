//go:build !windows

package check

import (
	"errors"
	"syscall"
)

// isReset reports whether a read ended in the server's reset.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
