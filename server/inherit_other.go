//go:build !unix

package server

import (
	"errors"
	"os"
	"syscall"
)

// dupFile: descriptors are inherited by number only on Unix.
func dupFile(syscall.RawConn, string) (*os.File, error) {
	return nil, errors.ErrUnsupported
}

// checkListenerFile leaves the check to net.FileListener, which fails
// where descriptors are not inherited by number.
func checkListenerFile(*os.File) error { return nil }
