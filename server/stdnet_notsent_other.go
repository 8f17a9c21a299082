//go:build !evio && !linux && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

package server

import "net"

// limitUnsentStd does nothing: only Linux has a TCP_NOTSENT_LOWAT that
// bounds what a write leaves in the kernel (see the poll engine's
// unsentOpt), so a client that does not read may hold its socket's send
// buffer here, besides MaxPendingOutput.
func limitUnsentStd(c net.Conn) {}
