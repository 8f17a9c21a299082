package main

// The echo command as a process (built once by TestMain, with -race when
// the tests have it), and its handler in this process where the engine's
// pause must be watched from inside.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// dialEcho connects to addr; the test's cleanup closes the connection.
func dialEcho(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// randomBytes returns n bytes of rng.
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// exchange writes data to c in pieces of random sizes, half of them 1 to
// 16 bytes and half up to maxPiece, with a pause now and then, while it
// reads the echo; it checks that exactly data comes back, and nothing
// more for 100ms.
func exchange(c *net.TCPConn, data []byte, maxPiece int, rng *rand.Rand) error {
	deadline := time.Now().Add(60 * time.Second)
	c.SetDeadline(deadline)
	read := make(chan error, 1)
	go func() {
		got := make([]byte, len(data))
		if n, err := io.ReadFull(c, got); err != nil {
			read <- fmt.Errorf("read %d bytes of %d: %v", n, len(data), err)
			return
		}
		if i := firstDiff(got, data); i >= 0 {
			read <- fmt.Errorf("byte %d of %d differs", i, len(data))
			return
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var one [1]byte
		if n, err := c.Read(one[:]); n > 0 || !isTimeout(err) {
			read <- fmt.Errorf("after the echo: read %d bytes, %v", n, err)
			return
		}
		read <- nil
	}()
	for rest := data; len(rest) > 0; {
		n := 1 + rng.IntN(16)
		if rng.IntN(2) == 0 {
			n = 1 + rng.IntN(maxPiece)
		}
		n = min(n, len(rest))
		if _, err := c.Write(rest[:n]); err != nil {
			return fmt.Errorf("write: %v", err)
		}
		rest = rest[n:]
		if rng.IntN(100) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return <-read
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkLog fails the test if the log tells of a failed write.
func checkLog(t *testing.T, log string) {
	t.Helper()
	if strings.Contains(log, "level=ERROR") || !strings.Contains(log, "failed_writes=0") {
		t.Errorf("the log tells of failed writes:\n%s", log)
	}
}

// TestSplits: 8 clients at once send 1 MB each, cut at random, and read
// it back as they send.
func TestSplits(t *testing.T) {
	p := startEcho(t)
	var wg sync.WaitGroup
	for i := range 8 {
		c := dialEcho(t, p.Addr)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			if err := exchange(c, randomBytes(rng, 1<<20), 8192, rng); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	checkLog(t, p.Stop(t))
}

// TestLarge: 48 MB through one connection, read as it is sent.
func TestLarge(t *testing.T) {
	p := startEcho(t)
	rng := rand.New(rand.NewPCG(2, 2))
	start := time.Now()
	if err := exchange(dialEcho(t, p.Addr), randomBytes(rng, 48<<20), 256<<10, rng); err != nil {
		t.Fatal(err)
	}
	t.Logf("48 MB there and back in %v", time.Since(start).Round(time.Millisecond))
	checkLog(t, p.Stop(t))
}

// writeUntilStalled writes data to c from another goroutine, without
// reading, until its writes make no progress for 500ms; it returns how
// many bytes went out, and a channel for the writer's end.
func writeUntilStalled(t *testing.T, c *net.TCPConn, data []byte) (int64, <-chan error) {
	t.Helper()
	var sent atomic.Int64
	done := make(chan error, 1)
	c.SetWriteDeadline(time.Now().Add(120 * time.Second))
	go func() {
		for rest := data; len(rest) > 0; {
			n, err := c.Write(rest[:min(len(rest), 64<<10)])
			sent.Add(int64(n))
			if err != nil {
				done <- err
				return
			}
			rest = rest[n:]
		}
		done <- nil
	}()
	last, since := int64(-1), time.Now()
	for time.Since(since) < 500*time.Millisecond {
		time.Sleep(10 * time.Millisecond)
		if n := sent.Load(); n != last {
			last, since = n, time.Now()
		}
		if last == int64(len(data)) {
			t.Fatalf("all %d bytes went out to a server that was to stop reading", last)
		}
	}
	return last, done
}

// TestNoRead: a client sends 64 MB and reads nothing for a while: its
// sends stall, since the server stops reading it, and once it reads, every
// byte comes back.
func TestNoRead(t *testing.T) {
	p := startEcho(t)
	c := dialEcho(t, p.Addr)
	data := randomBytes(rand.New(rand.NewPCG(3, 3)), 64<<20)
	stalled, done := writeUntilStalled(t, c, data)
	t.Logf("writes stalled after %d KiB", stalled>>10)
	time.Sleep(time.Second) // not reading still
	got := make([]byte, len(data))
	c.SetReadDeadline(time.Now().Add(120 * time.Second))
	if n, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %d of %d bytes: %v", n, len(data), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if i := firstDiff(got, data); i >= 0 {
		t.Fatalf("byte %d differs", i)
	}
	checkLog(t, p.Stop(t))
}

// TestShutdown: SIGTERM ends the process; a client that reads gets its
// echo and the end, and a client that does not read holds the shutdown
// no longer than -shutdown-timeout.
func TestShutdown(t *testing.T) {
	p := startEcho(t, "-shutdown-timeout", "1s")
	// The grace ran out for the client that does not read.
	p.ExitOK = func(err error) bool {
		return err != nil && strings.Contains(p.Stderr(), "echo: shutdown: context deadline exceeded")
	}
	reader, stuck := dialEcho(t, p.Addr), dialEcho(t, p.Addr)
	writeUntilStalled(t, stuck, make([]byte, 64<<20))
	if _, err := io.WriteString(reader, "bye"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Stop(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the process took %v to stop", d)
	}
	reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(reader); string(b) != "bye" || err != nil {
		t.Errorf("read %q, %v; want \"bye\" and EOF", b, err)
	}
}

// counting is the echo handler with counts of its input and of its
// connections' most pending output.
type counting struct {
	echo
	in, maxPending atomic.Int64
}

func (h *counting) OnData(c *server.Conn, in []byte) {
	h.in.Add(int64(len(in)))
	h.echo.OnData(c, in)
	if p := int64(c.Pending()); p > h.maxPending.Load() {
		h.maxPending.Store(p) // one connection: no other writer
	}
}

// TestPaused watches the engine from inside: while its client does not
// read, the handler gets no input, every Write succeeds, and the pending
// output never passes MaxPendingOutput.
func TestPaused(t *testing.T) {
	const maxPending = 64 << 10
	h := &counting{echo: echo{log: slog.New(slog.DiscardHandler)}}
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", Handler: h, MaxPendingOutput: maxPending})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err) // the evio engine serves no Handler
	}
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	}()
	c := dialEcho(t, srv.Addr().String())
	data := randomBytes(rand.New(rand.NewPCG(4, 4)), 32<<20)
	stalled, done := writeUntilStalled(t, c, data)
	in := h.in.Load()
	time.Sleep(300 * time.Millisecond)
	if now := h.in.Load(); now != in {
		t.Errorf("the handler got %d bytes more while its client read nothing and its sends stalled", now-in)
	}
	t.Logf("sends stalled after %d KiB; the handler had %d KiB of them", stalled>>10, in>>10)
	got := make([]byte, len(data))
	c.SetReadDeadline(time.Now().Add(120 * time.Second))
	if n, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %d of %d bytes: %v", n, len(data), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("byte %d differs", firstDiff(got, data))
	}
	if n := h.failed.Load(); n != 0 {
		t.Errorf("%d writes failed", n)
	}
	if m := h.maxPending.Load(); m > maxPending {
		t.Errorf("pending output reached %d bytes, over MaxPendingOutput %d", m, maxPending)
	}
}
