//go:build linux && tcpoll_kqsim && !tcpoll_poll

package poll

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKqsim holds the kqueue model (poll_kqsim_linux.go) to the kqueue(2)
// manual, a sentence a case. The sentences are FreeBSD's
// (lib/libc/sys/kqueue.2), which macOS's (xnu bsd/man/man2/kqueue.2) shares
// but for EVFILT_USER and the kevent-zero-events sentence; the one case
// the manual leaves out cites the kernel source.
func TestKqsim(t *testing.T) {
	for _, c := range []struct {
		name, man string
		test      func(t *testing.T, kq int)
	}{
		{"identity", "A kevent is identified by the (ident, filter) pair; there may only be one unique kevent per kqueue. " +
			"[EV_ADD] Re-adding an existing event will modify the parameters of the original event, and not result in a duplicate entry. " +
			"[udata] Opaque user-defined value passed through the kernel unchanged.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				var first, second byte
				for _, u := range []*byte{&first, &second} {
					if err := kqChange(kq, kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evAdd, Udata: u}); err != nil {
						t.Fatalf("EV_ADD: %v", err)
					}
				}
				kqWrite(t, b, "x")
				evs := kqEvents(t, kq, patience)
				if len(evs) != 1 || evs[0].Udata != &second {
					t.Errorf("events after two EV_ADDs: got %+v, want one with the second udata", evs)
				}
			}},
		{"initial registration", "The filter is executed upon the initial registration of a kevent in order to detect whether a preexisting condition is present",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqWrite(t, b, "x")
				kqAdd(t, kq, a, evfiltRead, 0)
				if evs := kqEvents(t, kq, 0); len(evs) != 1 {
					t.Errorf("kevent with no timeout: got %+v, want the data written before EV_ADD", evs)
				}
			}},
		{"filter at retrieval", "If the filter indicates that the condition that triggered the event no longer holds, the kevent is removed from the kqueue and is not returned.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, 0)
				kqWrite(t, b, "x")
				kqRead(t, a)
				kqQuiet(t, kq)
			}},
		{"aggregation", "Multiple events which trigger the filter do not result in multiple kevents being placed on the kqueue; instead, the filter will aggregate the events into a single struct kevent.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, evClear)
				kqWrite(t, b, "ab")
				kqWrite(t, b, "cd")
				if evs := kqEvents(t, kq, patience); len(evs) != 1 || evs[0].Data != 4 {
					t.Errorf("events after two writes: got %+v, want one with data 4", evs)
				}
			}},
		{"close", "Calling close() on a file descriptor will remove any kevents that reference the descriptor.",
			func(t *testing.T, kq int) {
				a, b := openTestSocketpair(t)
				// A duplicate keeps the socket open, and epoll's
				// registration of it alive; the descriptor's knote goes.
				d, err := unix.Dup(a)
				if err != nil {
					t.Fatalf("dup: %v", err)
				}
				t.Cleanup(func() { unix.Close(d); unix.Close(b) })
				kqAdd(t, kq, a, evfiltRead, 0)
				unix.Close(a)
				kqWrite(t, b, "x")
				kqQuiet(t, kq)
				if err := kqChange(kq, kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evDelete}); err != unix.EBADF {
					t.Errorf("EV_DELETE of the closed descriptor: got %v, want EBADF", err)
				}
				// The same socket back under the number is a new descriptor.
				if err := unix.Dup2(d, a); err != nil {
					t.Fatalf("dup2: %v", err)
				}
				t.Cleanup(func() { unix.Close(a) })
				if err := kqChange(kq, kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evDelete}); err != unix.ENOENT {
					t.Errorf("EV_DELETE after the number came back: got %v, want ENOENT", err)
				}
				kqAdd(t, kq, a, evfiltRead, 0)
				kqFind(t, kq, a, evfiltRead)
			}},
		{"close, number reused", "Calling close() on a file descriptor will remove any kevents that reference the descriptor.",
			func(t *testing.T, kq int) {
				a, b := openTestSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, 0)
				kqWrite(t, b, "old")
				unix.Close(a)
				unix.Close(b)
				// The lowest free number is usually a again; if not, it is
				// put there.
				y, yPeer := openTestSocketpair(t)
				if yPeer == a {
					y, yPeer = yPeer, y
				}
				if y != a {
					err := unix.Dup2(y, a)
					unix.Close(y)
					if err != nil {
						unix.Close(yPeer)
						t.Fatalf("dup2: %v", err)
					}
				}
				t.Cleanup(func() { unix.Close(a); unix.Close(yPeer) })
				kqWrite(t, yPeer, "new")
				kqQuiet(t, kq)
			}},
		{"changes first", "All changes contained in the changelist are applied before any pending events are read from the queue.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqWrite(t, b, "x")
				ch := []kevent_t{{Ident: uint64(a), Filter: evfiltRead, Flags: evAdd}}
				evs := make([]kevent_t, 4)
				if n, err := kevent(kq, ch, evs, &unix.Timespec{}); err != nil || n != 1 || evs[0].Ident != uint64(a) {
					t.Errorf("kevent adding a readable socket: got %d, %v, %+v; want its event", n, err, evs[0])
				}
			}},
		{"no events, no wait", "When nevents is zero, kevent() will return immediately even if there is a timeout specified unlike select(2).",
			func(t *testing.T, kq int) {
				a, _ := testSocketpair(t)
				ts := unix.NsecToTimespec(int64(patience))
				start := time.Now()
				ch := []kevent_t{{Ident: uint64(a), Filter: evfiltRead, Flags: evAdd}}
				if _, err := kevent(kq, ch, nil, &ts); err != nil || time.Since(start) > patience/2 {
					t.Errorf("kevent with changes only: got %v after %v, want nil at once", err, time.Since(start))
				}
			}},
		{"EV_ADD with EV_DISABLE", "Adding an event automatically enables it, unless overridden by the EV_DISABLE flag.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqWrite(t, b, "x")
				kqAdd(t, kq, a, evfiltRead, evDisable)
				kqQuiet(t, kq)
				kqAdd(t, kq, a, evfiltRead, evEnable)
				kqFind(t, kq, a, evfiltRead)
			}},
		{"EV_DISABLE", "Disable the event so kevent() will not return it. The filter itself is not disabled.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, evClear)
				if err := kqChange(kq, kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evDisable}); err != nil {
					t.Fatalf("EV_DISABLE: %v", err)
				}
				kqWrite(t, b, "x")
				kqQuiet(t, kq)
				if err := kqChange(kq, kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evEnable}); err != nil {
					t.Fatalf("EV_ENABLE: %v", err)
				}
				kqFind(t, kq, a, evfiltRead)
			}},
		{"EV_DELETE", "Removes the event from the kqueue. " +
			"[ERRORS] ENOENT The event could not be found to be modified or deleted.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, 0)
				del := kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evDelete}
				if err := kqChange(kq, del); err != nil {
					t.Fatalf("EV_DELETE: %v", err)
				}
				kqWrite(t, b, "x")
				kqQuiet(t, kq)
				if err := kqChange(kq, del); err != unix.ENOENT {
					t.Errorf("EV_DELETE again: got %v, want ENOENT", err)
				}
				if err := kqChange(kq, kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evEnable}); err != unix.ENOENT {
					t.Errorf("EV_ENABLE of no event: got %v, want ENOENT", err)
				}
			}},
		{"EV_RECEIPT", "This flag is useful for making bulk changes to a kqueue without draining any pending events. " +
			"When passed as input, it forces EV_ERROR to always be returned. When a filter is successfully added the data field will be zero.",
			func(t *testing.T, kq int) {
				pending, b := testSocketpair(t)
				kqWrite(t, b, "x")
				kqAdd(t, kq, pending, evfiltRead, 0)
				c, d := testSocketpair(t)
				ch := []kevent_t{
					{Ident: uint64(c), Filter: evfiltRead, Flags: evAdd | evReceipt},
					{Ident: uint64(d), Filter: evfiltWrite, Flags: evAdd | evReceipt},
				}
				evs := make([]kevent_t, 4)
				n, err := kevent(kq, ch, evs, &unix.Timespec{})
				if err != nil || n != 2 {
					t.Fatalf("kevent with two receipts: got %d, %v; want 2 replies", n, err)
				}
				for _, ev := range evs[:n] {
					if ev.Flags != evError || ev.Data != 0 {
						t.Errorf("receipt: got flags %#x, data %d; want EV_ERROR, 0", ev.Flags, ev.Data)
					}
				}
				kqFind(t, kq, pending, evfiltRead)
			}},
		{"EV_ONESHOT", "Causes the event to return only the first occurrence of the filter being triggered. After the user retrieves the event from the kqueue, it is deleted.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, evOneshot)
				kqWrite(t, b, "x")
				kqFind(t, kq, a, evfiltRead)
				kqQuiet(t, kq)
				if err := kqChange(kq, kevent_t{Ident: uint64(a), Filter: evfiltRead, Flags: evDelete}); err != unix.ENOENT {
					t.Errorf("EV_DELETE after the one shot: got %v, want ENOENT", err)
				}
			}},
		{"EV_CLEAR", "After the event is retrieved by the user, its state is reset. This is useful for filters which report state transitions instead of the current state.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, evClear)
				kqWrite(t, b, "x")
				kqFind(t, kq, a, evfiltRead)
				kqQuiet(t, kq) // unread, but reported
				kqWrite(t, b, "y")
				if ev := kqFind(t, kq, a, evfiltRead); ev.Data != 2 {
					t.Errorf("event after more data: got data %d, want 2", ev.Data)
				}
			}},
		{"level", "[EVFILT_READ] Takes a descriptor as the identifier, and returns whenever there is data available to read.",
			func(t *testing.T, kq int) {
				a, b := testSocketpair(t)
				kqAdd(t, kq, a, evfiltRead, 0)
				kqWrite(t, b, "x")
				for range 3 {
					kqFind(t, kq, a, evfiltRead)
				}
				kqRead(t, a)
				kqQuiet(t, kq)
			}},
		{"listen", "Sockets which have previously been passed to listen() return when there is an incoming connection pending. data contains the size of the listen backlog.",
			func(t *testing.T, kq int) {
				ln := kqListen(t)
				kqAdd(t, kq, ln, evfiltRead, 0)
				kqDial(t, ln)
				kqDial(t, ln)
				kqFindWhere(t, kq, ln, evfiltRead, func(ev kevent_t) bool { return ev.Data == 2 })
			}},
		{"read data", "On return, data contains the number of bytes of protocol data available to read.",
			func(t *testing.T, kq int) {
				a, b := kqTCPPair(t)
				kqAdd(t, kq, a, evfiltRead, 0)
				kqWrite(t, b, "hello")
				kqFindWhere(t, kq, a, evfiltRead, func(ev kevent_t) bool { return ev.Data == 5 })
			}},
		{"read EOF", "If the read direction of the socket has shutdown, then the filter also sets EV_EOF in flags, and returns the socket error (if any) in fflags. " +
			"It is possible for EOF to be returned (indicating the connection is gone) while there is still data pending in the socket buffer.",
			func(t *testing.T, kq int) {
				a, b := kqTCPPair(t)
				kqAdd(t, kq, a, evfiltRead, 0)
				kqWrite(t, b, "bye")
				unix.Shutdown(b, unix.SHUT_WR)
				ev := kqFindWhere(t, kq, a, evfiltRead, func(ev kevent_t) bool { return ev.Flags&evEOF != 0 })
				if ev.Data != 3 || ev.Fflags != 0 {
					t.Errorf("EV_EOF: got data %d, fflags %d; want the 3 bytes still unread, no error", ev.Data, ev.Fflags)
				}
			}},
		{"socket error", "If the read direction of the socket has shutdown, then the filter also sets EV_EOF in flags, and returns the socket error (if any) in fflags.",
			func(t *testing.T, kq int) {
				a, b := kqTCPPair(t)
				kqAdd(t, kq, a, evfiltRead, 0)
				kqReset(t, b)
				ev := kqFindWhere(t, kq, a, evfiltRead, func(ev kevent_t) bool { return ev.Fflags != 0 })
				if ev.Flags&evEOF == 0 {
					t.Errorf("reset: got flags %#x, want EV_EOF", ev.Flags)
				}
				// The model must leave the error for the read.
				var buf [8]byte
				if _, err := unix.Read(a, buf[:]); err != unix.ECONNRESET {
					t.Errorf("read after the reset was reported: got %v, want ECONNRESET", err)
				}
			}},
		{"pipe EOF", "[Fifos, Pipes] When the last writer disconnects, the filter will set EV_EOF in flags.",
			func(t *testing.T, kq int) {
				r, w := kqPipe(t)
				t.Cleanup(func() { unix.Close(r) })
				kqAdd(t, kq, r, evfiltRead, 0)
				unix.Close(w)
				if ev := kqFind(t, kq, r, evfiltRead); ev.Flags&evEOF == 0 {
					t.Errorf("after the writer closed: got flags %#x, want EV_EOF", ev.Flags)
				}
			}},
		{"write data", "[EVFILT_WRITE] For sockets, pipes and fifos, data will contain the amount of space remaining in the write buffer.",
			func(t *testing.T, kq int) {
				r, w := kqPipe(t)
				t.Cleanup(func() { unix.Close(r); unix.Close(w) })
				size, err := unix.FcntlInt(uintptr(w), unix.F_GETPIPE_SZ, 0)
				if err != nil {
					t.Fatalf("F_GETPIPE_SZ: %v", err)
				}
				kqWrite(t, w, "0123456789")
				kqAdd(t, kq, w, evfiltWrite, 0)
				if ev := kqFind(t, kq, w, evfiltWrite); ev.Data != int64(size-10) {
					t.Errorf("pipe of %d bytes holding 10: got data %d, want %d", size, ev.Data, size-10)
				}

				// A Unix socket's SIOCOUTQ counts what its peer has not
				// read; a TCP one's, what is not acknowledged, which on
				// the loopback interface is soon nothing.
				a, _ := testSocketpair(t)
				kqAdd(t, kq, a, evfiltWrite, 0)
				before := kqFind(t, kq, a, evfiltWrite).Data
				kqWrite(t, a, string(make([]byte, 1000)))
				if after := kqFind(t, kq, a, evfiltWrite).Data; after > before-1000 {
					t.Errorf("socket: got data %d, then %d after writing 1000 bytes; want it 1000 lower at least", before, after)
				}
			}},
		{"write EOF", "The filter will set EV_EOF when the reader disconnects",
			func(t *testing.T, kq int) {
				r, w := kqPipe(t)
				t.Cleanup(func() { unix.Close(w) })
				kqAdd(t, kq, w, evfiltWrite, evClear)
				kqFind(t, kq, w, evfiltWrite)
				unix.Close(r)
				if ev := kqFind(t, kq, w, evfiltWrite); ev.Flags&evEOF == 0 {
					t.Errorf("pipe after the reader closed: got flags %#x, want EV_EOF", ev.Flags)
				}
			}},
		{"write EOF, socket error", "[EVFILT_WRITE] For sockets, the low water mark and socket error handling is identical to the EVFILT_READ case.",
			func(t *testing.T, kq int) {
				a, b := kqTCPPair(t)
				kqAdd(t, kq, a, evfiltWrite, 0)
				kqReset(t, b)
				ev := kqFindWhere(t, kq, a, evfiltWrite, func(ev kevent_t) bool { return ev.Flags&evEOF != 0 })
				if ev.Fflags == 0 {
					t.Errorf("write filter after a reset: got EV_EOF with fflags 0, want the socket error")
				}
			}},
		{"write EOF, own shutdown", "[FreeBSD filt_sowrite, uipc_socket.c] if (so->so_snd.sb_state & SBS_CANTSENDMORE) { kn->kn_flags |= EV_EOF; kn->kn_fflags = so->so_error; return (1); }",
			func(t *testing.T, kq int) {
				a, _ := kqTCPPair(t)
				kqAdd(t, kq, a, evfiltWrite, 0)
				unix.Shutdown(a, unix.SHUT_WR)
				if ev := kqFind(t, kq, a, evfiltWrite); ev.Flags&evEOF == 0 || ev.Fflags != 0 {
					t.Errorf("after shutdown(SHUT_WR): got flags %#x, fflags %d; want EV_EOF, no error", ev.Flags, ev.Fflags)
				}
			}},
		{"EVFILT_USER", "Establishes a user event identified by ident which is not associated with any kernel mechanism but is triggered by user level code. " +
			"[NOTE_TRIGGER] Cause the event to be triggered.",
			func(t *testing.T, kq int) {
				const ident = 7
				kqAdd(t, kq, ident, evfiltUser, evClear)
				kqQuiet(t, kq)
				if err := kqChange(kq, kevent_t{Ident: ident, Filter: evfiltUser, Fflags: noteTrigger}); err != nil {
					t.Fatalf("NOTE_TRIGGER: %v", err)
				}
				kqFind(t, kq, ident, evfiltUser)
				kqQuiet(t, kq)
			}},
		{"wait without timeout", "If timeout is a NULL pointer, kevent() waits indefinitely.",
			func(t *testing.T, kq int) {
				const ident = 8
				kqAdd(t, kq, ident, evfiltUser, evClear)
				got := make(chan int, 1)
				go func() {
					evs := make([]kevent_t, 4)
					n, _ := kevent(kq, nil, evs, nil)
					got <- n
				}()
				select {
				case n := <-got:
					t.Fatalf("kevent with no timeout returned %d before anything happened", n)
				case <-time.After(kqQuietTime):
				}
				if err := kqChange(kq, kevent_t{Ident: ident, Filter: evfiltUser, Fflags: noteTrigger}); err != nil {
					t.Fatalf("NOTE_TRIGGER: %v", err)
				}
				select {
				case n := <-got:
					if n != 1 {
						t.Errorf("woken kevent: got %d events, want 1", n)
					}
				case <-time.After(patience):
					t.Fatalf("kevent still blocked %v after NOTE_TRIGGER", patience)
				}
			}},
		{"EV_ERROR", "If an error occurs while processing an element of the changelist and there is enough room in the eventlist, then the event will be placed in the eventlist with EV_ERROR set in flags and the system error in data. " +
			"Otherwise, -1 will be returned, and errno will be set to indicate the error condition.",
			func(t *testing.T, kq int) {
				a, _ := testSocketpair(t)
				ch := []kevent_t{{Ident: uint64(a), Filter: evfiltRead, Flags: evDelete}}
				evs := make([]kevent_t, 4)
				n, err := kevent(kq, ch, evs, nil)
				if err != nil || n != 1 || evs[0].Flags != evError || evs[0].Data != int64(unix.ENOENT) {
					t.Errorf("failing change with room: got %d, %v, %+v; want one EV_ERROR with ENOENT", n, err, evs[0])
				}
				if _, err := kevent(kq, ch, nil, nil); err != unix.ENOENT {
					t.Errorf("failing change without room: got %v, want ENOENT", err)
				}
			}},
		{"EINVAL", "[ERRORS] EINVAL The specified time limit or filter is invalid.",
			func(t *testing.T, kq int) {
				if err := kqChange(kq, kevent_t{Ident: 1, Filter: 99, Flags: evAdd}); err != unix.EINVAL {
					t.Errorf("EV_ADD of filter 99: got %v, want EINVAL", err)
				}
			}},
		{"EBADF", "[ERRORS] EBADF The specified descriptor is invalid.",
			func(t *testing.T, kq int) {
				r, w := kqPipe(t)
				unix.Close(r)
				unix.Close(w)
				if err := kqChange(kq, kevent_t{Ident: uint64(w), Filter: evfiltWrite, Flags: evAdd}); err != unix.EBADF {
					t.Errorf("EV_ADD of a closed descriptor: got %v, want EBADF", err)
				}
			}},
		{"timeout", "If the time limit expires, then kevent() returns 0.",
			func(t *testing.T, kq int) {
				const d = 30 * time.Millisecond
				ts := unix.NsecToTimespec(int64(d))
				start := time.Now()
				n, err := kevent(kq, nil, make([]kevent_t, 4), &ts)
				if elapsed := time.Since(start); n != 0 || err != nil || elapsed < d {
					t.Errorf("kevent(%v) with nothing registered: got %d, %v after %v; want 0, nil after the timeout", d, n, err, elapsed)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			kq, err := kqueue()
			if err != nil {
				t.Fatalf("kqueue: %v", err)
			}
			t.Cleanup(func() { closeKqueue(kq) })
			c.test(t, kq)
			if t.Failed() {
				t.Logf("kqueue(2): %s", c.man)
			}
		})
	}
}

