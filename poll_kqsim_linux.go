//go:build tcpoll_kqsim && !tcpoll_poll

package poll

import (
	"math"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The names of poll_kqueue_sys.go, over kqsim below: with -tags
// tcpoll_kqsim, poll_kqueue_bsd.go and its waker run on Linux unchanged.

// kevent_t is struct kevent as FreeBSD and macOS lay it out.
type kevent_t struct {
	Ident  uint64
	Filter int16
	Flags  uint16
	Fflags uint32
	Data   int64
	Udata  *byte
}

// FreeBSD's values; macOS's are the same but for EVFILT_USER (-10).
const (
	evAdd     = 0x1
	evDelete  = 0x2
	evEnable  = 0x4
	evDisable = 0x8
	evOneshot = 0x10
	evClear   = 0x20
	evReceipt = 0x40
	evError   = 0x4000
	evEOF     = 0x8000

	evfiltRead  = -1
	evfiltWrite = -2
	evfiltUser  = -11

	noteTrigger = 0x01000000
)

func setKevent(k *kevent_t, fd, filter, flags int) {
	k.Ident = uint64(fd)
	k.Filter = int16(filter)
	k.Flags = uint16(flags)
}

// kqueues maps each model's descriptor to the model.
var kqueues = struct {
	sync.Mutex
	m map[int]*kqsim
}{m: make(map[int]*kqsim)}

func kqueue() (int, error) {
	k, err := newKqsim()
	if err != nil {
		return -1, err
	}
	kqueues.Lock()
	kqueues.m[k.rd] = k
	kqueues.Unlock()
	return k.rd, nil
}

func kevent(kq int, changes, events []kevent_t, timeout *unix.Timespec) (int, error) {
	kqueues.Lock()
	k := kqueues.m[kq]
	kqueues.Unlock()
	if k == nil {
		return 0, unix.EBADF
	}
	return k.kevent(changes, events, timeout)
}

func closeKqueue(kq int) error {
	kqueues.Lock()
	k := kqueues.m[kq]
	delete(kqueues.m, kq)
	kqueues.Unlock()
	if k == nil {
		return unix.EBADF
	}
	return k.close()
}

// pendingError is what the model puts in fflags beside EV_EOF when a
// socket has an error pending; see kqsim's limits.
const pendingError = unix.ECONNRESET

// kqsim is a model of a kqueue: it keeps knotes as kqueue(2) describes
// them and takes the kernel's part from epoll and poll(2).
//
// A knote is a (ident, filter) pair with its flags, udata and state:
// disabled, queued (active: on the list kevent reports from) and, for
// EVFILT_USER, triggered. The man page's filter runs at its three moments:
// when a knote is registered, "whenever an event is passed to the filter",
// and when kevent is about to return it, which drops it if its condition no
// longer holds. The filter of a descriptor is poll(2) with no timeout,
// then FIONREAD, SIOCOUTQ and SO_SNDBUF, or TCP_INFO, for data and EV_EOF.
// The events passed to filters are epoll's, edge-triggered: every wake-up
// of the descriptor's wait queue queues its knote (or re-queues an EV_CLEAR
// one after it was reported), as a socket's wake-up does with kqueue's
// KNOTE. Read and write knotes sit in two epoll sets, so that Linux's keyed
// wake-ups (data arriving wakes readers only) reach only the filter they
// concern.
//
// close(2) removes a descriptor's knotes in kqueue; the model cannot see a
// close. epoll drops a closed file's registration by itself once its last
// reference is gone, but the model's table would keep the knotes, and the
// number may come back as another file. So each descriptor's entry holds
// the file's identity from fstat (device and inode), checked whenever a
// change names the descriptor and after the filter runs, before a knote is
// reported: a descriptor closed (EBADF) or holding another file loses its
// knotes then, as the close would have taken them. A file still held
// elsewhere (a dup, a child between fork and exec) keeps its epoll
// registration, which may go on reporting under the old number; a
// generation in epoll_data tells those events apart, and they are ignored.
//
// What the model cannot show:
//   - The kernel's timing. Knotes are activated by Linux's wake-ups, not
//     FreeBSD's or XNU's: a writer is woken once a third of its send
//     buffer is free (FreeBSD: at the send low-water mark), and a peer's
//     FIN wakes the write filter too; when data arrives and an ACK comes
//     back is up to Linux's TCP.
//   - A socket's error value. fflags says that one is pending (poll's
//     POLLERR), but always as ECONNRESET: Linux gives the error only to the
//     call that clears it (SO_ERROR, or the next read), and the model must
//     leave it for the caller's read.
//   - EV_EOF on the write filter for our own shutdown(SHUT_WR) is seen on
//     TCP sockets only (from tcp_info's state); on other sockets only once
//     the peer is gone (POLLHUP), or a pipe's reader (POLLERR).
//   - A close until the model next looks at the descriptor: until then its
//     knotes hold memory, and a file whose inode comes back (a regular file
//     reopened) passes for the same one.
//   - What the backend does not use: EV_DISPATCH, NOTE_LOWAT, EVFILT_USER's
//     NOTE_FF* flags, every other filter (vnode, proc, signal, timer, aio,
//     except), macOS's EV_OOBAND, EV_UDATA_SPECIFIC and kevent64, and
//     regular files, which epoll refuses (EPERM).
//   - Quirks of the systems: the sleep limits that maxWaitMillis works
//     around (macOS's EINVAL, OpenBSD's 24 hours), macOS's spurious
//     ETIMEDOUT, NetBSD's unsigned filter numbers. And a kqueue is not
//     inherited across fork; the model's descriptors are, until exec.
type kqsim struct {
	rd, wr int // epoll sets of the read and the write knotes; wr is in rd
	bell   int // an eventfd in rd, rung to wake a sleeping kevent

	mu       sync.Mutex
	knotes   map[kkey]*knote
	fds      map[int]*fdEntry
	active   []*knote // queued knotes, in the order kevent reports them
	spare    []*knote
	gen      uint32
	sleepers int  // kevent calls waiting for rd, without mu
	rung     bool // the bell holds a count that no harvest has read

	// System call buffers, used with mu held, so that kevent allocates
	// nothing.
	evs  [64]unix.EpollEvent
	pfd  [1]unix.PollFd
	st   unix.Stat_t
	ti   unix.TCPInfo
	ring [8]byte
}

type kkey struct {
	ident  uint64
	filter int16
}

type knote struct {
	kev      kevent_t // as registered, without the action flags
	disabled bool
	queued   bool
	fired    bool // EVFILT_USER: triggered
}

// fdEntry is what the model knows of a descriptor with knotes.
type fdEntry struct {
	dev, ino  uint64 // the file's identity
	sock, tcp bool
	gen       uint32 // tells its epoll events from an earlier file's
}

func newKqsim() (*kqsim, error) {
	k := &kqsim{rd: -1, wr: -1, bell: -1, knotes: make(map[kkey]*knote), fds: make(map[int]*fdEntry)}
	err := k.open()
	if err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

func (k *kqsim) open() error {
	var err error
	if k.rd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return err
	}
	if k.wr, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return err
	}
	if k.bell, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return err
	}
	for _, fd := range []int{k.wr, k.bell} {
		// Generation 0 marks the model's own descriptors.
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(k.rd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return err
		}
	}
	return nil
}

