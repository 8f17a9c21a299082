//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix

package poll_test

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

// BenchmarkPingPong times b.N round trips of one byte over a socketpair.
// The peer is the same in both: a goroutine doing blocking reads and writes
// on its end. Only the serving side differs: a loop of Wait, read, write on
// this package (impl=poll), or a net.Conn on Go's own netpoller (impl=net).
// The sub-benchmarks are named so that `benchstat -col /impl` sets the two
// side by side (see bench/micro).
func BenchmarkPingPong(b *testing.B) {
	b.Run("impl=poll", benchPingPongPoll)
	b.Run("impl=net", benchPingPongNetConn)
}

func benchPingPongPoll(b *testing.B) {
	p, err := poll.New()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	benchPingPongPollOn(b, p)
}

// benchPingPongPollOn is the serving loop of benchPingPongPoll on p, which
// may have other descriptors registered.
func benchPingPongPollOn(b *testing.B, p *poll.Poller) {
	fd, peer := benchSocketpair(b)
	defer unix.Close(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		b.Fatal(err)
	}
	if err := p.Add(fd, 1, poll.Readable); err != nil {
		b.Fatal(err)
	}
	events := make([]poll.Event, 8)
	var buf [1]byte
	// Nothing is ready yet: this Wait only grows the poller's buffers
	// (poll(2)'s copy of its registrations) outside the timed loop.
	if _, err := p.Wait(events, 0); err != nil {
		b.Fatal(err)
	}

	b.ReportAllocs()
	b.ResetTimer()
	done := runPeer(b, peer)
	for i := 0; i < b.N; {
		if _, err := p.Wait(events, -1); err != nil {
			b.Fatal(err)
		}
		n, err := unix.Read(fd, buf[:])
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil || n != 1 {
			b.Fatalf("read: got %d, %v; want 1, nil", n, err)
		}
		if _, err := unix.Write(fd, buf[:]); err != nil {
			b.Fatalf("write: %v", err)
		}
		i++
	}
	<-done
}

func benchPingPongNetConn(b *testing.B) {
	fd, peer := benchSocketpair(b)
	f := os.NewFile(uintptr(fd), "socketpair")
	c, err := net.FileConn(f) // dups fd onto the runtime's netpoller
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var buf [1]byte

	b.ReportAllocs()
	b.ResetTimer()
	done := runPeer(b, peer)
	for range b.N {
		if _, err := c.Read(buf[:]); err != nil {
			b.Fatalf("read: %v", err)
		}
		if _, err := c.Write(buf[:]); err != nil {
			b.Fatalf("write: %v", err)
		}
	}
	<-done
}

// BenchmarkIdleRegistered is BenchmarkPingPong's poll loop with idle
// descriptors registered beside the active one: 10, 1,000 and 10,000
// socketpair ends, readable-interest, that never become ready. It shows
// what a Wait costs as registrations grow while the ready set stays at one:
// flat for epoll and kqueue, which hand back only what is ready, and rising
// for poll(2), which hands the kernel the whole set each time. Compare a run
// with -tags tcpoll_poll against one without.
func BenchmarkIdleRegistered(b *testing.B) {
	for _, idle := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("idle=%d", idle), func(b *testing.B) {
			benchIdleRegistered(b, idle)
		})
	}
}

func benchIdleRegistered(b *testing.B, idle int) {
	raiseFileLimit(b, idle+200)
	p, err := poll.New()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < idle; i += 2 {
		x, y := benchSocketpair(b)
		b.Cleanup(func() { unix.Close(x) })
		for _, fd := range []int{x, y} {
			if err := p.Add(fd, uint64(1000+fd), poll.Readable); err != nil {
				b.Fatal(err)
			}
		}
	}
	benchPingPongPollOn(b, p)
}

// benchSocketpair returns a connected pair of blocking stream sockets. The
// caller closes fd; peer is closed when the benchmark ends.
func benchSocketpair(b *testing.B) (fd, peer int) {
	b.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	b.Cleanup(func() { unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// runPeer starts b.N rounds of a blocking write then read on peer, and
// closes the returned channel when done. Should the benchmark stop early,
// closing its end of the pair ends the peer's blocking read.
func runPeer(b *testing.B, peer int) <-chan struct{} {
	done := make(chan struct{})
	b.Cleanup(func() { <-done })
	n := b.N
	go func() {
		defer close(done)
		buf := [1]byte{'p'}
		for range n {
			if _, err := retry(unix.Write, peer, buf[:]); err != nil {
				b.Errorf("peer write: %v", err)
				return
			}
			if m, err := retry(unix.Read, peer, buf[:]); err != nil || m != 1 {
				b.Errorf("peer read: got %d, %v; want 1, nil", m, err)
				return
			}
		}
	}()
	return done
}

// retry calls a blocking read or write until no signal interrupts it.
func retry(f func(int, []byte) (int, error), fd int, p []byte) (int, error) {
	for {
		n, err := f(fd, p)
		if err != unix.EINTR {
			return n, err
		}
	}
}