// kqQuietTime is how long kqQuiet watches for an event that must not come.
const kqQuietTime = 50 * time.Millisecond

func kqChange(kq int, ch kevent_t) error {
	_, err := kevent(kq, []kevent_t{ch}, nil, nil)
	return err
}

func kqAdd(t *testing.T, kq, ident int, filter int16, flags uint16) {
	t.Helper()
	if err := kqChange(kq, kevent_t{Ident: uint64(ident), Filter: filter, Flags: evAdd | flags}); err != nil {
		t.Fatalf("EV_ADD of %d, filter %d: %v", ident, filter, err)
	}
}

// kqEvents is one kevent call that waits up to d.
func kqEvents(t *testing.T, kq int, d time.Duration) []kevent_t {
	t.Helper()
	evs := make([]kevent_t, 8)
	ts := unix.NsecToTimespec(int64(d))
	n, err := kevent(kq, nil, evs, &ts)
	if err != nil && err != unix.EINTR {
		t.Fatalf("kevent: %v", err)
	}
	return evs[:n]
}

// kqFind waits for an event of the knote (ident, filter).
func kqFind(t *testing.T, kq, ident int, filter int16) kevent_t {
	t.Helper()
	return kqFindWhere(t, kq, ident, filter, func(kevent_t) bool { return true })
}

