//go:build !evio && !stdnet

package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openRing returns a ring, failing the test where io_uring is not allowed:
// these tests are the send path's only direct check, and a silent skip
// would leave it unchecked. Elsewhere run them with -skip 'SendRing|Ring'.
func openRing(t *testing.T) *sendRing {
	t.Helper()
	r, err := newSendRing()
	if err != nil {
		t.Fatalf("newSendRing: %v (io_uring unavailable here; -skip 'SendRing|Ring' tests only the send(2) fallback)", err)
	}
	t.Cleanup(r.close)
	return r
}

func socketPair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func unsent(n int) []int32 {
	res := make([]int32, n)
	for i := range res {
		res[i] = resUnsent
	}
	return res
}

// More sends than the ring has entries, each to its own socket, arrive
// whole and are reported whole.
func TestSendRingMany(t *testing.T) {
	r := openRing(t)
	n := 2*sendRingEntries + 7
	var ents []batchEnt
	var arena []byte
	peers := make([]int, n)
	for i := range n {
		a, b := socketPair(t)
		peers[i] = b
		msg := bytes.Repeat([]byte{byte(i)}, 1+i%50)
		ents = append(ents, batchEnt{fd: int32(a), off: int32(len(arena)), n: int32(len(msg))})
		arena = append(arena, msg...)
	}
	res := unsent(n)
	if err := r.sendAll(ents, arena, res); err != nil {
		t.Fatalf("sendAll: %v", err)
	}
	buf := make([]byte, 100)
	for i, e := range ents {
		if res[i] != e.n {
			t.Fatalf("send %d: result %d, want %d", i, res[i], e.n)
		}
		got, err := unix.Read(peers[i], buf)
		if err != nil || !bytes.Equal(buf[:got], arena[e.off:e.off+e.n]) {
			t.Fatalf("peer %d read %q, %v; want %q", i, buf[:got], err, arena[e.off:e.off+e.n])
		}
	}
}

// A send to a full socket reports what send(2) would: a short count, then
// EAGAIN, at once rather than when the peer reads (MSG_DONTWAIT).
func TestSendRingFullSocket(t *testing.T) {
	r := openRing(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	var first, second []int32
	var errs [2]error
	start := time.Now()
	raw.Control(func(fd uintptr) {
		ents := []batchEnt{{fd: int32(fd), n: int32(len(big))}}
		first = unsent(1)
		errs[0] = r.sendAll(ents, big, first)
		second = unsent(1)
		errs[1] = r.sendAll(ents, big, second)
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("sends to a full socket took %v: they waited for room", d)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("sendAll: %v, %v", errs[0], errs[1])
	}
	if first[0] <= 0 || int(first[0]) >= len(big) {
		t.Fatalf("first send: result %d, want a short count in (0, %d)", first[0], len(big))
	}
	if unix.Errno(-second[0]) != unix.EAGAIN {
		t.Fatalf("second send: result %d, want -EAGAIN (%d)", second[0], -int32(unix.EAGAIN))
	}
	// The short count is exactly what the peer gets.
	c.Close()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big[:first[0]]) {
		t.Fatalf("peer got %d bytes, want the first %d of the message", len(got), first[0])
	}
}

// A send to a closed peer fails with EPIPE in its result, and no SIGPIPE
// kills the process (MSG_NOSIGNAL).
func TestSendRingClosedPeer(t *testing.T) {
	r := openRing(t)
	a, b := socketPair(t)
	unix.Close(b)
	res := unsent(1)
	if err := r.sendAll([]batchEnt{{fd: int32(a), n: 5}}, []byte("hello"), res); err != nil {
		t.Fatal(err)
	}
	if unix.Errno(-res[0]) != unix.EPIPE {
		t.Fatalf("result %d, want -EPIPE", res[0])
	}
}

// Every loop of a default server sends through a ring where io_uring
// works, and none does with DirectSend.
func TestEngineRings(t *testing.T) {
	openRing(t)
	for _, direct := range []bool{false, true} {
		cfg, err := Config{Addr: "127.0.0.1:0", Loops: 2, DirectSend: direct}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		eng, err := newEngine(&cfg, new(Stats))
		if err != nil {
			t.Fatal(err)
		}
		e := eng.(*pollEngine)
		for i, l := range e.loops {
			if (l.ring != nil) == direct {
				t.Errorf("DirectSend %v: loop %d ring %v", direct, i, l.ring)
			}
		}
		e.closeAll()
	}
}
