//go:build !evio && !stdnet && (aix || solaris || darwin || dragonfly || freebsd || netbsd || openbsd)

package server

// unsentOpt is 0: a client that stops reading may hold as much as its
// socket's send buffer in the kernel (see limitUnsent). The BSDs have no
// TCP_NOTSENT_LOWAT; macOS has one, but it only delays the write
// notifications of kqueue, poll and select (tcp(4)), not what send(2)
// takes, so it would bound nothing here.
const unsentOpt = 0