// kqFindWhere waits for an event of the knote (ident, filter) that
// satisfies ok.
func kqFindWhere(t *testing.T, kq, ident int, filter int16, ok func(kevent_t) bool) kevent_t {
	t.Helper()
	var last []kevent_t
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); {
		for _, ev := range kqEvents(t, kq, 10*time.Millisecond) {
			if ev.Ident == uint64(ident) && ev.Filter == filter && ok(ev) {
				return ev
			}
			last = append(last, ev)
		}
	}
	t.Fatalf("no event for %d, filter %d, after %v; events: %+v", ident, filter, patience, last)
	return kevent_t{}
}

func kqQuiet(t *testing.T, kq int) {
	t.Helper()
	if evs := kqEvents(t, kq, kqQuietTime); len(evs) != 0 {
		t.Errorf("kevent: got %+v, want nothing", evs)
	}
}

func kqWrite(t *testing.T, fd int, s string) {
	t.Helper()
	if n, err := unix.Write(fd, []byte(s)); n != len(s) || err != nil {
		t.Fatalf("write: got %d, %v; want %d, nil", n, err, len(s))
	}
}

// kqRead reads fd until it would block.
func kqRead(t *testing.T, fd int) {
	t.Helper()
	var buf [4096]byte
	for {
		if _, err := unix.Read(fd, buf[:]); err == unix.EAGAIN {
			return
		} else if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

// kqPipe returns a non-blocking pipe. The caller closes it.
func kqPipe(t *testing.T) (r, w int) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatalf("pipe2: %v", err)
	}
	return fds[0], fds[1]
}