func (k *kqsim) close() error {
	var err error
	for _, fd := range []int{k.bell, k.wr, k.rd} {
		if fd >= 0 {
			err = unix.Close(fd)
		}
	}
	return err
}

func (k *kqsim) kevent(changes, events []kevent_t, timeout *unix.Timespec) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for i := range changes {
		// A copy: events may be the same array.
		ch := changes[i]
		e := k.register(&ch)
		if e == 0 && ch.Flags&evReceipt == 0 {
			continue
		}
		if n == len(events) {
			// No room for the reply: the call ends here, as FreeBSD's
			// kqueue_kevent does, with the change's error or none.
			if e == 0 {
				return n, nil
			}
			return n, e
		}
		ch.Flags = evError
		ch.Data = int64(e)
		events[n] = ch
		n++
	}
	if n > 0 || len(events) == 0 {
		return n, nil
	}
	return k.wait(events, timeout)
}

// register applies one change (kqueue_register in FreeBSD's kern_event.c).
func (k *kqsim) register(ch *kevent_t) unix.Errno {
	switch ch.Filter {
	case evfiltRead, evfiltWrite:
		if ch.Ident > math.MaxInt32 {
			return unix.EBADF
		}
		fd := int(ch.Ident)
		if err := unix.Fstat(fd, &k.st); err != nil {
			k.drop(fd)
			return unix.EBADF
		}
		if e := k.fds[fd]; e != nil && (e.dev != k.st.Dev || e.ino != k.st.Ino) {
			k.drop(fd)
		}
	case evfiltUser:
	default:
		return unix.EINVAL
	}
	kn := k.knotes[kkey{ch.Ident, ch.Filter}]
	switch {
	case kn == nil && ch.Flags&evAdd == 0:
		return unix.ENOENT
	case kn == nil:
		kn = &knote{kev: *ch}
		kn.kev.Flags &^= evAdd | evDelete | evEnable | evDisable
		if e := k.attach(kn); e != 0 {
			return e
		}
	case ch.Flags&evDelete != 0:
		k.remove(kn)
		return 0
	case ch.Flags&evAdd != 0:
		// A re-add changes the udata and keeps the flags: see the
		// trigger change in backend.ctl.
		kn.kev.Udata = ch.Udata
	}
	if kn.kev.Filter == evfiltUser && ch.Fflags&noteTrigger != 0 {
		kn.fired = true
	}
	if ch.Flags&evDisable != 0 {
		kn.disabled = true
		k.dequeue(kn)
	}
	if ch.Flags&evEnable != 0 {
		kn.disabled = false
	}
	var ev kevent_t
	if !kn.disabled && k.filter(kn, &ev) {
		k.activate(kn)
	}
	return 0
}

