//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"sync/atomic"
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

// TestTokenOfRacingReregistration checks that an event's conditions belong
// to the registration whose token it carries while another goroutine,
// during Waits, deletes a descriptor whose peer has closed, puts a new
// socket under the same number, and adds it with a new token. The old
// socket's end of file must never come with the new token. (On kqueue the
// tokens live in a table read after kevent returns; an event that races a
// change keeps only readiness, see translate in poll_kqueue_bsd.go. epoll
// carries the token in the event, poll(2) in the array it polled.)
func TestTokenOfRacingReregistration(t *testing.T) {
	p := newPoller(t)
	fd, peer := openSocketpair(t)
	t.Cleanup(func() {
		unix.Close(fd)
		unix.Close(peer)
	})
	// closed is the latest token whose socket's peer has been closed:
	// that socket and the ones before it may be reported at end of file.
	var closed atomic.Uint64
	if err := p.Add(fd, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	var eofs, bad atomic.Int64
	go func() {
		defer close(done)
		events := make([]poll.Event, 8)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := p.Wait(events, 10*time.Millisecond)
			if err != nil {
				t.Errorf("Wait: %v", err)
				return
			}
			for _, ev := range events[:n] {
				if !ev.ReadClosed() && !ev.HangUp() && !ev.Err() {
					continue
				}
				eofs.Add(1)
				if c := closed.Load(); ev.Token > c {
					bad.Add(1)
					t.Errorf("event for token %d: got %s, but only sockets up to token %d have been closed", ev.Token, describe(ev), c)
				}
			}
		}
	}()
	// Also when a Fatalf below ends the test: the Wait goroutine must not
	// report after it.
	defer func() {
		close(stop)
		<-done
	}()

	// Bounded in time too: a Wait that spins on level-triggered ends of
	// file keeps taking the backend's lock, and ctl waits its turn.
	const rounds = 2000
	start := time.Now()
	token := uint64(1)
	for ; token < rounds && bad.Load() == 0 && time.Since(start) < time.Second; token++ {
		closed.Store(token)
		unix.Close(peer) // fd, registered with token, is at end of file
		if token%2 == 0 {
			time.Sleep(20 * time.Microsecond) // let Wait see it, sometimes
		}
		// The new socket is made first, so that Delete, dup2 and Add
		// follow each other as closely as they can.
		y, yPeer := openSocketpair(t)
		if err := p.Delete(fd); err != nil {
			t.Fatalf("Delete of token %d: %v", token, err)
		}
		if err := unix.Dup2(y, fd); err != nil {
			unix.Close(y)
			unix.Close(yPeer)
			t.Fatalf("dup2: %v", err)
		}
		unix.Close(y)
		peer = yPeer
		if err := p.Add(fd, token+1, poll.Readable); err != nil {
			t.Fatalf("Add of token %d: %v", token+1, err)
		}
	}
	t.Logf("%d end-of-file events seen over %d re-registrations", eofs.Load(), token-1)
}
