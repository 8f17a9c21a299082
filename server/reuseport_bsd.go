//go:build !evio && !stdnet && (aix || solaris || darwin || dragonfly || netbsd || openbsd)

package server

// reusePortOpt is 0: these systems' SO_REUSEPORT does not spread
// connections across the sockets that share a port, so one loop accepts
// and hands connections to the others (see loop.give).
const reusePortOpt = 0
