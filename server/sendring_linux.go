//go:build !evio && !stdnet

package server

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendRing sends a loop's answers for many connections with one system
// call: an io_uring (io_uring(7)) used for IORING_OP_SEND only.
//
// Why: a send wakes the client, and on a machine where clients and server
// share CPUs the woken client preempts the server when that send returns to
// user space. With one send(2) per connection the server is preempted about
// once per connection it answers; with every answer of a turn submitted in
// one io_uring_enter(2), once per turn. On two CPUs shared with the load
// generator (`tcpoll load -c 50 -p 16`, `perf stat -e context-switches -p
// PID` for 1 s), tcpoll's server switched 15,800 times a second with
// send(2) and 5,400 times through the ring, and its CPU per message went
// from 0.50 to 0.37 µs; the README has bench/run's medians.
//
// Readiness, reads and everything else stay on the epoll poller; only the
// sends a turn makes move here. Each send carries MSG_DONTWAIT, which makes
// io_uring complete it at once with what send(2) would return (the count
// written, or -EAGAIN) instead of waiting for room in the socket, so the
// engine handles a partial send exactly as it would after send(2).
type sendRing struct {
	fd      int
	entries uint32
	mem     []byte // the SQ and CQ rings (IORING_FEAT_SINGLE_MMAP)
	sqeMem  []byte

	// The bounded wait's argument lives here, on the heap, where the
	// kernel can read it for the whole call.
	waitArg ioringGeteventsArg
	waitTS  kernelTimespec

	sqTail  *uint32
	sqMask  uint32
	sqArray []uint32
	sqes    []ringSQE
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []ringCQE
}

// The kernel's ABI, from include/uapi/linux/io_uring.h.
const (
	ioringOpSend         = 26
	ioringFeatSingleMmap = 1 << 0
	ioringFeatExtArg     = 1 << 8 // Linux 5.11
	ioringEnterGetEvents = 1 << 0
	ioringEnterExtArg    = 1 << 3
	ioringOffSQRing      = 0
	ioringOffSQEs        = 0x10000000
	sendRingEntries      = 256
	sendFlags            = unix.MSG_NOSIGNAL | unix.MSG_DONTWAIT
	sendRingRetries      = 16
	// awaitTimeout bounds the wait for a completion that should already
	// be there (see await). Past it the ring counts as failed.
	awaitTimeout = 100 * time.Millisecond
)

// kernelTimespec is struct __kernel_timespec: 64-bit fields on every
// architecture, unlike unix.Timespec on 32-bit ones.
type kernelTimespec struct{ sec, nsec int64 }

// ioringGeteventsArg is struct io_uring_getevents_arg: with
// IORING_ENTER_EXT_ARG, io_uring_enter(2) takes it in place of a signal
// mask, and ts bounds the wait.
type ioringGeteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

type ioringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

type ringSQE struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	opFlags  uint32
	userData uint64
	bufIndex uint16
	persona  uint16
	spliceFD int32
	addr3    uint64
	_        uint64
}

type ringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// newSendRing sets up a ring, or fails where io_uring is missing or too old
// (before Linux 5.11, which added the bounded wait await needs), disabled (kernel.io_uring_disabled) or
// filtered (seccomp, as in Docker's default profile); the engine then sends
// with send(2).
func newSendRing() (*sendRing, error) {
	// No IORING_SETUP_COOP_TASKRUN: with it, a completion deferred to task
	// work runs only when the thread that submitted enters the kernel again,
	// and a loop's goroutine can move to another thread meanwhile, leaving
	// the completion stranded. A MSG_DONTWAIT send completes while it is
	// submitted and makes no task work, so the flag saved nothing: in four
	// interleaved rounds of `tcpoll load -c 50 -p 16 -d 3s` the server took
	// 0.32 µs per message without it and 0.39 with it (medians; the rounds
	// ranged 0.31–0.38 and 0.26–0.43).
	var p ioringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, sendRingEntries, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	r := &sendRing{fd: int(fd), entries: p.sqEntries}
	switch {
	case p.features&ioringFeatSingleMmap == 0:
		r.close()
		return nil, errors.New("io_uring: no IORING_FEAT_SINGLE_MMAP (Linux 5.4)")
	case p.features&ioringFeatExtArg == 0:
		r.close()
		return nil, errors.New("io_uring: no IORING_FEAT_EXT_ARG (Linux 5.11) for a bounded wait")
	}
	// await's bound, which the kernel reads through waitArg on each wait.
	r.waitTS = kernelTimespec{sec: int64(awaitTimeout / time.Second), nsec: int64(awaitTimeout % time.Second)}
	r.waitArg = ioringGeteventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(ringCQE{})))
	var err error
	if r.mem, err = unix.Mmap(r.fd, ioringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, os.NewSyscallError("mmap", err)
	}
	if r.sqeMem, err = unix.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(ringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, os.NewSyscallError("mmap", err)
	}
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }
	r.sqTail = u32(p.sqOff.tail)
	r.sqMask = *u32(p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*ringSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead = u32(p.cqOff.head)
	r.cqTail = u32(p.cqOff.tail)
	r.cqMask = *u32(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*ringCQE)(unsafe.Pointer(&r.mem[p.cqOff.cqes])), p.cqEntries)
	if err := r.probe(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// probeFill is what the probe sends: zeros, never written, and global so
// that the kernel reads it at an address that cannot move.
var probeFill [4 << 10]byte

// probe checks that a send to a full socket completes at once with EAGAIN.
// Kernels that do not honour MSG_DONTWAIT in io_uring wait for room
// instead, and a loop would stall on a client that stopped reading.
func (r *sendRing) probe() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	// The smallest send buffer the kernel allows fills in a few sends.
	unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 1)
	for {
		if _, err := send(fds[0], probeFill[:]); err == unix.EAGAIN {
			break
		} else if err != nil {
			return os.NewSyscallError("send", err)
		}
	}
	res := []int32{resUnsent}
	ents := []batchEnt{{fd: int32(fds[0]), n: 1}}
	r.prep(ents, probeFill[:], 0)
	if _, err := r.enter(1, res); err != nil {
		return err
	}
	if r.reap(res); unix.Errno(-res[0]) != unix.EAGAIN {
		// The ring's close cancels a send still waiting.
		return fmt.Errorf("io_uring: a MSG_DONTWAIT send to a full socket gave %d, not -EAGAIN, at once", res[0])
	}
	return nil
}

