//go:build !evio && !stdnet

package server

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNodelayInherited checks what nodelayInherited assumes: a socket
// accepted from a listener of ours has TCP_NODELAY without setting it.
func TestNodelayInherited(t *testing.T) {
	lfd, err := listen(listenSpec{ip: netip.MustParseAddr("127.0.0.1")}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	la, err := boundAddr(lfd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", la.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var fd int
	for {
		if fd, err = accept(lfd); err != unix.EAGAIN {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil || got == 0 {
		t.Fatalf("accepted socket's TCP_NODELAY = %d, %v; want set", got, err)
	}
}
