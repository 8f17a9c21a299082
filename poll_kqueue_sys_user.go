//go:build (darwin || dragonfly || freebsd) && !tcpoll_poll

package poll

import "golang.org/x/sys/unix"

// EVFILT_USER, for poll_kqueue_user.go, on the systems that have it (see
// poll_kqueue_sys.go); NetBSD before 10.0 and OpenBSD do not, and wake
// through a pipe (poll_kqueue_pipe.go).
const (
	evfiltUser  = unix.EVFILT_USER
	noteTrigger = unix.NOTE_TRIGGER
)
