//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pausedWriter, on its first input, puts the connection in the state a
// client that stopped reading leaves it in once its kept output has been
// flushed: paused for output (stPaused), nothing kept, and then writes from
// another goroutine over half MaxPendingOutput, which go out through the
// turn's batch. Later input is echoed.
type pausedWriter struct{ big []byte }

func (p *pausedWriter) OnOpen(c *Conn) {}
func (p *pausedWriter) OnData(c *Conn, in []byte) {
	if string(in) != "first\n" {
		c.Write(in)
		return
	}
	pc := c.eng.(*pollConn)
	s := pc.l.e.table.get(int(pc.fd))
	s.state |= stPaused
	pc.l.setInterest(s, int(pc.fd))
	go c.AsyncWrite(p.big)
}
func (p *pausedWriter) OnClose(c *Conn, why error) {}

// TestPausedResumesAfterBatch: a connection paused for its output reads
// again once a batch has taken the last of that output, though no write
// event follows (reading stopped for good before).
func TestPausedResumesAfterBatch(t *testing.T) {
	const max = 64 << 10
	h := &pausedWriter{big: []byte(strings.Repeat("x", max*3/4-1) + "\n")}
	s, err := New(Config{Addr: "127.0.0.1:0", Handler: h, MaxPendingOutput: max})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(context.Background())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "first\n")
	if got, err := br.ReadString('\n'); len(got) != len(h.big) || err != nil {
		t.Fatalf("read %d bytes, %v; want the %d written", len(got), err, len(h.big))
	}
	io.WriteString(c, "again\n")
	if got, err := br.ReadString('\n'); got != "again\n" || err != nil {
		t.Fatalf("read %q, %v; want the echo: reading never resumed", got, err)
	}
}
