//go:build !evio && !windows && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

package server

// connAcceptErr: no accept error that reaches the engine here is one
// connection's. Linux hands out a connection reset in the queue all the
// same (its first read reports the reset); macOS and the BSDs fail the
// accept with ECONNABORTED, which Go's internal/poll retries itself.
func connAcceptErr(error) bool { return false }
