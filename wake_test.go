//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll"
)

func TestWakeInterruptsBlockedWait(t *testing.T) {
	p := newPoller(t)
	c := goWait(p, make([]poll.Event, 8), -1)
	if !blocked(c, 20*time.Millisecond) {
		r := <-c
		t.Fatalf("Wait(-1) with nothing registered: got %d, %v before any Wake, want it to block", r.n, r.err)
	}
	if err := p.Wake(); err != nil {
		t.Fatalf("Wake: %v", err)
	}
	r := receive(t, p, c)
	if r.err != nil || r.n != 0 {
		t.Errorf("woken Wait: got %d, %v; want 0, nil", r.n, r.err)
	}
}

// TestWakeCoalesces sends many Wakes from several goroutines before a Wait
// and checks that they wake that Wait, and no later one.
func TestWakeCoalesces(t *testing.T) {
	p := newPoller(t)
	const goroutines, each = 8, 125
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if err := p.Wake(); err != nil {
					t.Errorf("Wake: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	events := make([]poll.Event, 8)
	if r := receive(t, p, goWait(p, events, -1)); r.err != nil || r.n != 0 {
		t.Fatalf("woken Wait: got %d, %v; want 0, nil", r.n, r.err)
	}
	n, err := p.Wait(events, 0)
	if err != nil || n != 0 {
		t.Fatalf("Wait(0) after the woken Wait: got %d, %v; want 0, nil", n, err)
	}
	// No wake is left pending: a Wait with a timeout runs it out.
	const timeout = 100 * time.Millisecond
	start := time.Now()
	n, err = p.Wait(events, timeout)
	if elapsed := time.Since(start); err != nil || n != 0 || elapsed < timeout {
		t.Errorf("Wait(%v) after %d coalesced Wakes: got %d, %v after %v; want 0, nil after the full timeout",
			timeout, goroutines*each, n, err, elapsed)
	}
}

// TestWakeAfterWait checks that the coalescing flag is reset: a Wake made
// after a Wait returned wakes the next Wait, round after round, whether it
// comes before that Wait or while it blocks.
func TestWakeAfterWait(t *testing.T) {
	p := newPoller(t)
	events := make([]poll.Event, 8)
	for round := range 100 {
		if err := p.Wake(); err != nil {
			t.Fatalf("round %d: Wake: %v", round, err)
		}
		if r := receive(t, p, goWait(p, events, -1)); r.err != nil || r.n != 0 {
			t.Fatalf("round %d: Wait woken before it started: got %d, %v; want 0, nil", round, r.n, r.err)
		}

		c := goWait(p, events, -1)
		if err := p.Wake(); err != nil {
			t.Fatalf("round %d: Wake: %v", round, err)
		}
		if r := receive(t, p, c); r.err != nil || r.n != 0 {
			t.Fatalf("round %d: Wait woken while running: got %d, %v; want 0, nil", round, r.n, r.err)
		}
	}
}

// TestWakeWithEvents checks that a woken Wait still reports the events that
// are ready, and that the wake-up itself is never handed to the caller.
func TestWakeWithEvents(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 3, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "x")
	if err := p.Wake(); err != nil {
		t.Fatalf("Wake: %v", err)
	}
	events := make([]poll.Event, 8)
	deadline := time.Now().Add(patience)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatalf("no readable event for token 3 after %v", patience)
		}
		n, err := p.Wait(events, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range events[:n] {
			if ev.Token != 3 {
				t.Fatalf("event: got token %d, want 3 (the wake-up must stay internal)", ev.Token)
			}
			found = found || ev.Readable()
		}
	}
}
