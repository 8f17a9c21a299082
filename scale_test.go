//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"testing"
	"time"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

// TestManySockets registers 10,000 sockets, makes every one readable, and
// checks that an event comes for each.
func TestManySockets(t *testing.T) {
	const pairs = 5000
	const sockets = 2 * pairs
	raiseFileLimit(t, sockets+200) // some to spare for the test binary itself

	p := newPoller(t)
	fds := make([]int, 0, sockets)
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	for range pairs {
		a, b := openSocketpair(t)
		fds = append(fds, a, b)
	}
	// The token is the index in fds, shifted so that none is zero.
	const base uint64 = 1 << 40
	for i, fd := range fds {
		if err := p.Add(fd, base+uint64(i), poll.Readable); err != nil {
			t.Fatalf("Add of socket %d (fd %d): %v", i, fd, err)
		}
	}
	// A byte written to one end makes the other readable.
	for _, fd := range fds {
		write(t, fd, "x")
	}

	seen := make(map[uint64]bool, sockets)
	events := make([]poll.Event, 256)
	var buf [16]byte
	deadline := time.Now().Add(patience)
	waits := 0
	for len(seen) < sockets {
		if time.Now().After(deadline) {
			t.Fatalf("after %v and %d Waits: got events for %d sockets, want %d", patience, waits, len(seen), sockets)
		}
		n, err := p.Wait(events, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		waits++
		for _, ev := range events[:n] {
			i := ev.Token - base
			if ev.Token < base || i >= sockets {
				t.Fatalf("event: got token %#x, not one that was added", ev.Token)
			}
			if !ev.Readable() {
				continue
			}
			seen[ev.Token] = true
			// Read the byte so level triggering makes room for the others.
			if n, err := unix.Read(fds[i], buf[:]); n != 1 || err != nil {
				t.Fatalf("read from socket %d: got %d, %v; want 1, nil", i, n, err)
			}
		}
	}
	t.Logf("%d sockets reported in %d Waits", sockets, waits)
}

// raiseFileLimit makes sure the process may have n descriptors open,
// raising the soft limit up to the hard one if needed and putting it back
// when the test ends. It skips the test if the hard limit is too low.
func raiseFileLimit(t testing.TB, n int) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	// The field types differ across systems (int64 on FreeBSD).
	if uint64(lim.Cur) >= uint64(n) {
		return
	}
	if uint64(lim.Max) < uint64(n) {
		t.Skipf("needs %d open files, but RLIMIT_NOFILE's hard limit is %d: raise it (ulimit -Hn) to run this test", n, lim.Max)
	}
	old := lim
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		// macOS refuses a soft limit above kern.maxfilesperproc, and the
		// hard limit may be "unlimited": ask for just what is needed.
		setInt(&lim.Cur, n)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("setrlimit RLIMIT_NOFILE to %d: %v", n, err)
		}
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}

// setInt stores n in a field whose integer type depends on the system.
func setInt[T int64 | uint64](p *T, n int) { *p = T(n) }
