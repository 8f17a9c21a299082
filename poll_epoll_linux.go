package poll

import (
	"encoding/binary"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// backend is epoll(7) with an eventfd(2) for Wake.
//
// Wait never blocks a thread in epoll_wait. It collects ready events with a
// zero timeout, and when there are none it parks the goroutine in the Go
// runtime's own poller, where the epoll descriptor is registered: an epoll
// descriptor is readable while events are ready in it (epoll(7), "Q6").
// A thread blocked in a system call has its P taken away by the runtime's
// monitor after 20µs, and a loop that sleeps and wakes thousands of times a
// second keeps that monitor running every 20µs handing Ps around; parked
// goroutines cost the scheduler nothing of the kind.
type backend struct {
	epfd int
	// file is epfd in the runtime poller. rc and ready make the park.
	file  *os.File
	rc    syscall.RawConn
	ready func(uintptr) bool // b.pollReady, made once so Wait does not allocate
	// timed says a read deadline is set on file.
	timed bool

	wakefd int
	// woken is set by the Wake that writes the eventfd and cleared by the
	// Wait that drains it, so Wakes in between cost no system call.
	woken atomic.Bool
	raw   []unix.EpollEvent
	// cur, n and errno carry pollReady's call and result.
	cur   []unix.EpollEvent
	n     int
	errno unix.Errno
}

func (b *backend) init() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	// A descriptor os.NewFile finds non-blocking goes into the runtime
	// poller; a deadline can be set only on one that went in.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return os.NewSyscallError("fcntl", err)
	}
	b.file = os.NewFile(uintptr(epfd), "epoll")
	if err := b.file.SetReadDeadline(time.Time{}); err != nil {
		unix.Close(wakefd)
		b.file.Close()
		return errors.New("poll: the Go runtime cannot poll an epoll descriptor: " + err.Error())
	}
	rc, err := b.file.SyscallConn()
	if err != nil {
		unix.Close(wakefd)
		b.file.Close()
		return err
	}
	b.epfd, b.wakefd, b.rc = epfd, wakefd, rc
	b.ready = b.pollReady
	return nil
}

// setToken stores the token in epoll_data, the union the kernel hands back
// untouched. x/sys names its two 32-bit halves Fd and Pad on every arch.
func setToken(ev *unix.EpollEvent, token uint64) {
	ev.Fd = int32(uint32(token))
	ev.Pad = int32(uint32(token >> 32))
}

func epollToken(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func epollInterest(in Interest) uint32 {
	var bits uint32
	if in&Readable != 0 {
		// RDHUP only with Readable: a caller that stopped reading would
		// otherwise be told of the peer's FIN again on every level-triggered
		// Wait.
		bits |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if in&Writable != 0 {
		bits |= unix.EPOLLOUT
	}
	if in&EdgeTriggered != 0 {
		bits |= unix.EPOLLET
	}
	return bits
}

// epollFlags translates the bits epoll_wait reports. EPOLLHUP and EPOLLERR
// are reported whatever the interest, so they also mark the descriptor
// readable and writable: the next read or write returns the condition
// instead of blocking.
func epollFlags(bits uint32) flags {
	var f flags
	if bits&(unix.EPOLLIN|unix.EPOLLPRI|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
		f |= flagReadable
	}
	if bits&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		f |= flagWritable
	}
	if bits&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		f |= flagReadClosed
	}
	if bits&unix.EPOLLHUP != 0 {
		f |= flagHangUp
	}
	if bits&unix.EPOLLERR != 0 {
		f |= flagError
	}
	return f
}

func (b *backend) ctl(fd int, token uint64, in Interest, o op) error {
	var ev unix.EpollEvent
	var cmd int
	switch o {
	case opAdd:
		cmd = unix.EPOLL_CTL_ADD
	case opModify:
		cmd = unix.EPOLL_CTL_MOD
	case opDelete:
		// Kernels before 2.6.9 wanted a non-nil event even for DEL.
		return os.NewSyscallError("epoll_ctl", unix.EpollCtl(b.epfd, unix.EPOLL_CTL_DEL, fd, &ev))
	}
	ev.Events = epollInterest(in)
	setToken(&ev, token)
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(b.epfd, cmd, fd, &ev))
}

func (b *backend) wait(events []Event, timeout time.Duration) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	if cap(b.raw) < len(events) {
		b.raw = make([]unix.EpollEvent, len(events))
	}
	raw := b.raw[:len(events)]
	n, errno := epollPoll(b.epfd, raw)
	if errno != 0 {
		return 0, os.NewSyscallError("epoll_wait", errno)
	}
	if n > 0 || timeout == 0 {
		return b.translate(events, raw[:n]), nil
	}

	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(time.Duration(timeoutMillis(timeout)) * time.Millisecond)
	}
	if timeout > 0 || b.timed {
		if err := b.file.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		b.timed = timeout > 0
	}
	b.cur = raw
	err := b.rc.Read(b.ready)
	b.cur = nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	case err != nil:
		return 0, err
	case b.errno != 0:
		return 0, os.NewSyscallError("epoll_wait", b.errno)
	}
	return b.translate(events, raw[:b.n]), nil
}

// pollReady is the park's test: done once events are ready or the poll
// failed, else the runtime waits for the epoll descriptor to turn readable.
func (b *backend) pollReady(uintptr) bool {
	b.n, b.errno = epollPoll(b.epfd, b.cur)
	return b.n > 0 || b.errno != 0
}

// epollPoll is epoll_wait with a zero timeout. It cannot block, so it is a
// raw system call, without the scheduler's bookkeeping; epoll_pwait with no
// signal mask is the same call and exists on every arch.
func epollPoll(epfd int, raw []unix.EpollEvent) (int, unix.Errno) {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&raw[0])), uintptr(len(raw)), 0, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
	}
}

// translate turns raw events into the caller's, dropping the wake-up.
func (b *backend) translate(events []Event, raw []unix.EpollEvent) int {
	j := 0
	for i := range raw {
		t := epollToken(&raw[i])
		if t == wakeToken {
			b.drainWake()
			continue
		}
		events[j] = Event{Token: t, flags: epollFlags(raw[i].Events)}
		j++
	}
	return j
}

func (b *backend) drainWake() {
	var buf [8]byte
	// The read resets the counter; EAGAIN means a racing Wait drained it.
	unix.Read(b.wakefd, buf[:])
	b.woken.Store(false)
}

func (b *backend) wake() error {
	if !b.woken.CompareAndSwap(false, true) {
		return nil
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, err := unix.Write(b.wakefd, one[:])
	if err == nil || err == unix.EAGAIN {
		// EAGAIN: the counter is saturated, so a Wait will wake anyway.
		return nil
	}
	// Nothing was written, so let the next Wake try again.
	b.woken.Store(false)
	return os.NewSyscallError("write", err)
}

func (b *backend) close() error {
	e1 := unix.Close(b.wakefd)
	e2 := b.file.Close()
	if e1 != nil {
		return os.NewSyscallError("close", e1)
	}
	return e2
}
