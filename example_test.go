//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"fmt"
	"log"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

func Example() {
	p, err := poll.New()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if err := unix.SetNonblock(fds[0], true); err != nil {
		log.Fatal(err)
	}

	// The token is the caller's to choose; 7 could be an index into a
	// table of connections.
	if err := p.Add(fds[0], 7, poll.Readable); err != nil {
		log.Fatal(err)
	}
	if _, err := unix.Write(fds[1], []byte("hi")); err != nil {
		log.Fatal(err)
	}

	events := make([]poll.Event, 8)
	n, err := p.Wait(events, -1)
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range events[:n] {
		buf := make([]byte, 16)
		m, _ := unix.Read(fds[0], buf)
		fmt.Println(ev.Token, ev.Readable(), string(buf[:m]))
	}
	// Output: 7 true hi
}
