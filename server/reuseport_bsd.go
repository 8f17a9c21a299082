//go:build !evio && !stdnet && (aix || solaris || darwin || dragonfly || netbsd || openbsd || (linux && tcpoll_kqsim && !tcpoll_poll))

package server

// reusePortOpt is 0: these systems' SO_REUSEPORT does not spread
// connections across the sockets that share a port, so one loop accepts
// and hands connections to the others (see loop.give). Linux's does, but
// on the kqueue model (package poll's -tags tcpoll_kqsim) the server runs
// as on macOS: handoff and all, so that the model drives the same path.
// Its sockets stay Linux's: accept4, TCP_NOTSENT_LOWAT, the io_uring
// sendRing.
const reusePortOpt = 0
