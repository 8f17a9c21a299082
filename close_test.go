//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tcpoll/poll"
)

func TestCloseUnblocksWait(t *testing.T) {
	p := newPoller(t)
	c := goWait(p, make([]poll.Event, 8), -1)
	if !blocked(c, 20*time.Millisecond) {
		r := <-c
		t.Fatalf("Wait(-1) with nothing registered: got %d, %v before Close, want it to block", r.n, r.err)
	}

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("Close still blocked after %v", patience)
	}
	r := receive(t, p, c)
	if !errors.Is(r.err, poll.ErrClosed) || r.n != 0 {
		t.Errorf("Wait ended by Close: got %d, %v; want 0, %v", r.n, r.err, poll.ErrClosed)
	}
}

func TestClosedPoller(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	events := make([]poll.Event, 8)
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Add", func() error { return p.Add(b, 2, poll.Readable) }},
		{"Modify", func() error { return p.Modify(a, 3, poll.Writable) }},
		{"Delete", func() error { return p.Delete(a) }},
		{"Wait", func() error { _, err := p.Wait(events, time.Second); return err }},
		{"Wait with no room", func() error { _, err := p.Wait(nil, time.Second); return err }},
		{"Wake", p.Wake},
		{"Close", p.Close},
	} {
		if err := c.call(); !errors.Is(err, poll.ErrClosed) {
			t.Errorf("%s after Close: got %v, want %v", c.name, err, poll.ErrClosed)
		}
	}

	// Close leaves the registered descriptors to their owner.
	write(t, b, "still open")
	if got, _ := readAvailable(t, a); got != "still open" {
		t.Errorf("read after Close: got %q, want %q", got, "still open")
	}
}
