//go:build !evio && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// opener hands each connection it opens to the test.
type opener chan *server.Conn

func (o opener) OnOpen(c *server.Conn)           { o <- c }
func (opener) OnData(c *server.Conn, in []byte)  {}
func (opener) OnClose(c *server.Conn, why error) {}

// TestHandlerStdnetNonReader: writes to a client that does not read meet
// MaxPendingOutput once the kernel holds little of them (on Linux, where
// TCP_NOTSENT_LOWAT bounds it: about as soon as on the poll engine, not
// after the megabytes of an autotuned send buffer), and Abort resets the
// connection, so the client sees its end at once instead of being sent
// what the kernel held.
func TestHandlerStdnetNonReader(t *testing.T) {
	const max = 64 << 10
	opened := make(opener, 1)
	s := startServer(t, server.Config{Handler: opened, MaxPendingOutput: max})
	c := dial(t, s.Addr())
	c.c.SetReadBuffer(4096)
	var hc *server.Conn
	select {
	case hc = <-opened:
	case <-time.After(ioTimeout):
		t.Fatal("no OnOpen")
	}
	line := make([]byte, 1024)
	sent := 0
	for start := time.Now(); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := hc.AsyncWriteContext(ctx, line)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent += len(line)
		if time.Since(start) > ioTimeout {
			t.Fatalf("%d bytes written to a client that does not read, and no backpressure", sent)
		}
	}
	// Before the limit: 4 MB here, where tcp_wmem's maximum is 4 MiB.
	// With it: 110 KB, MaxPendingOutput and the limit plus what is in
	// flight.
	if runtime.GOOS == "linux" && sent > 1<<20 {
		t.Errorf("%d bytes taken for a client that does not read, MaxPendingOutput %d", sent, max)
	}
	t.Logf("%d bytes taken before backpressure, MaxPendingOutput %d", sent, max)
	skipUnderWine(t, "Wine reports a reset that came before the read as EOF")
	if err := hc.Abort(nil); err != nil {
		t.Fatal(err)
	}
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	n, err := io.Copy(io.Discard, c.c)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("read %d bytes and no end %v after Abort", n, ioTimeout)
	case err == nil:
		t.Errorf("read %d bytes then EOF after Abort; want a reset", n)
	}
}
