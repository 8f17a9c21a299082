//go:build unix

package server

import (
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
