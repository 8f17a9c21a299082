//go:build unix

package server

// Sockets handed in (Config.Listeners) and out (Server.ListenerFiles).

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dupCloexec duplicates fd as a descriptor closed on exec. ForkLock keeps
// a fork between the two calls from passing the copy to a child.
func dupCloexec(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nfd, err := unix.Dup(fd)
	if err != nil {
		return -1, os.NewSyscallError("dup", err)
	}
	unix.CloseOnExec(nfd)
	return nfd, nil
}

// dupRaw duplicates the descriptor behind rc with dupCloexec.
func dupRaw(rc syscall.RawConn) (int, error) {
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = dupCloexec(int(s)) }); err != nil {
		return -1, err
	}
	return fd, derr
}

// dupFile duplicates the descriptor behind rc as a file closed on exec.
// Unlike net's File methods, it leaves the socket non-blocking: a file
// from those is handed out in blocking mode when os/exec passes it on,
// and the blocking flag belongs to the socket that this process still
// accepts from.
func dupFile(rc syscall.RawConn, name string) (*os.File, error) {
	fd, err := dupRaw(rc)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// checkListener fails unless fd is a TCP socket that listens, and says
// what it is instead: a unit file can pass a datagram socket, a FIFO or an
// Accept=yes connection where a listener is wanted (sd_listen_fds(3) asks
// the receiver to check), and accept(2) would fail later with less to say.
func checkListener(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("not a socket: %w", os.NewSyscallError("getsockopt", err))
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("not a stream socket (type %d)", typ)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return os.NewSyscallError("getsockname", err)
	}
	switch sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
	default:
		return errors.New("not a TCP socket")
	}
	// Some systems answer with the option's bit (0x2 on the BSDs) rather
	// than 1: any non-zero value means listening.
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err == nil && on == 0 {
		return errors.New("not listening (an accepted connection?)")
	}
	return nil
}

// checkListenerFile is checkListener for a file.
func checkListenerFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = checkListener(int(fd)) }); err != nil {
		return err
	}
	return cerr
}
