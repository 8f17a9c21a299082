//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"testing"
	"time"

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
			got, eof := waitReadClosed(t, p, a, 1)
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

// waitReadClosed waits for fd, registered with token, to be reported
// closed for reading, checks that it is not reported hung up or in error,
// and reads it until end of file. Where the backend does not report
// ReadClosed (poll(2) without POLLRDHUP), the end of file shows as Readable
// and the read finds it; the data before it may come in earlier events.
func waitReadClosed(t *testing.T, p *poll.Poller, fd int, token uint64) (data string, eof bool) {
	t.Helper()
	events := make([]poll.Event, 16)
	deadline := time.Now().Add(patience)
	sawReadClosed := false
	for time.Now().Before(deadline) {
		n, err := p.Wait(events, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range events[:n] {
			if ev.Token != token {
				continue
			}
			if ev.HangUp() || ev.Err() {
				t.Errorf("event: got %s, want no hang-up or error after a half-close", describe(ev))
			}
			if ev.ReadClosed() && !ev.Readable() {
				t.Errorf("event: got %s, want readable too", describe(ev))
			}
			sawReadClosed = sawReadClosed || ev.ReadClosed()
			if !ev.Readable() || eof {
				continue
			}
			// Over TCP the data and the FIN may be reported apart.
			got, end := readAvailable(t, fd)
			data += got
			eof = end
			if ev.ReadClosed() && !eof {
				t.Errorf("event: got %s, but the read found no end of file", describe(ev))
			}
		}
		// Level-triggered: once read to the end, the descriptor stays
		// read-closed, so a later Wait reports it if this one did not.
		if eof && (sawReadClosed || !poll.ReportsReadClosed) {
			return data, true
		}
	}
	t.Fatalf("for token %d after %v: read %q, end of file %v, read-closed reported %v; want end of file and, from the %s backend, read-closed",
		token, patience, data, eof, sawReadClosed, poll.Backend)
	return data, false
}

// TestOwnShutdownIsNotHangUp checks that our own shutdown(SHUT_WR) is not
// reported as a hang-up, nor as ReadClosed: the peer can still send. Once
// the peer shuts down too, the connection is closed both ways and ReadClosed
// is reported (HangUp may be: epoll and poll(2) say it, kqueue reports the
// two directions apart and never does).
func TestOwnShutdownIsNotHangUp(t *testing.T) {
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
			if err := p.Add(a, 1, poll.Readable|poll.Writable); err != nil {
				t.Fatalf("Add: %v", err)
			}
			if err := unix.Shutdown(a, unix.SHUT_WR); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			// Level-triggered, so every Wait of the window reports it.
			events := make([]poll.Event, 16)
			sawWritable := false
			for deadline := time.Now().Add(quiet); time.Now().Before(deadline); {
				n, err := p.Wait(events, quiet)
				if err != nil {
					t.Fatalf("Wait: %v", err)
				}
				for _, ev := range events[:n] {
					if ev.HangUp() || ev.ReadClosed() || ev.Err() {
						t.Fatalf("event after our own shutdown(SHUT_WR): got %s, want no hang-up, read-closed or error", describe(ev))
					}
					sawWritable = sawWritable || ev.Writable()
				}
			}
			if !sawWritable {
				t.Errorf("no writable event after our own shutdown(SHUT_WR), want one: the next write reports EPIPE")
			}

			// The peer can still send.
			write(t, b, "still here")
			if err := unix.Shutdown(b, unix.SHUT_WR); err != nil {
				t.Fatalf("shutdown by the peer: %v", err)
			}
			if err := p.Modify(a, 2, poll.Readable); err != nil {
				t.Fatalf("Modify: %v", err)
			}
			if got := waitClosed(t, p, a, 2); got != "still here" {
				t.Errorf("read before the end of file: got %q, want %q", got, "still here")
			}
		})
	}
}

// waitClosed is waitReadClosed for a connection closed both ways, which
// may be reported as a hang-up: it returns what fd had left to read once
// its end of file is read.
func waitClosed(t *testing.T, p *poll.Poller, fd int, token uint64) string {
	t.Helper()
	var data string
	waitFor(t, p, token, func(ev poll.Event) bool {
		if !ev.Readable() {
			return false
		}
		if ev.Err() {
			t.Errorf("event: got %s, want no error after two shutdowns", describe(ev))
		}
		if ev.HangUp() && !ev.ReadClosed() {
			t.Errorf("event: got %s, want read-closed with a hang-up", describe(ev))
		}
		got, end := readAvailable(t, fd)
		data += got
		return end
	})
	return data
}

// TestNoInterest registers a socket with no interest. Its data is never
// reported. Whether its hang-up is differs by backend, as the contract
// says: the epoll and poll(2) kernels report POLLHUP and POLLERR whatever
// was asked (but macOS's poll(2), built on kqueue), kqueue reports nothing.
func TestNoInterest(t *testing.T) {
	p := newPoller(t)
	a, b := openSocketpair(t)
	t.Cleanup(func() { unix.Close(a) })
	if err := p.Add(a, 1, 0); err != nil {
		unix.Close(b)
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "x")
	expectQuiet(t, p, quiet)

	unix.Close(b) // a is now hung up
	if !poll.HangUpWithoutInterest {
		expectQuiet(t, p, quiet)
		return
	}
	ev := waitFor(t, p, 1, poll.Event.HangUp)
	// As for any hang-up, the next read or write reports it.
	if !ev.Readable() || !ev.Writable() {
		t.Errorf("event: got %s, want readable and writable with the hang-up", describe(ev))
	}
	// Level-triggered: it repeats until the caller acts, here by Delete.
	waitFor(t, p, 1, poll.Event.HangUp)
	if err := p.Delete(a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	expectQuiet(t, p, quiet)
}

// TestClosedWithoutDelete closes a registered socket that nothing else
// holds, without Delete. The registration goes with it: Wait reports
// nothing and runs its full timeout, and the number can be registered
// again. (On poll(2) that holds only if the number is not reused before
// the next Wait; see the contract on Delete.)
func TestClosedWithoutDelete(t *testing.T) {
	p := newPoller(t)
	a, b := openSocketpair(t)
	if err := p.Add(a, 1, poll.Readable|poll.Writable); err != nil {
		unix.Close(a)
		unix.Close(b)
		t.Fatalf("Add: %v", err)
	}
	unix.Close(a)
	unix.Close(b)
	events := make([]poll.Event, 8)
	const timeout = 50 * time.Millisecond
	for range 2 {
		start := time.Now()
		n, err := p.Wait(events, timeout)
		if elapsed := time.Since(start); err != nil || n != 0 || elapsed < timeout {
			t.Fatalf("Wait(%v) after a registered socket was closed: got %d, %v after %v; want 0, nil after the full timeout", timeout, n, err, elapsed)
		}
	}
	c, _ := socketpair(t)
	if err := p.Add(c, 2, poll.Writable); err != nil {
		t.Fatalf("Add of a new socket (fd %d; the closed one was %d): %v", c, a, err)
	}
	waitFor(t, p, 2, writable)
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
