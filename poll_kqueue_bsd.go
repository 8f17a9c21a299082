//go:build (darwin || dragonfly || freebsd || netbsd || openbsd || (linux && tcpoll_kqsim)) && !tcpoll_poll

package poll

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The translation in poll_kqueue_flags.go keeps its own copies of these bits
// so that it builds and is tested everywhere; an index out of range stops
// the build here if a copy is wrong.
var (
	_ = [1]struct{}{}[kevEOF-evEOF]
	_ = [1]struct{}{}[kevError-evError]
)

// maxWaitMillis caps one kevent sleep at 1e6 seconds, as Go's runtime does:
// "Darwin returns EINVAL if the sleep time is too long"
// (runtime/netpoll_kqueue.go). OpenBSD cuts sleeps at 24 hours by itself
// (its kqueue(2), BUGS). Wait sleeps again for what is left.
const maxWaitMillis = 1e6 * 1000

// noToken marks a free slot in the token table. It is the wake-up token,
// which Add and Modify refuse, so no registration carries it.
const noToken = wakeToken

// backend is kqueue(2) with a wake-up from poll_kqueue_user.go (EVFILT_USER)
// or poll_kqueue_pipe.go (a pipe). The kevent type, constants and system
// calls are poll_kqueue_sys.go's, x/sys/unix's; with -tags tcpoll_kqsim
// on Linux they are the kqueue model of poll_kqsim_linux.go, so that this
// code runs under the test suite there too.
//
// Each descriptor gets an EVFILT_READ and an EVFILT_WRITE knote, enabled or
// disabled by the interest. Tokens are not stored in the knotes' udata: its
// type differs between systems, and a token in a *byte field would be a
// bad pointer to the garbage collector (and a small one trips checkptr
// under -race). They live in a table indexed by descriptor instead, which
// Wait reads after kevent returns; see translate for how an event keeps
// the token in force when the kernel reported it.
type backend struct {
	kq    int
	waker waker
	// woken is set by the Wake that triggers the waker and cleared by the
	// Wait that drains it, so Wakes in between cost no system call.
	woken atomic.Bool

	// mu guards slots, indexed by descriptor, and seq. ctl holds it across
	// its table update and its kevent change list, which never blocks, so
	// that Wait, which takes it once per batch to translate, sees each
	// registration change whole: before or after, in the table and in the
	// kernel alike.
	mu    sync.Mutex
	slots []fdSlot
	seq   uint64 // counts registration changes

	raw []kevent_t
	ts  unix.Timespec // Wait's timeout, kept here so Wait does not allocate it
}

// What this backend reports, for the contract tests (export_test.go).
const (
	backendName           = "kqueue"
	edgeTriggered         = true
	reportsReadClosed     = true  // EV_EOF on the read filter
	hangUpWithoutInterest = false // a disabled knote reports nothing
)

// fdSlot is a descriptor's registration: its token, noToken if none, the
// interest it was given, and the value of seq after its last change.
type fdSlot struct {
	token uint64
	in    Interest
	seq   uint64
}

func (b *backend) init() error {
	// The read lock keeps a fork from another goroutine (syscall.ForkExec
	// takes ForkLock for writing) out of the window between kqueue and
	// FD_CLOEXEC, as net/sys_cloexec.go does for sockets on systems
	// without SOCK_CLOEXEC. kqueue(2) says a child does not inherit the
	// queue anyway; like the runtime's netpollinit, we set the flag
	// regardless.
	syscall.ForkLock.RLock()
	kq, err := kqueue()
	if err == nil {
		unix.CloseOnExec(kq)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return os.NewSyscallError("kqueue", err)
	}
	if err := b.waker.init(kq); err != nil {
		closeKqueue(kq)
		return err
	}
	b.kq = kq
	return nil
}

