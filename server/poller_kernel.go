//go:build !evio && !stdnet && !tcpoll_poll && (linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package server

// pollerMissesClose is false where package poll is built with epoll or
// kqueue, whose registrations close(2) removes (see drop).
const pollerMissesClose = false
