//go:build linux && !evio && !stdnet

package server

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blocker is the acknowledgement protocol, except that a Feed whose input
// holds "block" waits for release, holding its loop, and every Feed's
// input is recorded.
type blocker struct {
	f       *Framer
	blocked chan<- struct{}
	release <-chan struct{}
	fed     chan<- string
}

func (b *blocker) Feed(out, in []byte) ([]byte, bool) {
	b.fed <- string(in)
	if strings.Contains(string(in), "block") {
		b.blocked <- struct{}{}
		<-b.release
	}
	return b.f.Feed(out, in)
}

func (b *blocker) End(out []byte) []byte { return b.f.End(out) }

// serverFD finds the descriptor of the server's side of c among this
// process's, once the server has accepted it: the socket whose peer is c's
// local address.
func serverFD(t *testing.T, c net.Addr) int {
	t.Helper()
	want := c.(*net.TCPAddr).AddrPort()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			sa, err := unix.Getpeername(fd)
			if in4, ok := sa.(*unix.SockaddrInet4); err == nil && ok &&
				in4.Port == int(want.Port()) && in4.Addr == want.Addr().Unmap().As4() {
				return fd
			}
		}
	}
	t.Fatalf("no descriptor of this process is the server's side of %v", want)
	return -1
}

// TestStaleEventsNeverReachNextOwner: while anything else holds a closed
// connection's socket, its epoll registration lives on and keeps
// reporting it under the old number (epoll(7)); its events carry the old
// generation, and the loop must drop them, for the number may belong to
// another loop's connection by then.
//
// The test holds a duplicate of the socket of connection A, which loop 0
// accepted, so that after the server closes A loop 0 keeps seeing A's EOF,
// every turn. B then gets A's number, in loop 1 (the accepting loop hands
// connections out in turn), and holds loop 1 in its protocol; B's next
// input must wait for loop 1. Acted on by loop 0, a stale event reads B's
// socket from the wrong loop, and feeds loop 0's protocol for a number it
// does not own. It needs neither the race detector nor luck: loop 0 turns
// without rest on A's EOF.
//
// The kernel gives the lowest free number, and something else in this
// process may take A's number first (seen once in four runs with every
// test's server on handoff): then the test starts over, on a new server.
func TestStaleEventsNeverReachNextOwner(t *testing.T) {
	defer func(v bool) { spreadByHandoff = v }(spreadByHandoff)
	spreadByHandoff = true
	for range 5 {
		if staleAttempt(t) {
			return
		}
	}
	t.Fatal("B never got A's descriptor number in five attempts")
}

// staleAttempt is TestStaleEventsNeverReachNextOwner on one server; it
// reports false if B did not get A's number.
func staleAttempt(t *testing.T) bool {
	blocked, release, fed := make(chan struct{}, 1), make(chan struct{}), make(chan string, 16)
	s, err := New(Config{Addr: "127.0.0.1:0", Loops: 2, NewProtocol: func() Protocol {
		return &blocker{NewFramer(DefaultMaxMessage, FramingLine), blocked, release, fed}
	}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-served
	}()
	defer close(release) // before the shutdown, should the test end early
	if !s.eng.(*pollEngine).handoff {
		t.Fatal("the engine does not hand connections out")
	}
	readN := func(fd int, n int) string {
		t.Helper()
		b := make([]byte, n)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
		got := 0
		for got < n {
			k, err := unix.Read(fd, b[got:])
			if err != nil || k == 0 {
				t.Fatalf("read %q, then %v", b[:got], err)
			}
			got += k
		}
		return string(b)
	}

	// A, loop 0's: served once, then held by a duplicate while it closes.
	a, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	<-fed
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(a, make([]byte, len(Answer))); err != nil {
		t.Fatal(err)
	}
	num := serverFD(t, a.LocalAddr())
	held, err := unix.FcntlInt(uintptr(num), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(held)
	// B's socket is made now, so that its number is not A's.
	b, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(b)
	a.Write([]byte("close\n"))
	<-fed
	if got, err := readEnd(a, 5*time.Second); got != Closing || err != nil {
		t.Fatalf("A read %q, %v; want %q then EOF", got, err, Closing)
	}
	a.Close()
	for s.Stats().Open.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	// A's number is free; fill every lower one, so the next accept takes it.
	for {
		d, err := unix.Dup(b)
		if err != nil {
			t.Fatal(err)
		}
		if d == num {
			unix.Close(d)
			break
		}
		defer unix.Close(d)
		if d > num {
			t.Logf("descriptor %d was taken again before the server could reuse it", num)
			return false
		}
	}
	if err := unix.Connect(b, &unix.SockaddrInet4{Port: s.Addr().(*net.TCPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(b)
	in4 := sa.(*unix.SockaddrInet4)
	if got := serverFD(t, &net.TCPAddr{IP: net.IP(in4.Addr[:]), Port: in4.Port}); got != num {
		t.Logf("B has descriptor %d in the server, not A's old %d", got, num)
		return false
	}

	// B holds loop 1 in its protocol; its next input waits for loop 1.
	unix.Write(b, []byte("block\n"))
	if got := <-fed; got != "block\n" {
		t.Fatalf("B's protocol was fed %q, want %q", got, "block\n")
	}
	<-blocked
	unix.Write(b, []byte("later\n"))
	select {
	case got := <-fed:
		t.Fatalf("B's protocol was fed %q while its loop was held: a stale event of A acted on B", got)
	case <-time.After(300 * time.Millisecond):
	}
	release <- struct{}{}
	if got := <-fed; got != "later\n" {
		t.Fatalf("B's protocol was fed %q, want %q", got, "later\n")
	}
	if got := readN(b, 2*len(Answer)); got != Answer+Answer {
		t.Fatalf("B read %q, want two answers", got)
	}
	return true
}

// readEnd reads c until EOF or an error, for at most d.
func readEnd(c net.Conn, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	var sb strings.Builder
	buf := make([]byte, 256)
	for {
		n, err := c.Read(buf)
		sb.Write(buf[:n])
		if err == io.EOF {
			return sb.String(), nil
		}
		if err != nil {
			return sb.String(), err
		}
	}
}