// kqListen returns a listening TCP socket on the loopback interface,
// closed when the test ends.
func kqListen(t *testing.T) int {
	t.Helper()
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(ln) })
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Listen(ln, 8); err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

// kqDial connects to ln and returns the client's end, non-blocking and
// closed when the test ends.
func kqDial(t *testing.T, ln int) int {
	t.Helper()
	sa, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(c) })
	if err := unix.Connect(c, sa); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := unix.SetNonblock(c, true); err != nil {
		t.Fatalf("set non-blocking: %v", err)
	}
	return c
}

// kqTCPPair returns both ends of a loopback TCP connection, non-blocking
// and closed when the test ends.
func kqTCPPair(t *testing.T) (a, b int) {
	t.Helper()
	ln := kqListen(t)
	b = kqDial(t, ln)
	for deadline := time.Now().Add(patience); ; {
		fd, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == nil {
			t.Cleanup(func() { unix.Close(fd) })
			return fd, b
		}
		if !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			t.Fatalf("accept: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// kqReset closes the socket fd with SO_LINGER 0, which sends a reset. The
// number stays taken, by /dev/null, for the test's cleanup to close.
func kqReset(t *testing.T, fd int) {
	t.Helper()
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		t.Fatalf("SO_LINGER: %v", err)
	}
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/null: %v", err)
	}
	err = unix.Dup2(null, fd)
	unix.Close(null)
	if err != nil {
		t.Fatalf("dup2: %v", err)
	}
}
