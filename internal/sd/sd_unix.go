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
