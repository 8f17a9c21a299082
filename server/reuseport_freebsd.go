//go:build !evio && !stdnet && freebsd

package server

import "golang.org/x/sys/unix"

// reusePortOpt: FreeBSD's SO_REUSEPORT lets sockets share a port but sends
// every connection to one of them; SO_REUSEPORT_LB (FreeBSD 12) spreads
// connections across the group, as Linux's SO_REUSEPORT does (setsockopt(2)).
const reusePortOpt = unix.SO_REUSEPORT_LB
