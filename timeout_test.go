//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"syscall"
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
	testShortTimeouts(t, 5)
}

// TestWaitShortTimeoutInterrupted: signals that interrupt the kernel's
// wait (EINTR) do not shorten the rounded timeout; the retry waits for
// what is left of it.
func TestWaitShortTimeoutInterrupted(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			// The runtime's own preemption signal: it ignores ours.
			syscall.Kill(syscall.Getpid(), syscall.SIGURG)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	testShortTimeouts(t, 50)
}

// testShortTimeouts checks that Waits shorter than a millisecond, or not a
// whole number of them, last the timeout rounded up.
func testShortTimeouts(t *testing.T, calls int) {
	t.Helper()
	p := newPoller(t)
	events := make([]poll.Event, 8)
	for _, timeout := range []time.Duration{time.Nanosecond, 999 * time.Microsecond, time.Millisecond + time.Nanosecond} {
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
