//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"testing"
	"time"

	"github.com/tcpoll/poll"
)

// TestWaitAllocs checks that Wait allocates nothing in steady state, with an
// event to report and with none.
func TestWaitAllocs(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	c, _ := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := p.Add(c, 2, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "x") // a stays readable: nobody reads it
	events := make([]poll.Event, 64)

	// The first Wait grows the poller's buffer; AllocsPerRun's warm-up run
	// takes care of it.
	got := testing.AllocsPerRun(100, func() {
		n, err := p.Wait(events, 0)
		if err != nil || n != 1 || events[0].Token != 1 {
			t.Fatalf("Wait(0) with one ready socket: got %d, %v; want 1 event for token 1", n, err)
		}
	})
	if got != 0 {
		t.Errorf("Wait with a ready socket: got %v allocations per call, want 0", got)
	}

	if err := p.Delete(a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	got = testing.AllocsPerRun(100, func() {
		n, err := p.Wait(events, 0)
		if err != nil || n != 0 {
			t.Fatalf("Wait(0) with nothing ready: got %d, %v; want 0, nil", n, err)
		}
	})
	if got != 0 {
		t.Errorf("Wait with nothing ready: got %v allocations per call, want 0", got)
	}

	if raceEnabled {
		// Under -race, x/sys/unix's Read and Write hooks move the 8-byte
		// eventfd buffers of Wake and of the Wait that drains it to the
		// heap: 2 allocations a round that a normal build does not make.
		t.Log("skipping the Wake round: buffers escape under the race detector")
		return
	}
	got = testing.AllocsPerRun(100, func() {
		if err := p.Wake(); err != nil {
			t.Fatalf("Wake: %v", err)
		}
		start := time.Now()
		n, err := p.Wait(events, patience)
		if err != nil || n != 0 || time.Since(start) >= patience {
			t.Fatalf("woken Wait: got %d, %v after %v; want 0, nil at once", n, err, time.Since(start))
		}
	})
	if got != 0 {
		t.Errorf("Wake and a woken Wait: got %v allocations per round, want 0", got)
	}
}