// attach registers a new knote, and its descriptor with epoll; k.st is
// the descriptor's fstat.
func (k *kqsim) attach(kn *knote) unix.Errno {
	if kn.kev.Filter != evfiltUser {
		fd := int(kn.kev.Ident)
		e := k.fds[fd]
		if e == nil {
			k.gen = max(k.gen+1, 1)
			e = &fdEntry{dev: k.st.Dev, ino: k.st.Ino, sock: k.st.Mode&unix.S_IFMT == unix.S_IFSOCK, gen: k.gen}
			if e.sock {
				p, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
				e.tcp = p == unix.IPPROTO_TCP
			}
		}
		set, ev := k.rd, unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd), Pad: int32(e.gen)}
		if kn.kev.Filter == evfiltWrite {
			set, ev.Events = k.wr, unix.EPOLLOUT
		}
		ev.Events |= unix.EPOLLET
		err := unix.EpollCtl(set, unix.EPOLL_CTL_ADD, fd, &ev)
		if err == unix.EEXIST {
			// The same file under the same number, dropped while a
			// duplicate kept it open, and back: epoll still has it.
			err = unix.EpollCtl(set, unix.EPOLL_CTL_MOD, fd, &ev)
		}
		if err != nil {
			return err.(unix.Errno)
		}
		k.fds[fd] = e
	}
	k.knotes[kkey{kn.kev.Ident, kn.kev.Filter}] = kn
	return 0
}

// remove deletes a knote: EV_DELETE, or EV_ONESHOT once reported.
func (k *kqsim) remove(kn *knote) {
	k.dequeue(kn)
	delete(k.knotes, kkey{kn.kev.Ident, kn.kev.Filter})
	if kn.kev.Filter == evfiltUser {
		return
	}
	fd, set, other := int(kn.kev.Ident), k.rd, int16(evfiltWrite)
	if kn.kev.Filter == evfiltWrite {
		set, other = k.wr, evfiltRead
	}
	unix.EpollCtl(set, unix.EPOLL_CTL_DEL, fd, nil)
	if k.knotes[kkey{kn.kev.Ident, other}] == nil {
		delete(k.fds, fd)
	}
}

