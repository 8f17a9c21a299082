// Package poll is a small readiness poller: epoll on Linux, kqueue on macOS
// and the BSDs, poll(2) on the other unix systems (Solaris, illumos, AIX),
// behind one API that exposes no OS type. Building with -tags tcpoll_poll
// puts the poll(2) backend in everywhere, so that its contract is tested on
// the machines at hand.
//
// A Poller watches file descriptors for readiness. Each registration carries
// a caller-chosen token, an opaque uint64 handed back with every event for
// that descriptor, so a caller can put a slot index and a generation in it
// and never mistake a reused descriptor number for the old one.
//
// # The contract every backend meets
//
//   - Readiness is a hint. An event may be spurious (a readable socket whose
//     read then returns EAGAIN); callers must use non-blocking descriptors and
//     treat EAGAIN as "not yet". A backend never drops a readiness edge, and
//     level-triggered registrations keep reporting until the condition clears.
//   - Level-triggered is the default. EdgeTriggered reports a condition once
//     per transition; the caller must then read or write until EAGAIN.
//     poll(2) refuses EdgeTriggered with an error wrapping
//     errors.ErrUnsupported. It sees levels, not transitions, so an
//     emulation could only report like level-triggered, and a descriptor
//     registered Writable for good (as edge-triggered callers do) would then
//     end every Wait at once; or disarm a condition once reported and wait
//     for a re-arm that this API has no call for, so that a caller written
//     for epoll would hang. A clear error at Add is better than either.
//   - One goroutine at a time may call Wait. Add, Modify, Delete and Wake may
//     be called from any goroutine, also while Wait blocks. A change made
//     while Wait blocks takes effect in that Wait: it returns with a
//     descriptor added or modified then if that is ready, and reports
//     nothing of one deleted then that the kernel had not already handed
//     over. (poll(2) is woken by the change and polls the new set.)
//   - Add of a descriptor already registered fails with EEXIST on epoll and
//     poll(2); kqueue replaces the registration. Modify and Delete of one
//     that is not fail with ENOENT.
//   - Delete must come before the descriptor is closed. Closing first leaves
//     the kernel free to drop the registration on its own (kqueue) or to keep
//     it alive through a duplicate (epoll), and Delete then fails. A caller
//     may skip Delete and let the close remove the registration, but on
//     Linux that happens only once nothing else holds the open file (a dup,
//     a child process between fork and exec, a kernel request in flight);
//     until then events keep coming with the old token, which must tell
//     them apart. poll(2) keeps its registrations in the process and cannot
//     see a close at all: it drops a registration when a Wait finds the
//     descriptor closed (POLLNVAL), but if the number is reused before
//     that, the new descriptor is polled under the old registration (and an
//     Add of it fails with EEXIST). With poll(2), Delete before every close;
//     it costs no system call there.
//   - Events already returned by Wait are the caller's: after Delete, or after
//     the descriptor is closed and its number reused, they still carry the old
//     token. That is what tokens are for.
//   - An event carries the token in force when the kernel reported it, and
//     its conditions are that registration's: a Modify, or a Delete and an
//     Add of the same number, racing a Wait never gives the new token an old
//     registration's ReadClosed, HangUp or Err. epoll hands the token back
//     with the event and poll(2) keeps it beside the array it polled (an
//     entry whose registration changed while it polled is not reported, and
//     the next poll looks at the new one). kqueue keeps tokens in a table
//     read after kevent returns, so an event that raced a change is
//     reported with the new token as Readable or Writable only, as far as
//     the new interest asks: a hint, which may be spurious; the next Wait,
//     or the caller's read or write, tells the rest.
//   - One descriptor may appear in two events of one batch: kqueue reports the
//     read and write filters separately. Merge on the token if it matters.
//   - ReadClosed means the peer will send nothing more; data sent before it
//     may still be waiting to be read, so read until EOF. HangUp means the
//     connection is finished both ways; Err means the descriptor has a
//     pending error (read it with SO_ERROR or the next read or write).
//     Where they come from: epoll's EPOLLRDHUP, EPOLLHUP and EPOLLERR;
//     poll(2)'s POLLRDHUP (Linux and FreeBSD), POLLHUP and POLLERR; kqueue's
//     EV_EOF and the error beside it. poll(2) without POLLRDHUP (Solaris,
//     illumos, AIX, NetBSD, OpenBSD, DragonFly) reports a peer's half-close
//     only as Readable, and the read returns end of file. On macOS, POLLHUP
//     is the end of file of either direction, so poll(2) there reports
//     ReadClosed only for a registration that asks for reading alone, and
//     never HangUp. kqueue reports the directions on separate filters and
//     never HangUp either: EV_EOF on the write filter, which our own
//     shutdown(SHUT_WR) raises as well as a disconnection, is Writable, and
//     the next write returns the error.
//   - A registration with no interest asks for nothing, but epoll and
//     poll(2) still report HangUp and Err, which their kernels report
//     whatever was asked (level-triggered: at every Wait until the caller
//     acts). kqueue reports nothing, and so does poll(2) on macOS, which is
//     built on it. A caller that parks a descriptor with no interest must
//     handle those events or Delete it.
//   - Wake makes the Wait in progress, or the next one, return. Wakes that
//     arrive before that Wait returns coalesce into one. A woken Wait may
//     return zero events.
//   - Close releases the poller. A Wait blocked in the kernel returns, and
//     every later call returns ErrClosed. Close does not close the
//     registered descriptors.
//   - The token ^uint64(0) is reserved for the poller's own wake-up.
//
// Wait allocates nothing once its internal buffer has grown to the length of
// the events slice it is given (for poll(2), to the number of
// registrations). A Wait costs O(ready descriptors) on epoll and kqueue,
// and O(registered descriptors) on poll(2), which hands the kernel the
// whole set every time.
package poll

