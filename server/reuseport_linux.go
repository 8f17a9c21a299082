//go:build !evio && !stdnet && (!tcpoll_kqsim || tcpoll_poll)

package server

import "golang.org/x/sys/unix"

// reusePortOpt gives every loop its own SO_REUSEPORT listener, and the
// kernel spreads new connections across them (socket(7)), so loops never
// contend for one accept queue.
const reusePortOpt = unix.SO_REUSEPORT
