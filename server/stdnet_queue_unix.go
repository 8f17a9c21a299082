//go:build !evio && stdnet && unix

package server

import (
	"net"
	"os"
	"syscall"
)

// acceptQueued takes up to max connections queued on ln, without
// waiting, then closes ln and hands each to admit. Closing a listener
// resets what its queue still holds, so the close follows the last
// accept(2) at once: only a connection whose handshake completes in
// between is reset, the poll engine's window. Go's Accept cannot do this:
// it either waits for a connection (until a deadline, whose timer then
// races the close) or, past its deadline, fails without trying.
func acceptQueued(ln *net.TCPListener, max int, admit func(net.Conn)) {
	var fds []int
	rc, err := ln.SyscallConn()
	if err == nil {
		rc.Control(func(lfd uintptr) {
			for len(fds) < max {
				// As package net does where accept4 is missing: no exec
				// may inherit the descriptor between the two calls.
				syscall.ForkLock.RLock()
				fd, _, err := syscall.Accept(int(lfd))
				if err == nil {
					syscall.CloseOnExec(fd)
				}
				syscall.ForkLock.RUnlock()
				switch err {
				case nil:
					fds = append(fds, fd)
				case syscall.EINTR, syscall.ECONNABORTED:
				default:
					// EAGAIN: the queue is empty. Anything else (out of
					// descriptors, say): what is left is reset by the
					// close.
					return
				}
			}
		})
	}
	ln.Close()
	for _, fd := range fds {
		// FileConn makes a net.Conn of a duplicate, in non-blocking mode
		// and in the runtime's poller; the original goes at once.
		f := os.NewFile(uintptr(fd), "")
		c, err := net.FileConn(f)
		f.Close()
		if err == nil {
			admit(c)
		}
	}
}