func (r *sendRing) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.mem != nil {
		unix.Munmap(r.mem)
	}
	unix.Close(r.fd)
}

// sendAll sends arena[e.off:e.off+e.n] on each e.fd and stores in res[i]
// what send(2) would have returned for ents[i]: the bytes written, or a
// negated errno. An error means the ring failed and must be closed unused:
// entries it did not take keep res[i] == resUnsent, and those it took but
// did not report get -EIO.
func (r *sendRing) sendAll(ents []batchEnt, arena []byte, res []int32) error {
	defer runtime.KeepAlive(arena)
	for start := 0; start < len(ents); {
		n := min(len(ents)-start, int(r.entries))
		r.prep(ents[start:start+n], arena, start)
		submitted, err := r.enter(n, res)
		if err == nil {
			err = r.await(res, start, start+n)
		}
		if err != nil {
			// A send the kernel took and did not report may have been
			// made or not: its connection cannot go on.
			for i := start; i < start+submitted; i++ {
				if res[i] == resUnsent {
					res[i] = -int32(unix.EIO)
				}
			}
			return err
		}
		start += n
	}
	return nil
}

// prep queues a send for each of ents, at most r.entries of them; the
// completion of ents[i] reports for index base+i.
func (r *sendRing) prep(ents []batchEnt, arena []byte, base int) {
	tail := atomic.LoadUint32(r.sqTail)
	for i := range ents {
		e := &ents[i]
		idx := (tail + uint32(i)) & r.sqMask
		r.sqes[idx] = ringSQE{
			opcode:   ioringOpSend,
			fd:       e.fd,
			addr:     uint64(uintptr(unsafe.Pointer(&arena[e.off]))),
			len:      uint32(e.n),
			opFlags:  sendFlags,
			userData: uint64(base + i),
		}
		r.sqArray[idx] = idx
	}
	// The kernel reads the entries after it sees the new tail.
	atomic.StoreUint32(r.sqTail, tail+uint32(len(ents)))
}

// enter submits the n entries before the SQ tail and returns how many the
// kernel took.
func (r *sendRing) enter(n int, res []int32) (int, error) {
	submitted, retries := 0, 0
	for submitted < n {
		k, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n-submitted), 0, 0, 0, 0)
		switch {
		case errno == 0 && k > 0:
			submitted += int(k)
			continue
		case errno == 0:
			// Nothing taken and no reason given: trying again would
			// loop for ever.
			return submitted, fmt.Errorf("io_uring_enter: took none of %d entries", n-submitted)
		case (errno == unix.EAGAIN || errno == unix.EBUSY || errno == unix.EINTR) && retries < sendRingRetries:
			retries++
			r.reap(res)
			continue
		}
		r.reap(res)
		return submitted, os.NewSyscallError("io_uring_enter", errno)
	}
	return submitted, nil
}

// await collects the completions of the sends whose results go in
// res[lo:hi]. A MSG_DONTWAIT send completes while it is submitted
// (newSendRing checks), so the wait for any still missing is a formality;
// it is bounded all the same, and a completion still missing after
// awaitTimeout is the ring's failure.
func (r *sendRing) await(res []int32, lo, hi int) error {
	// The sends may complete as the wait times out: the last reap decides.
	timedOut := false
	for {
		r.reap(res)
		missing := 0
		for _, v := range res[lo:hi] {
			if v == resUnsent {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if timedOut {
			return fmt.Errorf("io_uring: sends not completed within %v", awaitTimeout)
		}
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, uintptr(missing),
			ioringEnterGetEvents|ioringEnterExtArg, uintptr(unsafe.Pointer(&r.waitArg)), unsafe.Sizeof(r.waitArg))
		switch errno {
		case 0, unix.EINTR:
		case unix.ETIME:
			timedOut = true
		default:
			return os.NewSyscallError("io_uring_enter", errno)
		}
	}
}

// reap stores the results of the completions in the CQ ring.
func (r *sendRing) reap(res []int32) {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		res[c.userData] = c.res
	}
	atomic.StoreUint32(r.cqHead, head)
}
