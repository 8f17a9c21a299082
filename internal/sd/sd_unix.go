//go:build unix

package sd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// send writes state as one datagram to the AF_UNIX socket addr. A leading
// '@' needs no rewriting here: on Linux the syscall package already puts
// the name in the abstract namespace (a leading NUL, no trailing one, as
// systemd binds it). On other systems it would name a relative path, so it
// is refused rather than sent somewhere unintended.
func send(addr, state string) error {
	if addr[0] == '@' && runtime.GOOS != "linux" && runtime.GOOS != "android" {
		return fmt.Errorf("%s: abstract socket names exist only on Linux: %w", addr, errors.ErrUnsupported)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	_, err = c.Write([]byte(state))
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// setCloexec marks an inherited descriptor close-on-exec. It uses fcntl
// rather than unix.CloseOnExec, which drops the error: EBADF is how we learn
// that LISTEN_FDS counts more descriptors than were passed.
func setCloexec(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	return os.NewSyscallError("fcntl", err)
}

// checkStream is what sd_is_socket(fd, 0, SOCK_STREAM, 1) checks, with the
// reason when the answer is no. Every Unix that x/sys/unix supports
// defines SO_ACCEPTCONN, so one file serves them all.
func checkStream(fd uintptr) error {
	typ, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	if err == unix.ENOTSOCK {
		return errors.New("not a socket")
	}
	if err != nil {
		return os.NewSyscallError("getsockopt SO_TYPE", err)
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("a %s socket, want SOCK_STREAM", sockTypeName(typ))
	}
	// Some systems answer with the option's bit (0x2 on the BSDs) rather
	// than 1, so any non-zero value means listening.
	acc, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return os.NewSyscallError("getsockopt SO_ACCEPTCONN", err)
	}
	if acc == 0 {
		return errors.New("a SOCK_STREAM socket that is not listening (an Accept=yes connection?)")
	}
	return nil
}

func sockTypeName(typ int) string {
	switch typ {
	case unix.SOCK_DGRAM:
		return "SOCK_DGRAM"
	case unix.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case unix.SOCK_RAW:
		return "SOCK_RAW"
	}
	return fmt.Sprintf("type %d", typ)
}
