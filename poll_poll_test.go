//go:build aix || solaris || (tcpoll_poll && (linux || darwin || dragonfly || freebsd || netbsd || openbsd))

package poll

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPollFlags(t *testing.T) {
	const (
		in  = unix.POLLIN | pollRDHUP
		out = unix.POLLOUT
	)
	all := flagReadable | flagWritable | flagReadClosed | flagHangUp | flagError
	tests := []struct {
		name     string
		events   uint32
		revents  uint32
		hupIsEOF bool
		want     flags
	}{
		{"nothing", in | out, 0, false, 0},
		{"in", in, unix.POLLIN, false, flagReadable},
		{"pri", in, unix.POLLPRI, false, flagReadable},
		{"out", out, unix.POLLOUT, false, flagWritable},
		{"in|out", in | out, unix.POLLIN | unix.POLLOUT, false, flagReadable | flagWritable},
		// HUP and ERR come whatever was asked and make both directions
		// ready, so the next read or write reports them.
		{"hup", in, unix.POLLHUP, false, flagReadable | flagWritable | flagReadClosed | flagHangUp},
		{"hup, nothing asked", 0, unix.POLLHUP, false, flagReadable | flagWritable | flagReadClosed | flagHangUp},
		{"in|hup", in, unix.POLLIN | unix.POLLHUP, false, flagReadable | flagWritable | flagReadClosed | flagHangUp},
		{"err", out, unix.POLLERR, false, flagReadable | flagWritable | flagError},
		{"out|err", out, unix.POLLOUT | unix.POLLERR, false, flagReadable | flagWritable | flagError},
		{"err|hup", in | out, unix.POLLERR | unix.POLLHUP, false, all},
		{"everything", in | out, unix.POLLIN | unix.POLLPRI | unix.POLLOUT | unix.POLLHUP | unix.POLLERR | pollRDHUP, false, all},
		// The descriptor is not open: Wait drops the registration.
		{"nval", in, unix.POLLNVAL, false, 0},
		{"nval, nothing asked", 0, unix.POLLNVAL, false, 0},

		// macOS: POLLHUP is the EOF of the filter poll(2) registered for
		// what was asked. Reading alone: the peer's shutdown(SHUT_WR).
		{"macOS: in|hup, reading", in, unix.POLLIN | unix.POLLHUP, true, flagReadable | flagWritable | flagReadClosed},
		{"macOS: hup, reading", in, unix.POLLHUP, true, flagReadable | flagWritable | flagReadClosed},
		// Writing alone: our own shutdown(SHUT_WR), or a disconnection.
		{"macOS: hup, writing", out, unix.POLLHUP, true, flagReadable | flagWritable},
		// Both: either filter's EOF, so nothing is claimed for reading.
		{"macOS: in|hup, both", in | out, unix.POLLIN | unix.POLLHUP, true, flagReadable | flagWritable},
		{"macOS: err", in | out, unix.POLLERR, true, flagReadable | flagWritable | flagError},
		{"macOS: in|out", in | out, unix.POLLIN | unix.POLLOUT, true, flagReadable | flagWritable},
	}
	if pollRDHUP != 0 {
		// The peer's FIN: data sent before it may still be queued.
		tests = append(tests, []struct {
			name     string
			events   uint32
			revents  uint32
			hupIsEOF bool
			want     flags
		}{
			{"rdhup", in, pollRDHUP, false, flagReadable | flagReadClosed},
			{"in|rdhup", in, unix.POLLIN | pollRDHUP, false, flagReadable | flagReadClosed},
			{"out|rdhup", in | out, unix.POLLOUT | pollRDHUP, false, flagReadable | flagWritable | flagReadClosed},
		}...)
	}
	for _, tt := range tests {
		if got := pollFlags(tt.events, tt.revents, tt.hupIsEOF); got != tt.want {
			t.Errorf("%s: pollFlags(%#x, %#x, %v) = %s, want %s", tt.name, tt.events, tt.revents, tt.hupIsEOF, flagString(got), flagString(tt.want))
		}
	}
}

func TestPollInterest(t *testing.T) {
	tests := []struct {
		in   Interest
		want uint32
	}{
		{0, 0},
		{Readable, unix.POLLIN | pollRDHUP},
		{Writable, unix.POLLOUT},
		{Readable | Writable, unix.POLLIN | pollRDHUP | unix.POLLOUT},
	}
	for _, tt := range tests {
		if got := pollInterest(tt.in); got != tt.want {
			t.Errorf("pollInterest(%#x) = %#x, want %#x", tt.in, got, tt.want)
		}
		// What the table stores reads back the same, whatever the
		// field's type.
		var pfd unix.PollFd
		setBits(&pfd.Events, pollInterest(tt.in))
		if got := bitsOf(pfd.Events); got != tt.want {
			t.Errorf("events field after setBits(%#x) = %#x", tt.want, got)
		}
	}
}

// TestPollTokenOfRacingReregistration takes Wait apart at the point where
// the race would bite: poll(2) has reported the end of file of a socket
// registered with token 1, and before Wait translates it another goroutine
// deletes the socket, puts a new one under the same number and adds it
// with token 2. The old end of file must not come out with token 2.
// (TestTokenOfRacingReregistration tries the same through the API, where
// the window is too narrow to hit on purpose.)
func TestPollTokenOfRacingReregistration(t *testing.T) {
	p := newTestPoller(t)
	b := &p.b
	fd := addAtEOF(t, p, 1)

	b.refresh()
	n, err := unix.Poll(b.wfds, patienceMillis)
	if err != nil || n == 0 {
		t.Fatalf("poll: got %d, %v; want the end of file", n, err)
	}

	reregisterOnNewSocket(t, p, fd, 2)

	events := make([]Event, 8)
	j, _, _ := b.settle(events, n)
	for _, ev := range events[:j] {
		if ev.Token == 2 {
			t.Errorf("event polled under token 1, translated after token 2 replaced it: got token 2, %s", flagString(ev.flags))
		}
	}
}

// TestPollChangeWakesWait checks that a Delete and an Add made while Wait
// is in poll(2) wake it, and that it goes back to poll(2) with a copy of
// the table that has the deleted descriptor out and the added one in,
// without returning to its caller.
func TestPollChangeWakesWait(t *testing.T) {
	p := newTestPoller(t)
	b := &p.b
	a, _ := testSocketpair(t)
	c, _ := testSocketpair(t)
	if err := p.Add(a, 1, Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Wait(make([]Event, 8), -1)
		done <- err
	}()
	polled := func() (fds []int32) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.polling {
			return nil
		}
		for _, pfd := range b.wfds[1:] {
			fds = append(fds, pfd.Fd)
		}
		return fds
	}
	waitPolled := func(want []int32) {
		t.Helper()
		deadline := time.Now().Add(patience)
		for {
			got := polled()
			if len(got) == len(want) && (len(got) == 0 || got[0] == want[0]) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Wait in poll(2) with descriptors %v after %v, want %v", got, patience, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitPolled([]int32{int32(a)})
	if err := p.Delete(a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitPolled([]int32{})
	if err := p.Add(c, 2, Readable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	waitPolled([]int32{int32(c)})
	select {
	case err := <-done:
		t.Fatalf("Wait returned (%v) with nothing ready and no Wake", err)
	default:
	}
	p.Wake()
	if err := <-done; err != nil {
		t.Errorf("woken Wait: %v", err)
	}
}
