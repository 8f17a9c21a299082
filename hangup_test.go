//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package poll_test

import (
	"testing"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

// TestPeerHalfClose checks that a peer's shutdown(SHUT_WR) is reported as
// ReadClosed, that the data sent before it can still be read, and that the
// connection is not reported as hung up: this side can still write.
func TestPeerHalfClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		pair func(*testing.T) (int, int)
	}{
		{"socketpair", socketpair},
		{"tcp", tcpPair},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPoller(t)
			a, b := tc.pair(t)
			if err := p.Add(a, 1, poll.Readable); err != nil {
				t.Fatalf("Add: %v", err)
			}
			write(t, b, "last words")
			if err := unix.Shutdown(b, unix.SHUT_WR); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			// Over TCP the data and the FIN may be reported apart.
			ev := waitFor(t, p, 1, poll.Event.ReadClosed)
			if !ev.Readable() {
				t.Errorf("event: got %s, want readable too", describe(ev))
			}
			if ev.HangUp() || ev.Err() {
				t.Errorf("event: got %s, want no hang-up or error after a half-close", describe(ev))
			}

			got, eof := readAvailable(t, a)
			if got != "last words" || !eof {
				t.Errorf("read: got %q, end of file %v; want %q, true", got, eof, "last words")
			}
			// The other direction still works.
			write(t, a, "reply")
			if got, _ := readAvailable(t, b); got != "reply" {
				t.Errorf("read by the peer: got %q, want %q", got, "reply")
			}
		})
	}
}

// TestPipeWriterClosed checks that closing the only writer of a pipe is
// reported on the read end as ReadClosed, with the data still readable.
func TestPipeWriterClosed(t *testing.T) {
	p := newPoller(t)
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatalf("pipe: %v", err)
	}
	r, w := fds[0], fds[1]
	t.Cleanup(func() { unix.Close(r) })
	if err := unix.SetNonblock(r, true); err != nil {
		unix.Close(w)
		t.Fatalf("set non-blocking: %v", err)
	}
	if err := p.Add(r, 1, poll.Readable); err != nil {
		unix.Close(w)
		t.Fatalf("Add: %v", err)
	}
	write(t, w, "bye")
	if err := unix.Close(w); err != nil {
		t.Fatalf("close: %v", err)
	}
	ev := waitFor(t, p, 1, poll.Event.ReadClosed)
	if !ev.Readable() {
		t.Errorf("event: got %s, want readable too", describe(ev))
	}
	got, eof := readAvailable(t, r)
	if got != "bye" || !eof {
		t.Errorf("read: got %q, end of file %v; want %q, true", got, eof, "bye")
	}
}

// TestPeerReset closes a TCP peer with SO_LINGER 0, which sends a reset,
// and checks that the reset is reported and that a read then returns
// ECONNRESET.
func TestPeerReset(t *testing.T) {
	p := newPoller(t)
	c, s := openTCPPair(t)
	t.Cleanup(func() { unix.Close(c) })
	if err := p.Add(c, 1, poll.Readable); err != nil {
		unix.Close(s)
		t.Fatalf("Add: %v", err)
	}
	expectQuiet(t, p, quiet)

	if err := unix.SetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		unix.Close(s)
		t.Fatalf("setsockopt SO_LINGER: %v", err)
	}
	if err := unix.Close(s); err != nil {
		t.Fatalf("close: %v", err)
	}
	ev := waitFor(t, p, 1, func(ev poll.Event) bool {
		return ev.Err() || ev.HangUp() || ev.ReadClosed()
	})
	if !ev.Readable() {
		t.Errorf("event: got %s, want readable too (a read would not block)", describe(ev))
	}
	t.Logf("reset reported as %s", describe(ev))

	var buf [16]byte
	n, err := unix.Read(c, buf[:])
	if err != unix.ECONNRESET {
		t.Errorf("read after reset: got %d, %v; want ECONNRESET", n, err)
	}
}
