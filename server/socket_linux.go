//go:build !evio && !stdnet

package server

import (
	"math"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// optsInherited: Linux makes an accepted socket as a copy of its listener,
// TCP_NODELAY and TCP_NOTSENT_LOWAT included (TestOptsInherited), which
// spares two setsockopt calls per connection.
const optsInherited = true

// unsentOpt is TCP_NOTSENT_LOWAT (tcp(7)): see limitUnsent.
const unsentOpt = unix.TCP_NOTSENT_LOWAT

// accept takes one connection, non-blocking and close-on-exec in the same
// call. It calls accept4 itself to pass no address buffer: x/sys's Accept4
// would allocate a Sockaddr for every connection, which the loop does not
// need. Through the scheduler's system call entry, unlike recv: the
// listener's blocking flag belongs to the socket, shared with whatever
// else holds it (net's File methods and os/exec turn it off), and a
// RawSyscall that blocked would hold up the whole runtime.
func accept(lfd int) (int, error) {
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		}
		return -1, errno
	}
}

// recv and send use raw system calls: the sockets are non-blocking, so the
// call never parks the thread, and skipping the scheduler's
// entersyscall/exitsyscall bookkeeping is a large share of a small
// message's cost.
func recv(fd int, p []byte) (int, error) {
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

// send writes p with MSG_NOSIGNAL, so a client that reset the connection
// yields EPIPE here instead of a SIGPIPE (send(2)).
func send(fd int, p []byte) (int, error) {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

// unread is how many bytes wait in fd's receive queue (SIOCINQ, which is
// FIONREAD), or a huge number if the kernel will not say.
func unread(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return math.MaxInt
	}
	return n
}

// closeConn closes a connection's descriptor. Raw, as recv: close(2)
// waits for the peer only on a socket with a linger time (socket(7),
// SO_LINGER), and the server sets none and clears any on the listeners it
// is handed (dupListener), whose accepted sockets would inherit it.
func closeConn(fd int) { unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) }

// yieldCPU is sched_yield(2): the caller goes to the back of its CPU's run
// queue and returns once the threads queued before it have had their turn.
// That can take a while, so it goes through the runtime's system call
// entry like any other call that may keep the thread away.
func yieldCPU() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// peerAddr is fd's peer address, read with a raw getpeername into a buffer
// on the stack, which x/sys's Getpeername would allocate; the zero
// AddrPort if the kernel will not say.
func peerAddr(fd int) netip.AddrPort {
	var sa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(sa))
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return netip.AddrPort{}
	}
	switch sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), uint16(port[0])<<8|uint16(port[1]))
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr).Unmap(), uint16(port[0])<<8|uint16(port[1]))
	}
	return netip.AddrPort{}
}
