//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

// patience bounds every wait for an event that should come. It is far
// longer than any of them takes on an idle machine, so a slow, shared one
// does not make the tests flaky, and a hang still ends.
const patience = 10 * time.Second

// quiet is how long a test watches for an event that must not come.
const quiet = 100 * time.Millisecond

// newPoller returns a Poller that is closed when the test ends.
func newPoller(t *testing.T) *poll.Poller {
	t.Helper()
	p, err := poll.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		// Bounded, so that a broken Wake, which leaves a Wait blocked and
		// Close waiting for it, fails the test instead of hanging the run.
		c := make(chan error, 1)
		go func() { c <- p.Close() }()
		select {
		case err := <-c:
			if err != nil && !errors.Is(err, poll.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(patience):
			t.Errorf("Close still blocked after %v", patience)
		}
	})
	return p
}

// openSocketpair returns a connected pair of non-blocking, close-on-exec
// stream sockets. The caller closes them.
func openSocketpair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			t.Fatalf("set non-blocking: %v", err)
		}
	}
	return fds[0], fds[1]
}

// socketpair is openSocketpair with both ends closed when the test ends.
func socketpair(t *testing.T) (a, b int) {
	t.Helper()
	a, b = openSocketpair(t)
	t.Cleanup(func() {
		unix.Close(a)
		unix.Close(b)
	})
	return a, b
}

// openTCPPair returns both ends of a TCP connection over the loopback
// interface, non-blocking and close-on-exec. The caller closes them.
func openTCPPair(t *testing.T) (client, server int) {
	t.Helper()
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	defer unix.Close(ln)
	unix.CloseOnExec(ln)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind 127.0.0.1:0: %v", err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}

	client, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	unix.CloseOnExec(client)
	if err := unix.SetNonblock(client, true); err != nil {
		unix.Close(client)
		t.Fatalf("set non-blocking: %v", err)
	}
	// A non-blocking connect, so no signal can interrupt it half done. The
	// handshake completes on its own over loopback; accept returns once it
	// has, and the client is then established too.
	if err := unix.Connect(client, addr); err != nil && err != unix.EINPROGRESS {
		unix.Close(client)
		t.Fatalf("connect: %v", err)
	}
	for {
		server, _, err = unix.Accept(ln)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(client)
		t.Fatalf("accept: %v", err)
	}
	unix.CloseOnExec(server)
	if err := unix.SetNonblock(server, true); err != nil {
		unix.Close(client)
		unix.Close(server)
		t.Fatalf("set non-blocking: %v", err)
	}
	return client, server
}

// tcpPair is openTCPPair with both ends closed when the test ends.
func tcpPair(t *testing.T) (client, server int) {
	t.Helper()
	client, server = openTCPPair(t)
	t.Cleanup(func() {
		unix.Close(client)
		unix.Close(server)
	})
	return client, server
}

// write writes all of s to fd, which has room for it.
func write(t *testing.T, fd int, s string) {
	t.Helper()
	n, err := unix.Write(fd, []byte(s))
	if err != nil {
		t.Fatalf("write to fd %d: %v", fd, err)
	}
	if n != len(s) {
		t.Fatalf("write to fd %d: got %d bytes written, want %d", fd, n, len(s))
	}
}

// readAvailable reads from the non-blocking fd until EAGAIN or end of file
// and returns what it read and whether it reached end of file.
func readAvailable(t *testing.T, fd int) (data string, eof bool) {
	t.Helper()
	var buf [4096]byte
	for {
		n, err := unix.Read(fd, buf[:])
		switch {
		case err == unix.EAGAIN:
			return data, false
		case err == unix.EINTR:
			continue
		case err != nil:
			t.Fatalf("read from fd %d: %v", fd, err)
		case n == 0:
			return data, true
		}
		data += string(buf[:n])
	}
}

// waitFor calls Wait until it returns an event for token that satisfies ok,
// and returns that event. Other events, and Waits that return none, are
// ignored: readiness is a hint and wake-ups may be spurious.
func waitFor(t *testing.T, p *poll.Poller, token uint64, ok func(poll.Event) bool) poll.Event {
	t.Helper()
	events := make([]poll.Event, 16)
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		n, err := p.Wait(events, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range events[:n] {
			if ev.Token == token && ok(ev) {
				return ev
			}
		}
	}
	t.Fatalf("no wanted event for token %d after %v", token, patience)
	return poll.Event{}
}

// expectQuiet calls Wait for d and fails on any event it returns.
func expectQuiet(t *testing.T, p *poll.Poller, d time.Duration) {
	t.Helper()
	events := make([]poll.Event, 16)
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		n, err := p.Wait(events, left)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range events[:n] {
			t.Errorf("Wait: got an event for token %d (%s), want none", ev.Token, describe(ev))
		}
		if n > 0 {
			t.FailNow()
		}
	}
}

// describe names the conditions an event reports, for failure messages.
func describe(ev poll.Event) string {
	s := ""
	for _, c := range []struct {
		on   bool
		name string
	}{
		{ev.Readable(), "readable"},
		{ev.Writable(), "writable"},
		{ev.ReadClosed(), "read-closed"},
		{ev.HangUp(), "hang-up"},
		{ev.Err(), "error"},
	} {
		if c.on {
			if s != "" {
				s += "|"
			}
			s += c.name
		}
	}
	if s == "" {
		return "nothing"
	}
	return s
}

func readable(ev poll.Event) bool { return ev.Readable() }
func writable(ev poll.Event) bool { return ev.Writable() }

// waitResult is what a Wait run on another goroutine returned.
type waitResult struct {
	n   int
	err error
}

// goWait runs Wait on a new goroutine and delivers its result.
func goWait(p *poll.Poller, events []poll.Event, timeout time.Duration) <-chan waitResult {
	c := make(chan waitResult, 1)
	go func() {
		n, err := p.Wait(events, timeout)
		c <- waitResult{n, err}
	}()
	return c
}

// receive returns the result of a Wait started with goWait. If none comes
// within patience, it closes the poller, which ends the Wait, and fails.
func receive(t *testing.T, p *poll.Poller, c <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(patience):
		go p.Close()
		t.Fatalf("Wait still blocked after %v", patience)
		return waitResult{}
	}
}

// blocked reports whether a Wait started with goWait is still running
// after d, which is as close as a test can get to "blocked in the kernel".
func blocked(c <-chan waitResult, d time.Duration) bool {
	time.Sleep(d)
	return len(c) == 0
}
