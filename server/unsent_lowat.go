//go:build !evio && !stdnet && (linux || darwin)

package server

import "golang.org/x/sys/unix"

// unsentOpt is TCP_NOTSENT_LOWAT (tcp(7); tcp(4) on macOS): see
// limitUnsent.
const unsentOpt = unix.TCP_NOTSENT_LOWAT
