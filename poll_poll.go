//go:build aix || solaris || (tcpoll_poll && (linux || darwin || dragonfly || freebsd || netbsd || openbsd))

package poll

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// backend is poll(2): the default where there is neither epoll nor kqueue
// (Solaris, illumos, AIX), and everywhere with -tags tcpoll_poll. Its wake-up
// is a wakefd, an eventfd on Linux (poll_eventfd_linux.go) and a pipe
// elsewhere (poll_pipe.go), at index 0 of the pollfd array.
//
// The kernel keeps no registrations, so the backend does: ctl edits a table
// under mu, and Wait polls a copy of it, taken whenever the table has
// changed, so that poll(2) never reads memory another goroutine writes. A
// change made while Wait is in poll(2) wakes it through the wakefd (at most
// once per poll: kicked), and Wait polls the new copy without returning,
// so a registration takes effect at once and a deleted descriptor leaves
// the array at once. Each registration carries a
// sequence number; an entry of the copy whose registration has changed
// since the copy was taken is not reported (the next poll looks at the
// registration now in force, and registrations are level-triggered, so
// nothing is lost).
type backend struct {
	wakefd wakefd
	// woken is set by the Wake that signals the wakefd and cleared by the
	// Wait that drains it, so Wakes in between cost no system call. A
	// drained wakefd with woken clear was signalled by ctl, not by Wake.
	woken atomic.Bool

	mu sync.Mutex
	// pfds and regs are the registrations, index 0 the wakefd; index maps
	// a descriptor to its position in them, 0 if unregistered.
	pfds  []unix.PollFd
	regs  []pollReg
	index []int32
	seq   uint64 // the last sequence number handed out
	// dirty says the table has changed since Wait copied it; polling that
	// Wait is in poll(2), kicked that a ctl has signalled it since.
	dirty, polling, kicked bool

	// Wait's copy of the table; only the goroutine in Wait touches them
	// outside mu.
	wfds  []unix.PollFd
	wregs []pollReg
	// next is where the scan of a batch starts, so that when events is
	// shorter than the ready set, the entries at the end get their turn.
	next int
}

// pollReg is one registration: its token and a sequence number that
// changes with every Add and Modify.
type pollReg struct {
	token uint64
	seq   uint64
}

// What this backend reports, for the contract tests (export_test.go).
const (
	backendName       = "poll"
	edgeTriggered     = false
	reportsReadClosed = pollRDHUP != 0 || pollHUPIsEOF
	// poll(2) reports POLLHUP and POLLERR whatever was asked, except on
	// macOS, where it asks kqueue for nothing.
	hangUpWithoutInterest = !pollHUPIsEOF
)

// pollHUPIsEOF is set where POLLHUP means "one direction has closed" rather
// than "closed both ways". macOS builds poll(2) on kqueue, and XNU's
// poll_callback sets POLLHUP for EV_EOF on either filter: the read filter's
// (the peer's shutdown(SHUT_WR)) and the write filter's (our own). It
// registers a filter only for what was asked.
const pollHUPIsEOF = runtime.GOOS == "darwin" || runtime.GOOS == "ios"

var (
	// errEdgeTriggered is why the contract in poll.go has poll(2) refuse
	// EdgeTriggered.
	errEdgeTriggered = fmt.Errorf("poll: the poll(2) backend has no edge-triggered registrations, only level-triggered: %w", errors.ErrUnsupported)
	errRegistered    = fmt.Errorf("poll: descriptor already registered: %w", unix.EEXIST)
	errNotRegistered = fmt.Errorf("poll: descriptor not registered: %w", unix.ENOENT)
)

func (b *backend) init() error {
	if err := b.wakefd.open(); err != nil {
		return err
	}
	var pfd unix.PollFd
	pfd.Fd = int32(b.wakefd.readFD())
	setBits(&pfd.Events, unix.POLLIN)
	b.pfds = append(b.pfds, pfd)
	b.regs = append(b.regs, pollReg{token: wakeToken})
	b.dirty = true
	return nil
}

