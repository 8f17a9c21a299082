//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"testing"
	"time"

	"github.com/tcpoll/poll"
)

func TestReadableAfterPeerWrite(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "ping")
	ev := waitFor(t, p, 1, readable)
	if ev.Writable() {
		t.Errorf("event: got writable, want only the readable that was asked for")
	}
	if got, _ := readAvailable(t, a); got != "ping" {
		t.Errorf("read: got %q, want %q", got, "ping")
	}
}

func TestNotReadableWhenIdle(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	events := make([]poll.Event, 8)
	n, err := p.Wait(events, 0)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if n != 0 {
		t.Errorf("Wait(0) on an idle socket: got %d events, want 0 (first: token %d, %s)",
			n, events[0].Token, describe(events[0]))
	}
}

func TestWritableOnFreshSocket(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	if err := p.Add(a, 5, poll.Writable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	ev := waitFor(t, p, 5, writable)
	if ev.Readable() {
		t.Errorf("event: got readable on a socket with nothing to read, want only writable")
	}
}

func TestWritableOnFreshTCPSocket(t *testing.T) {
	p := newPoller(t)
	c, _ := tcpPair(t)
	if err := p.Add(c, 5, poll.Writable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	waitFor(t, p, 5, writable)
}

// TestModify switches a registration from readable to writable and back,
// with a new token each time, and checks that only the current interest
// and token are reported.
func TestModify(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	expectQuiet(t, p, quiet)

	if err := p.Modify(a, 2, poll.Writable); err != nil {
		t.Fatalf("Modify to writable: %v", err)
	}
	events := make([]poll.Event, 8)
	deadline := time.Now().Add(patience)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatalf("no writable event with token 2 after %v", patience)
		}
		n, err := p.Wait(events, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range events[:n] {
			if ev.Token != 2 {
				t.Fatalf("event after Modify: got token %d, want 2", ev.Token)
			}
			found = found || ev.Writable()
		}
	}

	if err := p.Modify(a, 3, poll.Readable); err != nil {
		t.Fatalf("Modify back to readable: %v", err)
	}
	// Still writable, but that is no longer asked for.
	expectQuiet(t, p, quiet)

	write(t, b, "x")
	deadline = time.Now().Add(patience)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatalf("no readable event with token 3 after %v", patience)
		}
		n, err := p.Wait(events, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range events[:n] {
			if ev.Token != 3 {
				t.Fatalf("event after second Modify: got token %d, want 3", ev.Token)
			}
			if ev.Writable() {
				t.Fatalf("event after second Modify: got %s, want no writable", describe(ev))
			}
			found = found || ev.Readable()
		}
	}
}

func TestDeleteStopsEvents(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable|poll.Writable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "x")
	waitFor(t, p, 1, readable)
	if err := p.Delete(a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// a is readable and writable, level-triggered, and nobody reads it.
	expectQuiet(t, p, quiet)
	write(t, b, "y")
	expectQuiet(t, p, quiet)
}

func TestWaitEmptyEvents(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "x")
	for _, events := range [][]poll.Event{nil, make([]poll.Event, 0, 8)} {
		// Blocking without limit: anything but an immediate return hangs,
		// which receive turns into a failure.
		r := receive(t, p, goWait(p, events, -1))
		if r.err != nil || r.n != 0 {
			t.Errorf("Wait(len %d, cap %d): got %d, %v; want 0, nil", len(events), cap(events), r.n, r.err)
		}
	}
	// The event is still there for a Wait that has room for it.
	waitFor(t, p, 1, readable)
}

