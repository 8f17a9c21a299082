//go:build unix

package server

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dupFile duplicates the descriptor behind rc as a file closed on exec.
// Unlike net's File methods, it leaves the socket non-blocking: a file
// from those is handed out in blocking mode when os/exec passes it on,
// and the blocking flag belongs to the socket that this process still
// accepts from.
func dupFile(rc syscall.RawConn, name string) (*os.File, error) {
	fd, derr := -1, error(nil)
	err := rc.Control(func(s uintptr) {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		if fd, derr = unix.Dup(int(s)); derr == nil {
			unix.CloseOnExec(fd)
		}
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
