//go:build !evio && !stdnet

package server

import "golang.org/x/sys/unix"

// unsentOpt is TCP_NOTSENT_LOWAT (tcp(7)): see limitUnsent.
const unsentOpt = unix.TCP_NOTSENT_LOWAT
