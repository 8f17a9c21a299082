//go:build unix

package upgrade

import "syscall"

func closeOnExec(fd int) { syscall.CloseOnExec(fd) }
