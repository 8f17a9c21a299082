// Package sd speaks the two systemd protocols a server needs, without
// libsystemd and without a dependency beyond golang.org/x/sys/unix:
//
//   - readiness notification, sd_notify(3): Notify sends one datagram such as
//     "READY=1" to the socket named by $NOTIFY_SOCKET;
//   - socket activation, sd_listen_fds(3): Listeners takes the descriptors
//     the service manager passed from fd 3 on, as named by $LISTEN_FDNAMES.
//
// Both are no-ops that report nothing when the variables are absent, so a
// server calls them unconditionally and behaves the same outside systemd.
//
// Each system provides the same few unexported functions: send and
// setCloexec in sd_unix.go (every Unix) or sd_other.go (errors wrapping
// errors.ErrUnsupported), and monotonicUsec in clock_gettime.go or
// clock_other.go. Only Linux runs systemd; the other systems build so that
// the callers need no build tags of their own.
package sd

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// listenFDsStart is SD_LISTEN_FDS_START: sd_listen_fds(3) says the first
// passed descriptor is 3, right after stdin, stdout and stderr.
const listenFDsStart = 3

// Notify sends state, a newline-separated list of assignments such as
// "READY=1", "STOPPING=1" or "MAINPID=42\nREADY=1", to the service manager
// as a single datagram, as sd_notify(3) does. It reports false and no
// error when $NOTIFY_SOCKET is unset or empty: the process was not started
// by a manager that listens, which is not a failure.
//
// The variable is left set, unlike sd_notify(unset_environment=1): the
// server notifies several times over its life (READY, RELOADING, STOPPING),
// and a successor started on upgrade inherits it to notify in turn.
//
// The datagram goes out on a blocking socket, as libsystemd's does: if the
// manager's queue is full the call waits for room. sd_notify(3) asks the
// caller to treat an error as advice only ("it is generally recommended to
// ignore the return value"), since the service works without the manager.
func Notify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	// sd_notify(3), Notes: a name starting with "/" is a socket in the
	// file system, one starting with "@" is in Linux's abstract namespace,
	// and "vsock:CID:PORT" (also vsock-stream:, vsock-dgram:,
	// vsock-seqpacket:) is an AF_VSOCK address, used to tell a hypervisor
	// that a virtual machine booted. A server is never in that last case.
	switch {
	case addr[0] == '/' || addr[0] == '@':
	case strings.HasPrefix(addr, "vsock"):
		return false, fmt.Errorf("sd: NOTIFY_SOCKET=%q: AF_VSOCK addresses are not supported: %w", addr, errors.ErrUnsupported)
	default:
		return false, fmt.Errorf("sd: NOTIFY_SOCKET=%q: want an absolute path or an @abstract name", addr)
	}
	if err := send(addr, state); err != nil {
		return false, fmt.Errorf("sd: notify: %w", err)
	}
	return true, nil
}

// MonotonicUsec reads CLOCK_MONOTONIC in microseconds, the clock and unit
// that sd_notify(3) prescribes for MONOTONIC_USEC=. Go's time package reads
// the same clock but never exposes its absolute value, and a value counted
// from some point of this process would mean nothing to the service
// manager, which compares it with its own readings.
//
// It returns 0 where golang.org/x/sys/unix cannot read that clock (AIX,
// NetBSD, and the systems that are not Unix); no service manager there
// reads it.
func MonotonicUsec() uint64 { return monotonicUsec() }

// Reloading returns the notification that a reload has begun:
// "RELOADING=1\nMONOTONIC_USEC=<now>". The timestamp is what lets a manager
// running the service as Type=notify-reload (systemd 253 and later) tell
// this reload from an older one, and systemd.service(5) requires it with
// RELOADING=1 in that mode; older managers ignore the unknown field
// (sd_notify(3): "Unknown assignments are ignored"). Send it with Notify,
// then "READY=1" once the reload is over.
func Reloading() string {
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatUint(MonotonicUsec(), 10)
}

// Listeners returns the descriptors that the service manager passed for
// socket activation, in the order of the socket unit's Listen lines, each
// named by its entry in $LISTEN_FDNAMES (FileDescriptorName= in the unit,
// or the unit's name by default) or, where that list has no entry for it,
// "LISTEN_FD_<fd>". It returns nil and no error when $LISTEN_PID is unset
// or names another process: the variables were then meant for an ancestor
// that let them leak through, and its descriptors are not ours to take.
//
// Whatever it returns, it unsets LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES and
// LISTEN_PIDFDID, as sd_listen_fds(unset_environment=1) does, so that no
// child of this process takes them for its own; a second call therefore
// finds nothing, and the caller keeps the files. Each descriptor is
// made close-on-exec (sd_listen_fds(3): "to avoid further inheritance to
// children of the calling process"), so a program that hands its sockets
// on must pass them explicitly, for example through exec.Cmd.ExtraFiles.
//
// Like libsystemd, it fails on a $LISTEN_PID or $LISTEN_FDS that is not a
// number, on a count below 1, and on a descriptor that is not open; it
// does not check what the descriptors are: the server does, for every
// listener it is given.
func Listeners() ([]*os.File, error) {
	defer unsetListenEnv()
	pidEnv, ok := os.LookupEnv("LISTEN_PID")
	if !ok {
		return nil, nil
	}
	pid, err := strconv.Atoi(pidEnv)
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("sd: LISTEN_PID=%q is not a process id", pidEnv)
	}
	if pid != os.Getpid() {
		return nil, nil
	}
	fdsEnv, ok := os.LookupEnv("LISTEN_FDS")
	if !ok {
		// libsystemd returns 0 here too: a manager that set LISTEN_PID
		// without LISTEN_FDS passed nothing.
		return nil, nil
	}
	n, err := strconv.Atoi(fdsEnv)
	if err != nil || n < 1 || n > math.MaxInt32-listenFDsStart {
		return nil, fmt.Errorf("sd: LISTEN_FDS=%q is not a count of descriptors", fdsEnv)
	}
	var names []string
	if s, ok := os.LookupEnv("LISTEN_FDNAMES"); ok {
		names = strings.Split(s, ":")
	}
	// Wrap nothing until every descriptor is known to be open: an *os.File
	// closes its descriptor when collected, and on an error we would drop
	// the ones already wrapped.
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		if err := setCloexec(fd); err != nil {
			return nil, fmt.Errorf("sd: LISTEN_FDS=%d: fd %d: %w", n, fd, err)
		}
	}
	files := make([]*os.File, n)
	for i := range files {
		fd := listenFDsStart + i
		name := "LISTEN_FD_" + strconv.Itoa(fd)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		files[i] = os.NewFile(uintptr(fd), name)
	}
	return files, nil
}

// unsetListenEnv removes the variables sd_listen_fds(unset_environment=1)
// removes. LISTEN_PIDFDID (systemd 258) narrows LISTEN_PID to one process
// incarnation; we do not check it, but a child must not inherit it either.
func unsetListenEnv() {
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID"} {
		os.Unsetenv(k)
	}
}