// pollInterest is the events bits poll(2) is asked for. POLLHUP, POLLERR
// and POLLNVAL need no asking.
func pollInterest(in Interest) uint32 {
	var bits uint32
	if in&Readable != 0 {
		// RDHUP only with Readable, as for epoll. It is 0 where the
		// system has no POLLRDHUP.
		bits |= unix.POLLIN | pollRDHUP
	}
	if in&Writable != 0 {
		bits |= unix.POLLOUT
	}
	return bits
}

// pollFlags translates one pollfd: events is what was asked and revents
// what poll(2) reported, both widened to 32 bits. hupIsEOF is
// pollHUPIsEOF, a parameter so that both meanings are tested everywhere.
//
// As in epollFlags, POLLHUP and POLLERR mark the descriptor readable and
// writable, so that the next read or write returns the condition. Where
// POLLHUP means closed both ways (Linux, the BSDs, Solaris) it is HangUp
// and ReadClosed. On macOS it is the EOF of whichever filter poll(2)
// registered, so it is ReadClosed only when reading alone was asked, and
// otherwise says no more than readable and writable. POLLNVAL (the
// descriptor is not open) translates to nothing: Wait drops the
// registration.
func pollFlags(events, revents uint32, hupIsEOF bool) flags {
	var f flags
	if revents&(unix.POLLIN|unix.POLLPRI|unix.POLLHUP|unix.POLLERR|pollRDHUP) != 0 {
		f |= flagReadable
	}
	if revents&(unix.POLLOUT|unix.POLLHUP|unix.POLLERR) != 0 {
		f |= flagWritable
	}
	if revents&pollRDHUP != 0 {
		f |= flagReadClosed
	}
	if revents&unix.POLLHUP != 0 {
		switch {
		case !hupIsEOF:
			f |= flagReadClosed | flagHangUp
		case events&unix.POLLOUT == 0:
			f |= flagReadClosed
		}
	}
	if revents&unix.POLLERR != 0 {
		f |= flagError
	}
	return f
}

// setBits stores bits in a pollfd's events field, int16 on most systems
// and uint16 on AIX.
func setBits[T int16 | uint16](field *T, bits uint32) { *field = T(bits) }

// bitsOf widens a pollfd's events or revents field.
func bitsOf[T int16 | uint16](field T) uint32 { return uint32(uint16(field)) }

func (b *backend) ctl(fd int, token uint64, in Interest, o op) error {
	if o != opDelete && in&EdgeTriggered != 0 {
		return errEdgeTriggered
	}
	if o == opAdd {
		// The kernel would only say POLLNVAL, at the next Wait: check now,
		// so that Add fails on a closed descriptor as epoll_ctl and kevent
		// do.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return os.NewSyscallError("fcntl", err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.lookup(fd)
	switch o {
	case opAdd:
		if k != 0 {
			return errRegistered
		}
		for len(b.index) <= fd {
			b.index = append(b.index, 0)
		}
		b.index[fd] = int32(len(b.pfds))
		var pfd unix.PollFd
		pfd.Fd = int32(fd)
		setBits(&pfd.Events, pollInterest(in))
		b.pfds = append(b.pfds, pfd)
		b.seq++
		b.regs = append(b.regs, pollReg{token: token, seq: b.seq})
	case opModify:
		if k == 0 {
			return errNotRegistered
		}
		setBits(&b.pfds[k].Events, pollInterest(in))
		b.seq++
		b.regs[k] = pollReg{token: token, seq: b.seq}
	case opDelete:
		if k == 0 {
			return errNotRegistered
		}
		b.remove(k)
	}
	b.changed()
	return nil
}

// lookup returns fd's position in the table, 0 if it is not registered.
// b.mu is held.
func (b *backend) lookup(fd int) int {
	if uint(fd) >= uint(len(b.index)) {
		return 0
	}
	return int(b.index[fd])
}

// remove deletes the registration at position k, moving the last one into
// its place; the caller calls changed. b.mu is held.
func (b *backend) remove(k int) {
	last := len(b.pfds) - 1
	b.index[b.pfds[k].Fd] = 0
	if k != last {
		b.pfds[k], b.regs[k] = b.pfds[last], b.regs[last]
		b.index[b.pfds[k].Fd] = int32(k)
	}
	b.pfds, b.regs = b.pfds[:last], b.regs[:last]
}

// changed marks the table changed and wakes a Wait that is polling an
// older copy. b.mu is held.
func (b *backend) changed() {
	b.dirty = true
	if b.polling && !b.kicked && b.wakefd.signal() == nil {
		// On an error nothing was written: the next change tries again.
		b.kicked = true
	}
}

func (b *backend) wait(events []Event, timeout time.Duration) (int, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		b.refresh()
		n, err := unix.Poll(b.wfds, timeoutMillis(timeout))
		if err != nil {
			n = 0
		}
		j, woke, settled := b.settle(events, n)
		switch err {
		case nil:
			woken := false
			if woke {
				b.wakefd.drain()
				// Cleared after the drain: a Wake that finds it still set
				// has been absorbed by this return.
				woken = b.woken.Swap(false)
			}
			if j > 0 || woken || settled || timeout == 0 {
				return j, nil
			}
		case unix.EINTR:
		default:
			return 0, os.NewSyscallError("poll", err)
		}
		// Interrupted, timed out, or woken only by ctl or by entries that
		// changed meanwhile: poll the table as it is now, for the time
		// that is left.
		if timeout > 0 {
			if timeout = time.Until(deadline); timeout <= 0 {
				return 0, nil
			}
		}
	}
}