// drop forgets fd's knotes, as close(2) would have: fd is closed, or has
// another file. There is nothing to take out of epoll: it dropped the old
// file with its last reference, or will, and until then the events of its
// registration carry the old generation.
func (k *kqsim) drop(fd int) {
	if k.fds[fd] == nil {
		return
	}
	for _, f := range [...]int16{evfiltRead, evfiltWrite} {
		key := kkey{uint64(fd), f}
		if kn := k.knotes[key]; kn != nil {
			k.dequeue(kn)
			delete(k.knotes, key)
		}
	}
	delete(k.fds, fd)
}

func (k *kqsim) activate(kn *knote) {
	if kn.disabled || kn.queued {
		return
	}
	kn.queued = true
	k.active = append(k.active, kn)
	if k.sleepers > 0 && !k.rung {
		k.rung = true
		k.ring = [8]byte{1}
		unix.Write(k.bell, k.ring[:])
	}
}

func (k *kqsim) dequeue(kn *knote) {
	if !kn.queued {
		return
	}
	kn.queued = false
	if i := slices.Index(k.active, kn); i >= 0 {
		k.active = slices.Delete(k.active, i, i+1)
	}
}

// wait is kevent with nothing to change: it reports queued knotes whose
// filter still holds, and sleeps until there are some or the time is up.
func (k *kqsim) wait(events []kevent_t, timeout *unix.Timespec) (int, error) {
	var deadline time.Time
	if timeout != nil {
		deadline = time.Now().Add(time.Duration(timeout.Nano()))
	}
	for {
		k.harvest(k.rd, evfiltRead)
		k.harvest(k.wr, evfiltWrite)
		if n := k.scan(events); n > 0 {
			return n, nil
		}
		ms := -1
		if timeout != nil {
			left := time.Until(deadline)
			if left <= 0 {
				return 0, nil
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		// Sleep on the read set without taking its events, which the
		// next harvest reads with mu held. wr and bell are in it.
		k.sleepers++
		k.mu.Unlock()
		pfd := [1]unix.PollFd{{Fd: int32(k.rd), Events: unix.POLLIN}}
		_, err := unix.Poll(pfd[:], ms)
		k.mu.Lock()
		k.sleepers--
		if err != nil {
			// EINTR too, as kevent returns it.
			return 0, err
		}
	}
}

// harvest passes the events epoll has gathered in set to the knotes of
// filter: each queues its knote.
func (k *kqsim) harvest(set int, filter int16) {
	for {
		n, err := unix.EpollWait(set, k.evs[:], 0)
		if err == unix.EINTR {
			continue
		}
		for _, ev := range k.evs[:max(n, 0)] {
			fd, gen := int(ev.Fd), uint32(ev.Pad)
			switch {
			case gen != 0:
				if e := k.fds[fd]; e != nil && e.gen == gen {
					if kn := k.knotes[kkey{uint64(fd), filter}]; kn != nil {
						k.activate(kn)
					}
				}
			case fd == k.bell:
				unix.Read(k.bell, k.ring[:])
				k.rung = false
			}
		}
		if n < len(k.evs) {
			return
		}
	}
}

// scan fills events from the queue, as FreeBSD's kqueue_scan: a knote whose
// filter no longer holds leaves the queue unreported; one reported leaves
// it if EV_CLEAR or EV_ONESHOT, else goes to its end, behind those this
// scan had no room for, to be filtered again at a later kevent.
func (k *kqsim) scan(events []kevent_t) int {
	q := k.active
	k.active, k.spare = k.spare[:0], nil
	n, r, i := 0, 0, 0 // q[:r] holds the reported knotes that stay queued
	for ; i < len(q) && n < len(events); i++ {
		kn := q[i]
		switch {
		case !kn.queued:
			// Its descriptor was dropped earlier in this scan.
		case !k.filter(kn, &events[n]):
			kn.queued = false
		case kn.kev.Flags&evOneshot != 0:
			n++
			kn.queued = false
			k.remove(kn)
		case kn.kev.Flags&evClear != 0:
			n++
			kn.queued, kn.fired = false, false
		default:
			n++
			q[r] = kn
			r++
		}
	}
	for _, part := range [2][]*knote{q[i:], q[:r]} {
		for _, kn := range part {
			if kn.queued {
				k.active = append(k.active, kn)
			}
		}
	}
	k.spare = q[:0]
	return n
}

// filter runs kn's filter and reports whether its condition holds, with
// the event kevent would return in ev. A descriptor found closed, or
// holding another file, is dropped.
func (k *kqsim) filter(kn *knote, ev *kevent_t) bool {
	*ev = kn.kev
	if kn.kev.Filter == evfiltUser {
		ev.Fflags = 0
		return kn.fired
	}
	fd := int(kn.kev.Ident)
	e := k.fds[fd]
	k.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN | unix.POLLOUT | unix.POLLRDHUP}
	for {
		if _, err := unix.Poll(k.pfd[:], 0); err != unix.EINTR {
			break
		}
	}
	re := k.pfd[0].Revents
	var on, eof bool
	if kn.kev.Filter == evfiltRead {
		on = re&(unix.POLLIN|unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		eof = re&(unix.POLLRDHUP|unix.POLLHUP) != 0
		ev.Data = k.readable(fd, e)
	} else {
		on = re&(unix.POLLOUT|unix.POLLHUP|unix.POLLERR) != 0
		eof = re&unix.POLLHUP != 0 || !e.sock && re&unix.POLLERR != 0 || e.tcp && k.sendShut(fd)
		ev.Data = k.writable(fd, e)
	}
	if eof {
		ev.Flags |= evEOF
		if e.sock && re&unix.POLLERR != 0 {
			ev.Fflags = uint32(pendingError)
		}
	}
	// After the filter, so that it ran on the file the knote is for.
	if unix.Fstat(fd, &k.st) != nil || k.st.Dev != e.dev || k.st.Ino != e.ino {
		k.drop(fd)
		return false
	}
	return on
}

// readable is EVFILT_READ's data: the bytes waiting, or a listener's
// pending connections (tcp_info's tcpi_unacked, tcp(7)).
func (k *kqsim) readable(fd int, e *fdEntry) int64 {
	if n, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err == nil {
		return int64(n)
	}
	if e.tcp && k.tcpInfo(fd) && k.ti.State == unix.BPF_TCP_LISTEN {
		return int64(k.ti.Unacked)
	}
	return 0
}

// writable is EVFILT_WRITE's data: the room in the send buffer, or in a
// pipe.
func (k *kqsim) writable(fd int, e *fdEntry) int64 {
	size, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	queued, _ := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if !e.sock {
		size, err = unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
		queued, _ = unix.IoctlGetInt(fd, unix.SIOCINQ)
	}
	if err != nil {
		return 0
	}
	return int64(max(size-queued, 0))
}

// sendShut reports whether a TCP socket can send no more: it has sent its
// FIN (shutdown(SHUT_WR) or close) or is closed (a reset).
func (k *kqsim) sendShut(fd int) bool {
	if !k.tcpInfo(fd) {
		return false
	}
	switch k.ti.State {
	case unix.BPF_TCP_FIN_WAIT1, unix.BPF_TCP_FIN_WAIT2, unix.BPF_TCP_CLOSING,
		unix.BPF_TCP_TIME_WAIT, unix.BPF_TCP_LAST_ACK, unix.BPF_TCP_CLOSE:
		return true
	}
	return false
}

// tcpInfo reads fd's tcp_info into k.ti. By hand: x/sys's
// GetsockoptTCPInfo allocates the struct.
func (k *kqsim) tcpInfo(fd int) bool {
	n := uint32(unix.SizeofTCPInfo)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&k.ti)), uintptr(unsafe.Pointer(&n)), 0)
	return e == 0
}
