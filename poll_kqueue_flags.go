package poll

// This file has no build tags so that the kqueue translation is table-tested
// on every system, Linux included. poll_kqueue_bsd.go feeds it the fields of
// a struct kevent.

// kevFilter says which of our two filters a kevent came from. The raw
// EVFILT_ numbers are not portable: EVFILT_READ and EVFILT_WRITE are -1 and
// -2 on macOS, DragonFly, FreeBSD and OpenBSD but 0 and 1 on NetBSD, whose
// filter field is unsigned (x/sys/unix zerrors_netbsd_*.go; NetBSD
// kqueue(2)). So the syscall file maps them with each system's own
// constants and hands over this.
type kevFilter uint8

const (
	kevOther kevFilter = iota
	kevRead
	kevWrite
)

// Bits of kevent.flags, the same on all five systems (x/sys/unix
// zerrors_{darwin,dragonfly,freebsd,netbsd,openbsd}_*.go); the build on
// those systems fails if they ever differ from unix.EV_EOF and unix.EV_ERROR.
const (
	kevEOF   = 0x8000
	kevError = 0x4000
)

// kqueueFlags translates one kevent. evFlags is kevent.flags widened to
// 32 bits (it is 16 bits wide except on NetBSD), fflags is kevent.fflags.
//
// The kqueue(2) pages of FreeBSD, macOS, NetBSD and OpenBSD agree:
//   - EV_EOF on the read filter means the read side has shut down. Data may
//     still be queued (kevent.data says how much), so it is readable and
//     read-closed, not an error.
//   - EV_EOF on the write filter means this side can send no more: the
//     socket's send buffer is shut (SBS_CANTSENDMORE in FreeBSD's
//     filt_sowrite), by our own shutdown(SHUT_WR) as well as by a
//     disconnection, or a pipe's reader has gone. That is not "closed both
//     ways": it is reported as writable only, so the next write returns
//     EPIPE. The read side speaks for itself on the read filter, so kqueue
//     never reports HangUp.
//   - With EV_EOF, a socket's pending error (a reset) is in fflags. That is
//     an error, as EPOLLERR is for the same reset on Linux.
//   - EV_ERROR means kevent.data holds an errno; the other flags are those
//     of the change that failed and mean nothing. It is reported as an
//     error.
//
// Like epollFlags, an error also marks the descriptor readable and writable,
// so the caller's next read or write returns it instead of blocking.
// Events of any other filter translate to nothing.
func kqueueFlags(filter kevFilter, evFlags, fflags uint32) flags {
	if filter != kevRead && filter != kevWrite {
		return 0
	}
	if evFlags&kevError != 0 {
		return flagError | flagReadable | flagWritable
	}
	eof := evFlags&kevEOF != 0
	var f flags
	if filter == kevRead {
		f = flagReadable
		if eof {
			f |= flagReadClosed
		}
	} else {
		f = flagWritable
	}
	if eof && fflags != 0 {
		f |= flagError | flagReadable | flagWritable
	}
	return f
}

// kqueueHint is what Wait reports of an event whose registration changed
// while kevent ran (see translate in poll_kqueue_bsd.go): only readiness,
// and only as far as the registration now in force asks for it. Readable
// and Writable may be spurious by contract; ReadClosed and Err may not,
// and they could be an old connection's.
func kqueueHint(f flags, in Interest) flags {
	var h flags
	if in&Readable != 0 {
		h |= f & flagReadable
	}
	if in&Writable != 0 {
		h |= f & flagWritable
	}
	return h
}