// refresh brings Wait's copy of the table up to date before a poll, and
// marks Wait as polling it, so that a change from now on wakes it.
func (b *backend) refresh() {
	b.mu.Lock()
	if b.dirty {
		b.wfds = append(b.wfds[:0], b.pfds...)
		b.wregs = append(b.wregs[:0], b.regs...)
		b.dirty = false
	}
	b.polling = true
	b.mu.Unlock()
}

// settle ends a poll that reported n ready entries: see translate.
func (b *backend) settle(events []Event, n int) (j int, woke, settled bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.polling, b.kicked = false, false
	if n == 0 {
		return 0, false, false
	}
	return b.translate(events, n)
}

// translate fills events from Wait's copy after poll(2) reported n ready
// entries. It returns how many events it filled, whether the wakefd was
// ready, and whether any registration still in force was. b.mu is held.
func (b *backend) translate(events []Event, n int) (j int, woke, settled bool) {
	if b.wfds[0].Revents != 0 {
		woke = true
		n--
	}
	m := len(b.wfds) - 1 // registrations in the copy, at 1..m
	if m == 0 {
		return 0, woke, false
	}
	start := b.next % m
	for k := 0; k < m && n > 0; k++ {
		i := 1 + start + k
		if i > m {
			i -= m
		}
		pfd := &b.wfds[i]
		if pfd.Revents == 0 {
			continue
		}
		n--
		r := b.wregs[i]
		cur := b.lookup(int(pfd.Fd))
		if cur == 0 || b.regs[cur].seq != r.seq {
			continue // deleted or changed since the copy
		}
		revents := bitsOf(pfd.Revents)
		if revents&unix.POLLNVAL != 0 {
			// Closed without Delete. The close would have taken an epoll
			// or kqueue registration with it; this one goes now, before
			// the number is reused (see the contract on Delete).
			b.remove(cur)
			b.changed()
			continue
		}
		settled = true
		if j == len(events) {
			b.next = i - 1 // this entry comes first next time
			break
		}
		if f := pollFlags(bitsOf(pfd.Events), revents, pollHUPIsEOF); f != 0 {
			events[j] = Event{Token: r.token, flags: f}
			j++
		}
	}
	return j, woke, settled
}

func (b *backend) wake() error {
	if !b.woken.CompareAndSwap(false, true) {
		return nil
	}
	err := b.wakefd.signal()
	if err != nil {
		// Nothing was written, so let the next Wake try again.
		b.woken.Store(false)
	}
	return err
}

func (b *backend) close() error {
	return b.wakefd.close()
}