// applyChanges submits changes with no event list, so the first change that
// fails stops the call and comes back as its errno rather than as an
// EV_ERROR event (kqueue(2), RETURN VALUES).
func applyChanges(kq int, changes []kevent_t) error {
	for {
		_, err := kevent(kq, changes, nil, nil)
		if err == unix.EINTR {
			// Changes are applied before EINTR (NetBSD kqueue(2)); the
			// runtime retries anyway, and so do we.
			continue
		}
		return os.NewSyscallError("kevent", err)
	}
}

// knoteFlags is the change flags for one filter. EV_ADD on an existing knote
// modifies it (kqueue(2)), so Add and Modify use the same flags.
func knoteFlags(on, edge bool) int {
	f := evAdd | evDisable
	if on {
		f = evAdd | evEnable
	}
	if edge {
		f |= evClear
	}
	return f
}

func (b *backend) ctl(fd int, token uint64, in Interest, o op) error {
	if fd < 0 {
		return os.NewSyscallError("kevent", unix.EBADF)
	}
	var changes [4]kevent_t
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == opDelete {
		setKevent(&changes[0], fd, evfiltRead, evDelete)
		setKevent(&changes[1], fd, evfiltWrite, evDelete)
		err := applyChanges(b.kq, changes[:2])
		b.set(fd, fdSlot{token: noToken})
		return err
	}
	old := b.slot(fd)
	if o == opModify && old.token == noToken {
		// ENOENT, as from EPOLL_CTL_MOD; EV_ADD would quietly register.
		return os.NewSyscallError("kevent", unix.ENOENT)
	}
	n := 0
	if o == opModify && (old.in^in)&EdgeTriggered != 0 {
		// EV_ADD on an existing knote updates its fflags, data and udata
		// but keeps its EV_CLEAR ("The user may change some filter values
		// after the initial EV_ADD", kqueue_register in FreeBSD's
		// kern_event.c; XNU's is alike), so a change of trigger replaces
		// the knotes, in the same call.
		setKevent(&changes[0], fd, evfiltRead, evDelete)
		setKevent(&changes[1], fd, evfiltWrite, evDelete)
		n = 2
	}
	edge := in&EdgeTriggered != 0
	setKevent(&changes[n], fd, evfiltRead, knoteFlags(in&Readable != 0, edge))
	setKevent(&changes[n+1], fd, evfiltWrite, knoteFlags(in&Writable != 0, edge))
	err := applyChanges(b.kq, changes[:n+2])
	if err == nil {
		b.set(fd, fdSlot{token: token, in: in})
		return nil
	}
	if o == opAdd && old.token == noToken {
		// The read knote may be in while the write one failed (a regular
		// file has no EVFILT_WRITE on FreeBSD). Left alone it would report
		// events no token maps, and Wait would spin.
		setKevent(&changes[0], fd, evfiltRead, evDelete)
		setKevent(&changes[1], fd, evfiltWrite, evDelete)
		applyChanges(b.kq, changes[:2])
		return err
	}
	// A Modify may have changed one knote and not the other: the old
	// registration stays, marked changed, so that Wait takes no condition
	// of this batch at its word.
	b.set(fd, old)
	return err
}

// slot returns fd's registration, with token noToken if there is none.
// b.mu is held.
func (b *backend) slot(fd int) fdSlot {
	if fd >= len(b.slots) {
		return fdSlot{token: noToken}
	}
	return b.slots[fd]
}

// set stores s as fd's registration, stamped with a new seq. b.mu is held.
func (b *backend) set(fd int, s fdSlot) {
	b.seq++
	s.seq = b.seq
	for len(b.slots) <= fd {
		if s.token == noToken {
			return
		}
		b.slots = append(b.slots, fdSlot{token: noToken})
	}
	b.slots[fd] = s
}

