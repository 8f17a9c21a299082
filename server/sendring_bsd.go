//go:build !evio && !stdnet && (darwin || dragonfly || freebsd || netbsd || openbsd)

package server

import (
	"errors"
	"fmt"
	"runtime"
)

// sendRing is io_uring's, which the BSDs do not have: their loops always
// send with send(2). The methods exist for the portable engine only.
type sendRing struct{}

var errNoRing = fmt.Errorf("server: no io_uring on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func newSendRing() (*sendRing, error)                       { return nil, errNoRing }
func (*sendRing) sendAll([]batchEnt, []byte, []int32) error { return errNoRing }
func (*sendRing) close()                                    {}
