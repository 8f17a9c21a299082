//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// patienceMillis bounds a poll(2) or kevent that must find something at
// once, and patience a wait for what must come; both are far longer than
// needed.
const (
	patienceMillis = 10_000
	patience       = patienceMillis * time.Millisecond
)

// newTestPoller returns a Poller closed when the test ends.
func newTestPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// addAtEOF adds one end of a new socket pair to p with token and closes the
// other, so that the end p watches is at end of file. It returns that end.
func addAtEOF(t *testing.T, p *Poller, token uint64) int {
	t.Helper()
	fd, peer := openTestSocketpair(t)
	if err := p.Add(fd, token, Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	unix.Close(peer)
	return fd
}

// openTestSocketpair returns a connected pair of non-blocking stream
// sockets. The caller closes them.
func openTestSocketpair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			t.Fatalf("set non-blocking: %v", err)
		}
	}
	return fds[0], fds[1]
}

// testSocketpair is openTestSocketpair with both ends closed when the test
// ends.
func testSocketpair(t *testing.T) (a, b int) {
	t.Helper()
	a, b = openTestSocketpair(t)
	t.Cleanup(func() {
		unix.Close(a)
		unix.Close(b)
	})
	return a, b
}

// reregisterOnNewSocket deletes fd from p, puts a new socket under the same
// number (dup2) and adds it with token: what a caller does when a number is
// closed and reused while the kernel may still hold events for the old one.
func reregisterOnNewSocket(t *testing.T, p *Poller, fd int, token uint64) {
	t.Helper()
	y, yPeer := openTestSocketpair(t)
	t.Cleanup(func() {
		unix.Close(fd)
		unix.Close(yPeer)
	})
	if err := p.Delete(fd); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	err := unix.Dup2(y, fd)
	unix.Close(y)
	if err != nil {
		t.Fatalf("dup2: %v", err)
	}
	if err := p.Add(fd, token, Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
}
