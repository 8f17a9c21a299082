//go:build !evio && !stdnet

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOptsInherited checks what optsInherited assumes: a socket accepted
// from a listener of ours has TCP_NODELAY and TCP_NOTSENT_LOWAT without
// setting them.
func TestOptsInherited(t *testing.T) {
	lfd, err := listen(listenSpec{ip: netip.MustParseAddr("127.0.0.1")}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	fd := acceptDialed(t, lfd)
	got, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil || got == 0 {
		t.Fatalf("accepted socket's TCP_NODELAY = %d, %v; want set", got, err)
	}
	got, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
	if err != nil || got != unsentLimit {
		t.Fatalf("accepted socket's TCP_NOTSENT_LOWAT = %d, %v; want %d", got, err, unsentLimit)
	}
}

// TestInheritedLingerCleared: a listener handed in with a linger time set
// must not pass it to the connections it accepts, whose close(2) would
// then wait for the peer inside the loop (closeConn).
func TestInheritedLingerCleared(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.SetsockoptLinger(int(f.Fd()), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 5}); err != nil {
		t.Fatal(err)
	}
	lfd, err := dupListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	fd := acceptDialed(t, lfd)
	l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil || l.Onoff != 0 {
		t.Fatalf("accepted socket's SO_LINGER = %+v, %v; want off", l, err)
	}
}

// acceptDialed connects to the listener lfd and accepts the connection
// with the loop's accept, as the server would; the test's end closes both
// sides.
func acceptDialed(t *testing.T, lfd int) int {
	t.Helper()
	la, err := boundAddr(lfd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", la.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for {
		fd, err := accept(lfd)
		switch err {
		case unix.EAGAIN:
			continue
		case nil:
			t.Cleanup(func() { unix.Close(fd) })
			return fd
		}
		t.Fatal(err)
	}
}

// TestNonReaderUnsentBounded: a client that writes and never reads gets at
// most unsentLimit of answers queued unsent in the server's kernel, besides
// what is in flight to its own receive buffer, where the send buffer's
// autotuning would let megabytes pile up.
func TestNonReaderUnsentBounded(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	defer func() {
		s.Shutdown(context.Background())
		<-served
	}()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Write until the server stops reading: a write that makes no
	// progress for a while.
	msgs := bytes.Repeat([]byte("m\n"), 32<<10)
	deadline := time.Now().Add(10 * time.Second)
	for stalled := false; !stalled; {
		if time.Now().After(deadline) {
			t.Fatal("the server never stopped reading a client that does not read")
		}
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Write(msgs)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		stalled = err != nil && n == 0
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var window int
	rc.Control(func(fd uintptr) { window, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil {
		t.Fatal(err)
	}
	queued := txQueue(t, s.Addr().(*net.TCPAddr).Port, c.LocalAddr().(*net.TCPAddr).Port)
	t.Logf("server's send queue: %d bytes; client's receive buffer %d", queued, window)
	// In flight: at most the client's receive buffer. Unsent: the limit,
	// which a send may pass by one segment of up to 64 KiB.
	if max := window + unsentLimit + 64<<10; queued > max {
		t.Errorf("server's send queue holds %d bytes for a client that does not read; want at most %d", queued, max)
	}
}

// txQueue reads the send queue (tx_queue: bytes not yet acknowledged,
// sent or not) of the IPv4 TCP socket from 127.0.0.1:local to remote port
// from /proc/net/tcp.
func txQueue(t *testing.T, local, remote int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0100007F:%04X 0100007F:%04X", local, remote)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[1]+" "+f[2] == want {
			q, err := strconv.ParseInt(strings.Split(f[4], ":")[0], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(q)
		}
	}
	t.Fatalf("no socket %s in /proc/net/tcp", want)
	return 0
}
