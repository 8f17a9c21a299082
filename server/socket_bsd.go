//go:build !evio && !stdnet && (aix || solaris || darwin || dragonfly || freebsd || netbsd || openbsd)

package server

import (
	"math"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// optsInherited is false: whether an accepted socket keeps its listener's
// TCP_NODELAY is not checked on these systems, so open sets it.
const optsInherited = false

// unsentOpt is 0: a client that stops reading may hold as much as its
// socket's send buffer in the kernel (see limitUnsent). The BSDs have no
// TCP_NOTSENT_LOWAT; macOS has one, but it only delays the write
// notifications of kqueue, poll and select (tcp(4)), not what send(2)
// takes, so it would bound nothing here.
const unsentOpt = 0

// accept takes one connection. x/sys has no accept4 for darwin, netbsd and
// openbsd, so the flags are set after the fact, under ForkLock so that a
// concurrent fork+exec cannot inherit the descriptor.
func accept(lfd int) (int, error) {
	for {
		syscall.ForkLock.RLock()
		fd, _, err := unix.Accept(lfd)
		if err == nil {
			unix.CloseOnExec(fd)
		}
		syscall.ForkLock.RUnlock()
		switch err {
		case nil:
		case unix.EINTR:
			continue
		default:
			return -1, err
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
}

// closeConn closes a connection's descriptor.
func closeConn(fd int) { unix.Close(fd) }

func recv(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err == unix.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// send is write(2). No SIGPIPE can kill the process: the Go runtime ignores
// SIGPIPE for writes to descriptors other than 1 and 2 and returns EPIPE
// (os/signal, "SIGPIPE"), which the loop treats as a closed connection.
func send(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// fionread is FIONREAD, _IOR('f', 127, int), the same on every BSD and
// macOS; x/sys does not export it for them.
const fionread = 0x4004667f

// unread is how many bytes wait in fd's receive queue, or a huge number if
// the kernel will not say.
func unread(fd int) int {
	n, err := unix.IoctlGetInt(fd, fionread)
	if err != nil {
		return math.MaxInt
	}
	return n
}

// yieldCPU does nothing on the BSDs: the latency gain of sched_yield was
// measured against Linux's scheduler only, and darwin has no such system
// call in x/sys.
func yieldCPU() {}

// peerAddr is fd's peer address, or the zero AddrPort if the kernel will
// not say.
func peerAddr(fd int) netip.AddrPort {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	if a := sockaddrTCP(sa); a != nil {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
