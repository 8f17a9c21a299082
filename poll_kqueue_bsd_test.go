//go:build (darwin || dragonfly || freebsd || netbsd || openbsd) && !tcpoll_poll

package poll

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestKqueueTokenOfRacingReregistration takes Wait apart at the point where
// the race would bite: kevent has returned the end of file of a socket
// registered with token 1, and before Wait translates it another goroutine
// deletes the socket, puts a new one under the same number and adds it with
// token 2. The table then holds token 2, so the event may keep only what
// token 2's interest asks and cannot mislead (kqueueHint): readable, never
// read-closed. Only a kqueue machine runs this; TestPollTokenOfRacing-
// Reregistration is its poll(2) twin.
func TestKqueueTokenOfRacingReregistration(t *testing.T) {
	p := newTestPoller(t)
	b := &p.b
	fd := addAtEOF(t, p, 1)

	b.mu.Lock()
	since := b.seq
	b.mu.Unlock()
	raw := make([]unix.Kevent_t, 8)
	ts := unix.NsecToTimespec(int64(patience))
	n, err := unix.Kevent(b.kq, nil, raw, &ts)
	if err != nil || n == 0 {
		t.Fatalf("kevent: got %d, %v; want the end of file", n, err)
	}

	reregisterOnNewSocket(t, p, fd, 2)

	events := make([]Event, 8)
	j := b.translate(events, raw[:n], since)
	for _, ev := range events[:j] {
		if ev.Token == 2 && ev.flags&^flagReadable != 0 {
			t.Errorf("event queued under token 1, translated after token 2 replaced it: got token 2, %s; want at most readable", flagString(ev.flags))
		}
	}
}