import (
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Interest says which readiness conditions to report for a descriptor.
type Interest uint8

const (
	// Readable asks for events when the descriptor can be read (or has
	// reached end of file or an error).
	Readable Interest = 1 << iota
	// Writable asks for events when the descriptor can be written.
	Writable
	// EdgeTriggered reports each condition once per transition instead of
	// for as long as it holds.
	EdgeTriggered
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("poll: poller closed")

// errReservedToken is returned when a caller registers the wake-up token.
var errReservedToken = errors.New("poll: token ^uint64(0) is reserved")

// wakeToken marks the poller's own wake-up descriptor or filter.
const wakeToken = ^uint64(0)

// Event is one readiness notification.
type Event struct {
	// Token is the value given to Add or Modify for the descriptor.
	Token uint64
	flags flags
}

type flags uint8

const (
	flagReadable flags = 1 << iota
	flagWritable
	flagReadClosed
	flagHangUp
	flagError
)

// Readable reports whether a read will not block: data, end of file or an
// error is waiting.
func (e Event) Readable() bool { return e.flags&flagReadable != 0 }

// Writable reports whether a write will not block.
func (e Event) Writable() bool { return e.flags&flagWritable != 0 }

// ReadClosed reports that the peer has shut down its writing side. Data it
// sent earlier may still be readable.
func (e Event) ReadClosed() bool { return e.flags&flagReadClosed != 0 }

// HangUp reports that the connection is closed in both directions.
func (e Event) HangUp() bool { return e.flags&flagHangUp != 0 }

// Err reports that the descriptor has a pending error.
func (e Event) Err() bool { return e.flags&flagError != 0 }

// Poller watches descriptors for readiness. Create one with New.
type Poller struct {
	// mu is held shared by every call that uses the kernel descriptors, Wait
	// included, and exclusively by Close to release them, so no call ever
	// reaches a descriptor number that Close has freed for reuse.
	mu     sync.RWMutex
	closed atomic.Bool
	b      backend
	// lastYield is when Wait last passed through the scheduler; only the
	// one goroutine in Wait touches it.
	lastYield time.Time
}

// New returns a Poller. It returns an error wrapping errors.ErrUnsupported
// on systems without a backend.
func New() (*Poller, error) {
	p := new(Poller)
	if err := p.b.init(); err != nil {
		return nil, err
	}
	return p, nil
}

// Add registers fd with the given interest and token.
func (p *Poller) Add(fd int, token uint64, in Interest) error {
	if token == wakeToken {
		return errReservedToken
	}
	return p.ctl(fd, token, in, opAdd)
}

// Modify replaces the interest and token of a registered fd.
func (p *Poller) Modify(fd int, token uint64, in Interest) error {
	if token == wakeToken {
		return errReservedToken
	}
	return p.ctl(fd, token, in, opModify)
}

// Delete removes fd from the poller. Call it before closing fd.
func (p *Poller) Delete(fd int) error {
	return p.ctl(fd, 0, 0, opDelete)
}

func (p *Poller) ctl(fd int, token uint64, in Interest, o op) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed.Load() {
		return ErrClosed
	}
	return p.b.ctl(fd, token, in, o)
}

// Wait blocks until at least one event is ready, the timeout passes, or Wake
// or Close is called, and fills events from the start. It returns the number
// of events filled, which may be 0. A negative timeout blocks without limit;
// zero polls; a positive timeout is rounded up to a whole millisecond.
// Interrupted system calls are retried with the time that remains.
// A Wait that may block first yields to the Go scheduler, at most once per
// millisecond (see yieldEvery).
func (p *Poller) Wait(events []Event, timeout time.Duration) (int, error) {
	if timeout != 0 {
		p.yield()
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed.Load() {
		return 0, ErrClosed
	}
	if len(events) == 0 {
		return 0, nil
	}
	// Rounded once, here: a backend that waits again for the time left
	// (after EINTR; poll(2) after a change) counts from the rounded timeout.
	if timeout > 0 {
		timeout = roundUpMillis(timeout)
	}
	n, err := p.b.wait(events, timeout)
	if p.closed.Load() {
		return 0, ErrClosed
	}
	return n, err
}

// yieldEvery is how long a goroutine that calls Wait in a loop may go
// without passing through the Go scheduler.
//
// Such a goroutine otherwise never reschedules: its reads and writes return
// at once and its blocking waits return to the same P. The runtime's sysmon
// treats a P whose scheduler tick has not moved for 10 ms as hogging it,
// and if it finds that P in a system call, a blocking epoll_wait, it takes
// the P away (retake, in runtime/proc.go). Each retake resets sysmon to
// waking every 20 µs, and at that rate it keeps taking the P of every loop
// it finds blocked, so the loops hop threads and sysmon itself wakes
// thousands of times a second. Measured under 50×16 load on two CPUs:
// sysmon's nanosleeps went from about 5,800/s to 100/s, and server CPU per
// message fell by 8–14% in side-by-side runs.
const yieldEvery = time.Millisecond

// yield lets the scheduler run once per yieldEvery, before a Wait that may
// block. Only then: a Gosched per Wait would cost a thread wake-up per
// message when another P is idle.
func (p *Poller) yield() {
	now := time.Now()
	if now.Sub(p.lastYield) >= yieldEvery {
		runtime.Gosched()
		p.lastYield = now
	}
}

// Wake makes the Wait in progress, or the next one, return. Calls coalesce:
// many Wakes before Wait returns cost one system call.
func (p *Poller) Wake() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed.Load() {
		return ErrClosed
	}
	return p.b.wake()
}

// Close releases the poller's descriptors and makes a blocked Wait return.
// It waits for that Wait, and for calls in progress on other goroutines, to
// leave the kernel before it closes anything.
func (p *Poller) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	// The descriptors stay open until we hold mu, so waking without it is
	// safe, and it is what lets a blocked Wait give mu up.
	werr := p.b.wake()
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(werr, p.b.close())
}

type op uint8

const (
	opAdd op = iota
	opModify
	opDelete
)

// roundUpMillis rounds a positive d up to a whole millisecond, short of
// overflow.
func roundUpMillis(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r != 0 && d <= math.MaxInt64-time.Millisecond {
		d += time.Millisecond - r
	}
	return d
}

// timeoutMillis converts a Wait timeout to the milliseconds epoll_wait wants,
// rounding up so a short timeout never becomes a busy poll.
func timeoutMillis(d time.Duration) int {
	switch {
	case d < 0:
		return -1
	case d == 0:
		return 0
	}
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	return int(min(ms, 1<<31-1))
}
