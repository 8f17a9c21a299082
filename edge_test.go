//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"errors"
	"testing"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

// TestEdgeTriggered checks that an edge-triggered registration reports
// readable once per arrival of data, not again while the data sits unread,
// and again when more arrives.
func TestEdgeTriggered(t *testing.T) {
	skipUnlessEdgeTriggered(t)
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable|poll.EdgeTriggered); err != nil {
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "one")
	waitFor(t, p, 1, readable)
	// Nothing read, nothing new: no new edge.
	expectQuiet(t, p, quiet)

	write(t, b, "two")
	waitFor(t, p, 1, readable)
	expectQuiet(t, p, quiet)

	if got, _ := readAvailable(t, a); got != "onetwo" {
		t.Errorf("read: got %q, want %q", got, "onetwo")
	}
	expectQuiet(t, p, quiet)

	// Drained to EAGAIN, as the contract asks; the next write is an edge.
	write(t, b, "three")
	waitFor(t, p, 1, readable)
}

// TestEdgeTriggeredWritable checks that a writable edge is reported once,
// and again after the send buffer filled up and drained.
func TestEdgeTriggeredWritable(t *testing.T) {
	skipUnlessEdgeTriggered(t)
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Writable|poll.EdgeTriggered); err != nil {
		t.Fatalf("Add: %v", err)
	}
	waitFor(t, p, 1, writable)
	expectQuiet(t, p, quiet)

	fill(t, a)
	expectQuiet(t, p, quiet)
	// Room again after the reader drains: a new edge.
	if _, eof := readAvailable(t, b); eof {
		t.Fatal("read: got end of file, want data")
	}
	waitFor(t, p, 1, writable)
}

// TestEdgeTriggeredRefused checks that a backend without edge-triggered
// registrations (poll(2), which sees levels, not transitions) refuses
// EdgeTriggered in Add and in Modify with an error wrapping
// errors.ErrUnsupported, and that the refusal changes nothing.
func TestEdgeTriggeredRefused(t *testing.T) {
	if poll.EdgeTriggeredSupported {
		t.Skipf("the %s backend has edge-triggered registrations: TestEdgeTriggered covers them", poll.Backend)
	}
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable|poll.EdgeTriggered); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Add edge-triggered: got %v, want an error wrapping %v", err, errors.ErrUnsupported)
	}
	// The refused Add registered nothing.
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add after the refused one: %v", err)
	}
	if err := p.Modify(a, 2, poll.Readable|poll.EdgeTriggered); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Modify to edge-triggered: got %v, want an error wrapping %v", err, errors.ErrUnsupported)
	}
	// The refused Modify left token 1 in force.
	write(t, b, "x")
	waitFor(t, p, 1, readable)
}

// skipUnlessEdgeTriggered skips a test of edge-triggered reporting on a
// backend that refuses EdgeTriggered (TestEdgeTriggeredRefused).
func skipUnlessEdgeTriggered(t *testing.T) {
	t.Helper()
	if !poll.EdgeTriggeredSupported {
		t.Skipf("the %s backend refuses edge-triggered registrations: TestEdgeTriggeredRefused covers it", poll.Backend)
	}
}

// TestLevelTriggered checks that a level-triggered registration keeps
// reporting readable until the data is read.
func TestLevelTriggered(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 1, poll.Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	write(t, b, "x")
	for range 3 {
		waitFor(t, p, 1, readable)
	}
	if got, _ := readAvailable(t, a); got != "x" {
		t.Errorf("read: got %q, want %q", got, "x")
	}
	expectQuiet(t, p, quiet)
}

// fill writes to the non-blocking fd until it would block.
func fill(t *testing.T, fd int) {
	t.Helper()
	buf := make([]byte, 64<<10)
	for {
		_, err := unix.Write(fd, buf)
		switch err {
		case nil, unix.EINTR:
		case unix.EAGAIN:
			return
		default:
			t.Fatalf("write: %v", err)
		}
	}
}
