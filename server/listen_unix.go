//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenSpec is a resolved listen address.
type listenSpec struct {
	ip   netip.Addr // invalid for "every interface"
	port int
}

func parseListen(addr string) (listenSpec, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return listenSpec{}, fmt.Errorf("server: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		// Service names are rare for a server's own port; numbers only.
		return listenSpec{}, fmt.Errorf("server: address %q: bad port %q", addr, portStr)
	}
	spec := listenSpec{port: port}
	switch host {
	case "", "::":
		return spec, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.LookupIP(host)
		if lerr != nil || len(ips) == 0 {
			return listenSpec{}, fmt.Errorf("server: address %q: %v", addr, lerr)
		}
		ip, _ = netip.AddrFromSlice(ips[0])
	}
	spec.ip = ip.Unmap()
	return spec, nil
}

// errNoDualStack reports a system that refuses an IPv6 socket that also
// takes IPv4 (IPV6_V6ONLY off), as OpenBSD and DragonFly do.
var errNoDualStack = errors.New("server: no dual-stack IPv6 sockets")

// listenAll opens the listening sockets for spec: one, or where the
// system has no dual-stack sockets, one per family on the same port.
func listenAll(spec listenSpec, reuse bool) ([]int, error) {
	fd, err := listen(spec, reuse)
	if err == nil {
		return []int{fd}, nil
	}
	if !errors.Is(err, errNoDualStack) {
		return nil, err
	}
	v4, err := listen(listenSpec{ip: netip.IPv4Unspecified(), port: spec.port}, reuse)
	if err != nil {
		return nil, err
	}
	if spec.port == 0 {
		a, err := boundAddr(v4)
		if err != nil {
			unix.Close(v4)
			return nil, err
		}
		spec.port = a.Port
	}
	v6, err := listen(listenSpec{ip: netip.IPv6Unspecified(), port: spec.port}, reuse)
	if err != nil {
		unix.Close(v4)
		return nil, err
	}
	return []int{v4, v6}, nil
}

// listen opens a non-blocking listening socket. With no IP it listens on
// every interface: an IPv6 socket that also takes IPv4 (IPV6_V6ONLY off),
// or plain IPv4 where the host has no IPv6.
func listen(spec listenSpec, reuse bool) (int, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	switch {
	case !spec.ip.IsValid():
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: spec.port}
	case spec.ip.Is4():
		sa = &unix.SockaddrInet4{Port: spec.port, Addr: spec.ip.As4()}
	default:
		family = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{Port: spec.port, Addr: spec.ip.As16()}
		if z := spec.ip.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	}
	fd, err := socket(family)
	if err != nil && !spec.ip.IsValid() && errors.Is(err, unix.EAFNOSUPPORT) {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: spec.port}
		fd, err = socket(family)
	}
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	fail := func(call string, err error) (int, error) {
		unix.Close(fd)
		return -1, os.NewSyscallError(call, err)
	}
	// SO_REUSEADDR lets a restarted server bind while old connections sit
	// in TIME_WAIT.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, reusePortOpt, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	// Answers go out as soon as they are made; Nagle would hold a pipelined
	// client's second answer until the first is acknowledged. Where
	// accepted sockets inherit the option (optsInherited), this is the
	// only setsockopt it takes.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fail("setsockopt", err)
	}
	limitUnsent(fd)
	if family == unix.AF_INET6 {
		v6only := 0
		if spec.ip.IsValid() {
			v6only = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			if v6only == 0 {
				unix.Close(fd)
				return -1, fmt.Errorf("%w: %w", errNoDualStack, os.NewSyscallError("setsockopt", err))
			}
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	// The kernel caps the backlog at its own limit (somaxconn on Linux).
	if err := unix.Listen(fd, 4096); err != nil {
		return fail("listen", err)
	}
	return fd, nil
}

func socket(family int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// boundAddr is the address fd listens on, port 0 resolved.
func boundAddr(fd int) (*net.TCPAddr, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	return sockaddrTCP(sa), nil
}

func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return nil
}

// inherit duplicates the listening sockets in files, so that the engine
// owns descriptors of its own and the caller keeps its files.
func inherit(files []*os.File) ([]int, error) {
	fds := make([]int, 0, len(files))
	for _, f := range files {
		fd, err := dupListener(f)
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("server: listener %q: %w", f.Name(), err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// dupListener duplicates f, which must be a listening TCP socket, as a
// non-blocking descriptor closed on exec.
func dupListener(f *os.File) (int, error) {
	// SyscallConn, not Fd: Fd would switch the socket to blocking mode.
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, err := dupRaw(rc)
	if err != nil {
		return -1, err
	}
	if err := checkListener(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	// The flag belongs to the socket, shared with every process that holds
	// it; they all poll it, so non-blocking is what each of them wants.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	// As listen does: accepted sockets inherit them where optsInherited.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	limitUnsent(fd)
	// And they would inherit a linger time the socket's maker set, which
	// makes close(2) wait for the peer: the loop closes connections with
	// a raw call that must not block (closeConn).
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{})
	return fd, nil
}

// unsentLimit is about the most of a connection's answers the kernel holds
// unsent (TCP_NOTSENT_LOWAT, tcp(7)): past it send(2) takes no more (a send
// may pass it by the segment it is filling), and the poller reports the
// socket writable again once less than half of it is left.
//
// Without the limit, the send buffer of a client that stopped reading
// grows by autotuning to tcp_wmem's maximum (4 MiB by default): kernel
// memory the server chose to fill. With 2,000 such clients
// (bench/cmd/nonreading) this machine's TCP memory reached 1.7 GB, past
// tcp_mem's pressure mark, where the kernel drops packets on every socket:
// the healthy client then waits for retransmissions (TcpExtTCPRcvQDrop in
// nstat), and its p99 was 200 ms in a full bench/run. In three runs each
// way, side by side, 16 KiB took the peak from 1.7 GB to 0.8 GB
// (/proc/net/sockstat), the server's CPU over the burst from 1.7–3.6 s to
// 0.6–0.8 s, and the healthy client's p99 from 0.7–1.1 ms to 0.2–0.4 ms,
// with no packet dropped. On loopback a client that reads never meets the
// limit (50×16 loads: no change). Over a network, where the congestion or
// receive window holds answers back, more of them wait in the connection's
// own buffer instead (MaxPendingOutput, so reading pauses sooner), and the
// loop refills the kernel's every 8 KiB; the rate is the window's either
// way.
const unsentLimit = 16 << 10

// limitUnsent sets unsentLimit on fd, a listener, where the system has
// the option (unsentOpt, Linux only): accepted sockets inherit it there
// (optsInherited). It is best effort: a kernel that refuses it still
// serves, with the send buffer as the bound.
func limitUnsent(fd int) {
	if unsentOpt != 0 {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unsentOpt, unsentLimit)
	}
}
