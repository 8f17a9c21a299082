//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package poll_test

import (
	"testing"
	"time"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

func TestReservedToken(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	const reserved = ^uint64(0)
	if err := p.Add(a, reserved, poll.Readable); err == nil {
		t.Fatal("Add with token ^uint64(0): got nil error, want the token refused")
	}
	// The refused Add registered nothing.
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add after the refused one: %v", err)
	}
	if err := p.Modify(a, reserved, poll.Readable); err == nil {
		t.Fatal("Modify with token ^uint64(0): got nil error, want the token refused")
	}
	// The refused Modify left the registration as it was.
	write(t, b, "x")
	waitFor(t, p, 1, readable)
	if err := p.Modify(a, reserved-1, poll.Readable); err != nil {
		t.Fatalf("Modify with token ^uint64(0)-1: %v", err)
	}
	waitFor(t, p, reserved-1, readable)
}

// TestTokensSurviveReuse checks that the events of a batch keep the token
// their descriptor had, after the descriptor is deleted, closed and its
// number reused by a new socket with another token.
func TestTokensSurviveReuse(t *testing.T) {
	p := newPoller(t)
	const t1, t2 uint64 = 1<<32 | 11, 2<<32 | 11 // same low half, as a slot and generation would be
	x, xPeer := openSocketpair(t)
	if err := p.Add(x, t1, poll.Readable); err != nil {
		unix.Close(x)
		unix.Close(xPeer)
		t.Fatalf("Add: %v", err)
	}
	write(t, xPeer, "old")

	var batch []poll.Event
	events := make([]poll.Event, 8)
	deadline := time.Now().Add(patience)
	for batch == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no event for token %#x after %v", t1, patience)
		}
		n, err := p.Wait(events, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if n > 0 {
			batch = events[:n]
		}
	}

	if err := p.Delete(x); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	unix.Close(x)
	unix.Close(xPeer)

	// The lowest free number is usually x again; if something else took
	// it meanwhile, put the new socket there by hand.
	y, yPeer := openSocketpair(t)
	switch x {
	case y:
	case yPeer:
		y, yPeer = yPeer, y
	default:
		if err := unix.Dup2(y, x); err != nil {
			unix.Close(y)
			unix.Close(yPeer)
			t.Fatalf("dup2: %v", err)
		}
		unix.Close(y)
		y = x
	}
	t.Cleanup(func() {
		unix.Close(y)
		unix.Close(yPeer)
	})
	if err := p.Add(y, t2, poll.Readable); err != nil {
		t.Fatalf("Add of the socket that reuses fd %d: %v", x, err)
	}
	write(t, yPeer, "new")

	for i, ev := range batch {
		if ev.Token != t1 {
			t.Errorf("batch[%d] after fd %d was reused: got token %#x, want %#x", i, x, ev.Token, t1)
		}
	}

	next := make([]poll.Event, 8)
	deadline = time.Now().Add(patience)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatalf("no event for token %#x after %v", t2, patience)
		}
		n, err := p.Wait(next, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
		for _, ev := range next[:n] {
			if ev.Token != t2 {
				t.Fatalf("event after fd %d was reused: got token %#x, want %#x", x, ev.Token, t2)
			}
			found = found || ev.Readable()
		}
	}
	if got, _ := readAvailable(t, y); got != "new" {
		t.Errorf("read from the new socket: got %q, want %q", got, "new")
	}
}