// TestConcurrentAdd registers a ready socket from another goroutine while
// Wait blocks with no timeout, and checks that some Wait reports it. It
// wakes the poller now and then, so that it counts the Waits it took;
// TestChangesDuringWait holds the blocked Wait itself to the contract.
func TestConcurrentAdd(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	write(t, b, "x")

	found := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		events := make([]poll.Event, 8)
		for waits := 1; ; waits++ {
			n, err := p.Wait(events, -1)
			if err != nil {
				errc <- err
				return
			}
			for _, ev := range events[:n] {
				if ev.Token == 9 && ev.Readable() {
					found <- waits
					return
				}
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the Wait block
	if err := p.Add(a, 9, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(patience)
	for {
		select {
		case waits := <-found:
			if waits > 1 {
				t.Logf("the registration was reported by Wait number %d, after a Wake", waits)
			}
			return
		case err := <-errc:
			t.Fatalf("Wait: %v", err)
		case <-tick.C:
			if err := p.Wake(); err != nil {
				t.Fatalf("Wake: %v", err)
			}
		case <-deadline:
			go p.Close()
			t.Fatalf("a socket added during a blocked Wait was not reported after %v", patience)
		}
	}
}

// TestChangesDuringWait makes each kind of registration change from another
// goroutine while Wait blocks without limit, and checks that the blocked
// Wait sees it with no Wake: an Add or a Modify of a ready descriptor makes
// it return with the event, and after a Delete it reports nothing of the
// descriptor and keeps blocking.
func TestChangesDuringWait(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	write(t, b, "x") // a is readable and writable from here on
	events := make([]poll.Event, 8)
	expect := func(c <-chan waitResult, token uint64, ok func(poll.Event) bool, what string) {
		t.Helper()
		r := receive(t, p, c)
		if r.err != nil {
			t.Fatalf("Wait: %v", r.err)
		}
		for _, ev := range events[:r.n] {
			if ev.Token == token && ok(ev) {
				return
			}
		}
		t.Fatalf("Wait blocked during %s: returned %d events without a %s one for token %d", what, r.n, what, token)
	}

	c := goWait(p, events, -1)
	if !blocked(c, 20*time.Millisecond) {
		t.Fatal("Wait(-1) with nothing registered returned")
	}
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	expect(c, 1, readable, "readable")

	if err := p.Modify(a, 2, 0); err != nil {
		t.Fatalf("Modify to no interest: %v", err)
	}
	c = goWait(p, events, -1)
	if !blocked(c, 20*time.Millisecond) {
		r := <-c
		t.Fatalf("Wait(-1) with no interest: got %d, %v (first: token %d, %s), want it to block", r.n, r.err, events[0].Token, describe(events[0]))
	}
	if err := p.Modify(a, 3, poll.Writable); err != nil {
		t.Fatalf("Modify to writable: %v", err)
	}
	expect(c, 3, writable, "writable")

	if err := p.Modify(a, 4, 0); err != nil {
		t.Fatalf("Modify to no interest: %v", err)
	}
	c = goWait(p, events, -1)
	if !blocked(c, 20*time.Millisecond) {
		t.Fatal("Wait(-1) with no interest returned")
	}
	if err := p.Delete(a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	write(t, b, "y")
	if !blocked(c, quiet) {
		r := <-c
		t.Fatalf("Wait(-1) after Delete: got %d, %v (first: token %d, %s), want it to block", r.n, r.err, events[0].Token, describe(events[0]))
	}
	if err := p.Wake(); err != nil {
		t.Fatalf("Wake: %v", err)
	}
	if r := receive(t, p, c); r.err != nil || r.n != 0 {
		t.Errorf("woken Wait after Delete: got %d, %v; want 0, nil", r.n, r.err)
	}
}

// TestShortBatchesTakeTurns checks that when more descriptors are ready
// than events has room for, successive Waits report all of them in turn:
// none starves behind the others.
func TestShortBatchesTakeTurns(t *testing.T) {
	p := newPoller(t)
	const sockets = 5
	for i := range sockets {
		a, b := socketpair(t)
		if err := p.Add(a, uint64(i+1), poll.Readable); err != nil {
			t.Fatalf("Add: %v", err)
		}
		write(t, b, "x") // never read: ready at every Wait
	}
	seen := make(map[uint64]int)
	events := make([]poll.Event, 2)
	for waits := 0; len(seen) < sockets; waits++ {
		if waits == 10*sockets {
			t.Fatalf("after %d Waits with room for %d events: got events for tokens %v, want all of 1 to %d", waits, len(events), seen, sockets)
		}
		n, err := p.Wait(events, patience)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range events[:n] {
			seen[ev.Token]++
		}
	}
}
