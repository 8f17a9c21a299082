//go:build !evio && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

package server

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
)

// TestCloseNotifyToNonReader: a handled connection with no deadline of its
// own (no IdleTimeout, no write timeout, no Close) ends gracefully while
// its client reads nothing. crypto/tls bounds the close_notify's Write by
// 5 s of its own; the transport must let that Write fail then, not retry
// it against the passed deadline for ever, a CPU spinning per connection.
func TestCloseNotifyToNonReader(t *testing.T) {
	p, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer b.Close()
	e := &stdnetEngine{cfg: &Config{}, st: &Stats{}}
	sc := &stdConn{raw: a, c: a}
	h := newStdHandle(e, sc)
	var calls atomic.Int64
	tr := &stdTransport{Conn: a, st: e.st, onWriteTimeout: func(progress bool) bool {
		calls.Add(1)
		return h.tlsWriteTimedOut(progress)
	}}
	tc := tls.Server(tr, p.ServerConfig())
	go tls.Client(b, p.ClientConfig()).Handshake()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	sc.c = tc
	done := make(chan error, 1)
	go func() { done <- tc.CloseWrite() }() // the client reads no more
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("CloseWrite to a client that reads nothing succeeded")
		}
		if n := calls.Load(); n > 2 {
			t.Fatalf("the Write was retried %d times against its passed deadline", n)
		}
	case <-time.After(8 * time.Second):
		n := calls.Load()
		b.Close()
		t.Fatalf("CloseWrite still running after 8 s, the Write retried %d times", n)
	}
}
