package main

// Tests of the pieces in this process: the line framing against a model,
// and the hub on a server.Server, where its counters and room can be
// watched.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// refLines is what lines.feed must do with in, fed whole or in any
// pieces: pass the complete lines before the first run of max bytes
// without '\n' (a line of more than max bytes, or an unfinished one that
// cannot end in time), and fail at such a run.
func refLines(in []byte, max int) (out []byte, ok bool) {
	run, end := 0, 0
	for i, b := range in {
		if b == '\n' {
			run, end = 0, i+1
			continue
		}
		if run++; run >= max {
			return in[:end], false
		}
	}
	return in[:end], true
}

// feedPieces feeds in to a fresh lines of max in pieces cut at cuts, and
// checks what it passes as it goes.
func feedPieces(t *testing.T, in []byte, max int, cuts []int) (out []byte, ok bool) {
	t.Helper()
	l := lines{max: max}
	prev := 0
	for _, cut := range append(cuts, len(in)) {
		ok = l.feed(in[prev:cut], func(b []byte) {
			if len(b) == 0 || b[len(b)-1] != '\n' {
				t.Fatalf("emitted %q, not whole lines", b)
			}
			out = append(out, b...)
		})
		if !ok {
			return out, false
		}
		if len(l.held) >= max {
			t.Fatalf("holds %d bytes, max %d", len(l.held), max)
		}
		prev = cut
	}
	return out, true
}

func TestLinesSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		max := 1 + rng.IntN(12)
		in := make([]byte, rng.IntN(60))
		for i := range in {
			in[i] = "\nab"[rng.IntN(3)]
		}
		var cuts []int
		for i := 0; i < len(in); i += rng.IntN(8) {
			cuts = append(cuts, i)
		}
		got, ok := feedPieces(t, in, max, cuts)
		want, wantOK := refLines(in, max)
		if !bytes.Equal(got, want) || ok != wantOK {
			t.Fatalf("max %d, %q cut at %v: got %q, %v; want %q, %v", max, in, cuts, got, ok, want, wantOK)
		}
	}
}

// FuzzLines checks lines.feed against refLines, whole and cut in two.
func FuzzLines(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(4), uint8(3)) // under the limit, a line held
	f.Add([]byte("abcd\n"), uint8(4), uint8(2))       // one over, its '\n' sent
	f.Add([]byte("abc\n"), uint8(4), uint8(4))        // exactly max
	f.Add([]byte("ab"), uint8(2), uint8(1))           // unfinished at max, cut
	f.Add([]byte("\n\n\n"), uint8(1), uint8(1))       // empty lines at max 1
	f.Fuzz(func(t *testing.T, in []byte, max, cut uint8) {
		m := 1 + int(max)
		c := min(int(cut), len(in))
		want, wantOK := refLines(in, m)
		for _, cuts := range [][]int{nil, {c}} {
			got, ok := feedPieces(t, in, m, cuts)
			if !bytes.Equal(got, want) || ok != wantOK {
				t.Fatalf("max %d, %q cut at %v: got %q, %v; want %q, %v", m, in, cuts, got, ok, want, wantOK)
			}
		}
	})
}

// serveHub serves a hub in this process, on two loops, and returns it
// with its address. The test's cleanup shuts the server down and checks
// that the room is empty then.
func serveHub(t *testing.T, maxLine, maxPending int) (*hub, string) {
	t.Helper()
	h := newHub(maxLine, slog.New(slog.DiscardHandler))
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", Handler: h, MaxPendingOutput: maxPending, Loops: 2})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err) // the evio engine serves no Handler
	}
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if n := h.size(); n != 0 {
			t.Errorf("%d members left after the shutdown", n)
		}
	})
	return h, srv.Addr().String()
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("still not %s after 10s", what)
		}
	}
}

// TestRoom: the room holds the connections open, whatever way they end.
func TestRoom(t *testing.T) {
	h, addr := serveHub(t, 4096, 256<<10)
	cs := make([]*client, 20)
	for i := range cs {
		cs[i] = dial(t, addr)
		cs[i].id = i
	}
	waitFor(t, "20 members", func() bool { return h.size() == 20 })
	cs[0].send("hello\n")
	for _, c := range cs[1:] {
		if got := c.line(10 * time.Second); got != "hello\n" {
			t.Fatalf("client %d read %q", c.id, got)
		}
	}
	for i, c := range cs[:12] {
		switch i % 3 {
		case 0:
			c.c.Close()
		case 1:
			c.c.SetLinger(0)
			c.c.Close()
		case 2:
			c.c.CloseWrite()
			c.disconnected(10 * time.Second)
		}
	}
	waitFor(t, "8 members", func() bool { return h.size() == 8 })
	// The other 8 leave at the shutdown, which the cleanup checks.
}

// TestCounters: a client that does not read is disconnected once the
// server would hold more than MaxPendingOutput for it, counted once
// however many lines find it behind; a line over the limit disconnects
// its sender, counted.
func TestCounters(t *testing.T) {
	const maxPending = 64 << 10
	h, addr := serveHub(t, 128, maxPending)
	cs := dialN(t, addr, 4)
	pub, reader, stalled, long := cs[0], cs[1], cs[2], cs[3]
	stalled.c.SetReadBuffer(4096)
	// The reader and the sender of the long line read all along.
	var got, gotLong atomic.Int64
	done := make(chan error, 1)
	go func() {
		reader.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, err := io.Copy(io.Discard, io.TeeReader(reader.r, counter{&got}))
		done <- err
	}()
	longDone := make(chan error, 1)
	go func() {
		long.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, err := io.Copy(io.Discard, io.TeeReader(long.r, counter{&gotLong}))
		longDone <- err
	}()
	line := strings.Repeat("z", 99) + "\n"
	buf := []byte(strings.Repeat(line, 160)) // 16,000 bytes
	sent := int64(0)
	// publish sends buf once the clients that read have read all before
	// it, so that nothing the server holds for them comes near the bound.
	publish := func() {
		for got.Load() < sent || gotLong.Load() < sent {
			time.Sleep(100 * time.Microsecond)
		}
		pub.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := pub.c.Write(buf); err != nil {
			t.Fatal(err)
		}
		sent += int64(len(buf))
	}
	for h.dropped.Load() == 0 && sent < 64<<20 {
		publish()
	}
	if h.dropped.Load() != 1 {
		t.Fatalf("dropped %d after %d MB", h.dropped.Load(), sent>>20)
	}
	stalled.disconnected(10 * time.Second)
	waitFor(t, "3 members", func() bool { return h.size() == 3 })
	// More lines find no one behind.
	for range 10 {
		publish()
	}
	waitFor(t, "all read", func() bool { return got.Load() == sent })
	if n := h.dropped.Load(); n != 1 {
		t.Errorf("dropped %d, want 1", n)
	}
	long.send(strings.Repeat("w", 128))
	select {
	case <-longDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender of a long line is still connected after 10s")
	}
	if n := h.tooLong.Load(); n != 1 {
		t.Errorf("tooLong %d, want 1", n)
	}
	waitFor(t, "2 members", func() bool { return h.size() == 2 })
	reader.c.Close()
	<-done
}

// counter counts the bytes written to it.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}
