//go:build evio

package server

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// TestEvioBusyLoop pins down evio's busy loop (engine_evio.go): while a
// client that does not read has answers pending and more of its input
// waits, evio's loop retries the write on every pass, and nearly all of
// those attempts fail with EAGAIN. PreWrite counts them.
func TestEvioBusyLoop(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	go func() {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write(bytes.Repeat([]byte("\n"), 1<<20)) // never reads the answers
	}()
	e := s.eng.(*evioEngine)
	var in int64
	for deadline := time.Now().Add(5 * time.Second); ; {
		time.Sleep(100 * time.Millisecond)
		was := in
		if in = s.Stats().BytesIn.Load(); in > 0 && in == was {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("evio never stopped reading the client")
		}
	}
	before := e.writes.Load()
	time.Sleep(200 * time.Millisecond)
	n := e.writes.Load() - before
	if n < 1000 {
		t.Fatalf("%d write attempts in 200ms while paused; evio used to spin (if it no longer does, update engine_evio.go)", n)
	}
	t.Logf("%d write attempts in 200ms while the client was paused", n)
}
