//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"testing"
	"time"

	"github.com/tcpoll/poll"
)

// slack is the most a Wait may overrun its timeout before a test calls it
// absurd. It is generous: the machines these tests run on are shared.
const slack = 2 * time.Second

func TestWaitTimeout(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	events := make([]poll.Event, 8)
	const timeout = 50 * time.Millisecond
	start := time.Now()
	n, err := p.Wait(events, timeout)
	elapsed := time.Since(start)
	if err != nil || n != 0 {
		t.Fatalf("Wait(%v) on an idle socket: got %d, %v; want 0, nil", timeout, n, err)
	}
	if elapsed < timeout || elapsed > timeout+slack {
		t.Errorf("Wait(%v): returned after %v, want between %v and %v", timeout, elapsed, timeout, timeout+slack)
	}
}

// TestWaitShortTimeoutRoundsUp checks that timeouts below a millisecond are
// rounded up, not down to zero, which would turn a caller's loop into a
// busy poll.
func TestWaitShortTimeoutRoundsUp(t *testing.T) {
	p := newPoller(t)
	events := make([]poll.Event, 8)
	for _, timeout := range []time.Duration{time.Nanosecond, 999 * time.Microsecond, time.Millisecond + time.Nanosecond} {
		const calls = 5
		for range calls {
			start := time.Now()
			n, err := p.Wait(events, timeout)
			elapsed := time.Since(start)
			if err != nil || n != 0 {
				t.Fatalf("Wait(%v): got %d, %v; want 0, nil", timeout, n, err)
			}
			want := timeout.Truncate(time.Millisecond) + time.Millisecond
			if elapsed < want || elapsed > want+slack {
				t.Errorf("Wait(%v): returned after %v, want between %v and %v", timeout, elapsed, want, want+slack)
			}
		}
	}
}

// TestWaitZeroTimeout checks that a zero timeout polls: it returns at once.
func TestWaitZeroTimeout(t *testing.T) {
	p := newPoller(t)
	events := make([]poll.Event, 8)
	start := time.Now()
	n, err := p.Wait(events, 0)
	elapsed := time.Since(start)
	if err != nil || n != 0 {
		t.Fatalf("Wait(0): got %d, %v; want 0, nil", n, err)
	}
	if elapsed > slack {
		t.Errorf("Wait(0): returned after %v, want at once", elapsed)
	}
}
