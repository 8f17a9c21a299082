//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server_test

import (
	"context"
	"math"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// deadlined is a Handler that gives every connection a read timeout, or
// none.
type deadlined struct {
	d      time.Duration
	opened chan struct{}
}

func (h deadlined) OnOpen(c *server.Conn) {
	if h.d > 0 {
		c.SetReadTimeout(h.d)
	}
	h.opened <- struct{}{}
}
func (deadlined) OnData(*server.Conn, []byte) {}
func (deadlined) OnClose(*server.Conn, error) {}

// TestDeadlineMemory: an armed read timeout costs an idle connection at
// most 16 bytes of heap, against the same connection without one: its
// entry in the loop's timer heap (8 bytes, in chunks of 1,024), nothing
// per input or per move. Measured: 13 B at 6,000 connections, 12 at
// 8,000, some 30 KB a loop being fixed costs of its first timers.
func TestDeadlineMemory(t *testing.T) {
	const conns = 6000
	heap := func(d time.Duration) float64 {
		h := deadlined{d, make(chan struct{}, conns)}
		s, err := server.New(server.Config{Addr: "127.0.0.1:0", Loops: 1, Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background()) }()
		defer func() {
			s.Shutdown(context.Background())
			<-served
		}()
		// One connection first, so that one-time costs are not counted.
		held := []net.Conn{dial(t, s.Addr()).c}
		<-h.opened
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range conns {
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		for range conns {
			receive(t, h.opened, "OnOpen")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		return float64(after.HeapAlloc-before.HeapAlloc) / conns
	}
	// Three rounds each way, interleaved; the least of each is the cost
	// with the least garbage of other work in it.
	without, with := math.Inf(1), math.Inf(1)
	for range 3 {
		without = min(without, heap(0))
		with = min(with, heap(time.Hour))
	}
	t.Logf("heap per idle connection (server and this test's client sockets): %.0f B without a deadline, %.0f B with", without, with)
	if with-without > 16 {
		t.Fatalf("an armed read timeout costs %.1f B a connection, want at most 16", with-without)
	}
}
