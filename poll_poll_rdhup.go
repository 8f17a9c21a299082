//go:build tcpoll_poll && (linux || freebsd)

package poll

import "golang.org/x/sys/unix"

// pollRDHUP asks poll(2) to report the peer's shutdown(SHUT_WR) as
// ReadClosed. Linux has it since 2.6.17, FreeBSD since 12.0; its value
// differs between them and between Linux architectures.
const pollRDHUP = unix.POLLRDHUP
