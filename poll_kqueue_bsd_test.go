//go:build (darwin || dragonfly || freebsd || netbsd || openbsd || (linux && tcpoll_kqsim)) && !tcpoll_poll

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
	raw := make([]kevent_t, 8)
	ts := unix.NsecToTimespec(int64(patience))
	n, err := kevent(b.kq, nil, raw, &ts)
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

// TestKqueueDeleteLeavesNoKnote checks that Delete takes both of a
// descriptor's knotes out of the kernel. The token table hides a knote
// left behind from Wait, which drops its events, but the knote still
// costs every kevent, and a level-triggered one ends every Wait at once.
func TestKqueueDeleteLeavesNoKnote(t *testing.T) {
	p := newTestPoller(t)
	a, b := testSocketpair(t)
	if err := p.Add(a, 1, Readable|Writable); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if _, err := unix.Write(b, []byte("x")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := p.Delete(a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	raw := make([]kevent_t, 8)
	n, err := kevent(p.b.kq, nil, raw, &unix.Timespec{})
	if err != nil {
		t.Fatalf("kevent: %v", err)
	}
	for _, ev := range raw[:n] {
		if !p.b.waker.is(&ev) {
			t.Errorf("kevent after Delete of the readable and writable %d: got filter %d of %d, want no knote left", a, ev.Filter, ev.Ident)
		}
	}
}
