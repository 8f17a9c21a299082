//go:build !evio && !stdnet && (aix || solaris || darwin || dragonfly || freebsd || netbsd || openbsd)

package server

import "errors"

// sendRing is io_uring's, which the BSDs do not have: newSendRing fails,
// so their loops always send with send(2).
type sendRing struct{}

func newSendRing() (*sendRing, error)                       { return nil, errors.ErrUnsupported }
func (*sendRing) sendAll([]batchEnt, []byte, []int32) error { return errors.ErrUnsupported }
func (*sendRing) close()                                    {}
