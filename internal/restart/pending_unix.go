//go:build unix

package restart

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// pending tells, without blocking and without consuming anything, what
// the next read of c would return: io.EOF if the server's FIN has come
// (and nothing before it is unread), a socket error such as ECONNRESET, or
// the number of bytes waiting (0: nothing yet).
//
// It peeks with recv(MSG_PEEK) on the non-blocking descriptor. A read
// with a deadline already past cannot do this: net.Conn returns the
// timeout before it tries the socket.
func pending(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		n    int
		rerr error
		b    [1]byte
	)
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
			if rerr != unix.EINTR {
				return true // done: never wait for readiness
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK:
		return 0, nil
	case rerr != nil:
		return 0, os.NewSyscallError("recvfrom", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
