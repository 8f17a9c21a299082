//go:build !tcpoll_poll && !tcpoll_kqsim

package poll

import (
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// backend is epoll(7) with an eventfd(2) for Wake (poll_eventfd_linux.go).
type backend struct {
	epfd   int
	wakefd wakefd
	// woken is set by the Wake that writes the eventfd and cleared by the
	// Wait that drains it, so Wakes in between cost no system call.
	woken atomic.Bool
	raw   []unix.EpollEvent
}

// What this backend reports, for the contract tests (export_test.go).
const (
	backendName           = "epoll"
	edgeTriggered         = true
	reportsReadClosed     = true // EPOLLRDHUP
	hangUpWithoutInterest = true // EPOLLHUP and EPOLLERR are always reported
)

func (b *backend) init() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	if err := b.wakefd.open(); err != nil {
		unix.Close(epfd)
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, b.wakefd.readFD(), &ev); err != nil {
		b.wakefd.close()
		unix.Close(epfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	b.epfd = epfd
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
	if cap(b.raw) < len(events) {
		b.raw = make([]unix.EpollEvent, len(events))
	}
	raw := b.raw[:len(events)]
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		n, err := unix.EpollWait(b.epfd, raw, timeoutMillis(timeout))
		if err == unix.EINTR {
			if timeout > 0 {
				timeout = max(time.Until(deadline), 0)
			}
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("epoll_wait", err)
		}
		j := 0
		for i := range raw[:n] {
			t := epollToken(&raw[i])
			if t == wakeToken {
				b.drainWake()
				continue
			}
			events[j] = Event{Token: t, flags: epollFlags(raw[i].Events)}
			j++
		}
		return j, nil
	}
}

func (b *backend) drainWake() {
	b.wakefd.drain()
	// Cleared after the drain: a Wake that finds it still set has been
	// absorbed by this return.
	b.woken.Store(false)
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
	e1 := b.wakefd.close()
	e2 := unix.Close(b.epfd)
	if e1 != nil {
		return e1
	}
	return os.NewSyscallError("close", e2)
}