func (b *backend) wait(events []Event, timeout time.Duration) (int, error) {
	if cap(b.raw) < len(events) {
		b.raw = make([]kevent_t, len(events))
	}
	raw := b.raw[:len(events)]
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		b.mu.Lock()
		since := b.seq
		b.mu.Unlock()
		n, err := kevent(b.kq, nil, raw, b.timespec(timeout))
		if err == unix.ETIMEDOUT {
			// Seen from macOS kevent; the runtime ignores it too
			// (runtime/netpoll_kqueue.go, go.dev/issue/59679).
			n, err = 0, nil
		}
		if err == unix.EINTR {
			if timeout > 0 {
				timeout = max(time.Until(deadline), 0)
			}
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("kevent", err)
		}
		if n == 0 && timeout > 0 {
			// A capped sleep ended before the deadline: sleep the rest.
			if timeout = time.Until(deadline); timeout > 0 {
				continue
			}
		}
		return b.translate(events, raw[:n], since), nil
	}
}

// timespec returns the kevent timeout for a Wait timeout: nil to block,
// else b.ts, rounded up to a millisecond and capped at maxWaitMillis.
func (b *backend) timespec(timeout time.Duration) *unix.Timespec {
	ms := timeoutMillis(timeout)
	if ms < 0 {
		return nil
	}
	b.ts = unix.NsecToTimespec(int64(min(ms, maxWaitMillis)) * int64(time.Millisecond))
	return &b.ts
}

// translate fills events from raw and returns how many it filled. The wake
// event is drained and left out, and so are events of descriptors deleted
// since the kernel queued them.
//
// since is b.seq before the kevent call that returned raw. A registration
// stamped later was changed by a ctl that finished after kevent started,
// so its event may have been copied out under the old registration or the
// new one, and nothing in a kevent tells which. The table only knows the
// new token, so such an event keeps only what cannot mislead under it:
// Readable and Writable, as far as the new interest asks (kqueueHint). A
// spurious one of those is allowed; an old connection's EOF or error is
// never pinned on a new token. Nothing is lost: a level-triggered knote
// reports again at the next Wait, and an edge-triggered caller's read or
// write to EAGAIN finds the end of file or the error itself.
func (b *backend) translate(events []Event, raw []kevent_t, since uint64) int {
	woke := false
	j := 0
	b.mu.Lock()
	for i := range raw {
		ev := &raw[i]
		if b.waker.is(ev) {
			woke = true
			continue
		}
		f := kqueueFlags(filterOf(ev), uint32(ev.Flags), ev.Fflags)
		// Ident is uint32 or uint64 by system; uint64 holds either.
		if f == 0 || uint64(ev.Ident) >= uint64(len(b.slots)) {
			continue
		}
		s := &b.slots[ev.Ident]
		if s.token == noToken {
			continue
		}
		if s.seq > since {
			if f = kqueueHint(f, s.in); f == 0 {
				continue
			}
		}
		events[j] = Event{Token: s.token, flags: f}
		j++
	}
	b.mu.Unlock()
	if woke {
		b.waker.drain()
		// Cleared after the drain: a Wake that finds it still set has
		// been absorbed by this return.
		b.woken.Store(false)
	}
	return j
}

// filterOf maps the system's filter number to a kevFilter. The field is
// int16, or uint32 on NetBSD; compared with the system's own untyped
// constants it needs no widening, as each fits the field's type.
func filterOf(ev *kevent_t) kevFilter {
	switch ev.Filter {
	case evfiltRead:
		return kevRead
	case evfiltWrite:
		return kevWrite
	}
	return kevOther
}

func (b *backend) wake() error {
	if !b.woken.CompareAndSwap(false, true) {
		return nil
	}
	err := b.waker.trigger(b.kq)
	if err != nil {
		// Nothing is pending for a Wait to drain, so let the next Wake
		// try again.
		b.woken.Store(false)
	}
	return err
}

func (b *backend) close() error {
	werr := b.waker.close()
	return errors.Join(werr, os.NewSyscallError("close", closeKqueue(b.kq)))
}
