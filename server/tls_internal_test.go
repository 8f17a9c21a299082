//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
)

// requeue echoes, and on its first input queues the connection's TLS state
// for the loop once more, as a handshake goroutine does when it posts its
// end after the turn that took up the end has taken t off the queue.
type requeue struct {
	opens atomic.Int32
	done  atomic.Bool
}

func (r *requeue) OnOpen(c *Conn) { r.opens.Add(1) }
func (r *requeue) OnData(c *Conn, in []byte) {
	if !r.done.Swap(true) {
		pc := c.eng.(*pollConn)
		pc.l.postTLS(pc.l.e.table.get(int(pc.fd)).x.tls)
	}
	c.Write(in)
}
func (r *requeue) OnClose(c *Conn, why error) {}

// TestTLSEndTakenOnce: a handshake's end seen a second time is not taken
// up again: the connection is opened once, serves on, and the server shuts
// down at once. (Taken up twice, the connection was pushed onto the active
// list it was in, and the list looped.)
func TestTLSEndTakenOnce(t *testing.T) {
	p, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	r := &requeue{}
	s, err := New(Config{Addr: "127.0.0.1:0", TLS: p.ServerConfig(), Handler: r})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	c, err := tls.Dial("tcp", s.Addr().String(), p.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for _, m := range []string{"one\n", "two\n", "three\n"} {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
		if got, err := br.ReadString('\n'); got != m || err != nil {
			t.Fatalf("read %q, %v; want the echo %q", got, err, m)
		}
	}
	c.Close()
	if n := r.opens.Load(); n != 1 {
		t.Errorf("OnOpen ran %d times", n)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("Shutdown did not return, forced or not: a loop is stuck")
	}
	<-served
}
