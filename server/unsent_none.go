//go:build !evio && !stdnet && (aix || solaris || dragonfly || freebsd || netbsd || openbsd)

package server

// unsentOpt is 0: these systems have no TCP_NOTSENT_LOWAT, so a client
// that stops reading may hold as much as its socket's send buffer in the
// kernel (see limitUnsent).
const unsentOpt = 0
