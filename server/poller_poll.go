//go:build !evio && !stdnet && (aix || solaris || (tcpoll_poll && (linux || darwin || dragonfly || freebsd || netbsd || openbsd)))

package server

// pollerMissesClose is set where package poll is built with its poll(2)
// backend, whose registrations close(2) does not remove (see drop).
const pollerMissesClose = true
