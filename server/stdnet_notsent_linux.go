//go:build !evio && stdnet && linux

package server

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// limitUnsentStd sets stdUnsentLimit as c's TCP_NOTSENT_LOWAT (tcp(7)):
// a Write then blocks while that much is unsent, as the poll engine's
// send(2) stops taking more. It is set on each connection, not once on
// the listener as the poll engine does, because an accepted socket
// inherits it only from a plain TCP listener: net listens with Multipath
// TCP where the kernel has it (Go 1.24 and on), and a client that does
// not speak it gets a plain TCP socket without the MPTCP listener's
// options. Best effort: a kernel that refuses it still serves, with the
// send buffer as the bound.
func limitUnsentStd(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, stdUnsentLimit)
	})
}
