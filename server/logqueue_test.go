package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateWriter is a log destination that blocks, like stderr on a pipe
// nobody reads, until it is opened.
type gateWriter struct {
	gate    chan struct{} // closed by open
	entered chan struct{} // a token each time a Write starts
	once    sync.Once

	mu  sync.Mutex
	buf bytes.Buffer
}

func newGateWriter(t *testing.T) *gateWriter {
	w := &gateWriter{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	t.Cleanup(w.open) // let a stuck writer goroutine finish
	return w
}

func (w *gateWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *gateWriter) open() { w.once.Do(func() { close(w.gate) }) }

// blocked waits until a Write is stuck at the gate.
func (w *gateWriter) blocked(t *testing.T) {
	t.Helper()
	select {
	case <-w.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the log's writer never wrote")
	}
}

// lines returns what was written, without the time attribute.
func (w *gateWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for l := range strings.Lines(w.buf.String()) {
		out = append(out, strings.TrimSuffix(l, "\n"))
	}
	return out
}

// textNoTime is a text handler without the time, so lines compare exactly.
func textNoTime(w io.Writer) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	})
}

// newTestQueue is NewLogQueue with room for size records.
func newTestQueue(h slog.Handler, size int) *LogQueue {
	return &LogQueue{h: h, q: newLogQueue(size)}
}

// within runs f and fails the test if it takes longer than d: a Handle
// that waits for a stuck writer would never return.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s took more than %v: it waits for the log's writer", what, d)
	}
}

// drained waits for the queue to be written, without Flush's count of
// the drops.
func drained(t *testing.T, lq *LogQueue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lq.q.wait(ctx); err != nil {
		t.Fatalf("waiting for the queue: %v", err)
	}
}

func flush(t *testing.T, lq *LogQueue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lq.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// TestLogQueueDrops: with the writer stuck, Handle returns at once; the
// queue holds what it has room for, drops and counts the rest, and the
// first record queued after the drops carries their count.
func TestLogQueueDrops(t *testing.T) {
	w := newGateWriter(t)
	lq := newTestQueue(textNoTime(w), 4)
	log := slog.New(lq)

	log.Info("r", "i", 0)
	w.blocked(t) // the writer holds record 0
	within(t, 2*time.Second, "logging with a stuck writer", func() {
		for i := 1; i <= 4+3; i++ { // 1-4 fill the queue; 5-7 are dropped
			log.Info("r", "i", i)
		}
	})
	w.open()
	drained(t, lq)
	log.Info("r", "i", 8)
	log.Info("r", "i", 9)
	flush(t, lq)

	want := []string{
		"level=INFO msg=r i=0",
		"level=INFO msg=r i=1",
		"level=INFO msg=r i=2",
		"level=INFO msg=r i=3",
		"level=INFO msg=r i=4",
		"level=INFO msg=r i=8 dropped=3",
		"level=INFO msg=r i=9",
	}
	if got := w.lines(); !equal(got, want) {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func equal(a, b []string) bool {
	return len(a) == len(b) && strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestLogQueueManyStuck: thousands of records from several goroutines with
// the writer stuck all return promptly, and every one is written or
// counted as dropped.
func TestLogQueueManyStuck(t *testing.T) {
	w := newGateWriter(t)
	lq := newTestQueue(textNoTime(w), 64)
	log := slog.New(lq)
	const goroutines, each = 4, 2500
	log.Info("first")
	w.blocked(t)
	within(t, 5*time.Second, "10,000 records with a stuck writer", func() {
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					log.Debug("r", "g", g, "i", i)
				}
			})
		}
		wg.Wait()
	})
	w.open()
	drained(t, lq)
	log.Info("last")
	flush(t, lq)

	lines := w.lines()
	written, dropped := 0, 0
	for _, l := range lines {
		if strings.Contains(l, "msg=r ") {
			written++
		}
		if _, n, ok := strings.Cut(l, " dropped="); ok {
			var k int
			fmt.Sscan(n, &k)
			dropped += k
		}
	}
	if written != 64 {
		t.Errorf("%d records written, want the queue's 64", written)
	}
	if written+dropped != goroutines*each {
		t.Errorf("%d written + %d counted as dropped, want %d", written, dropped, goroutines*each)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "msg=last dropped=") {
		t.Errorf("last line %q, want the count of the drops", last)
	}
}

// TestLogQueueFlush: Flush waits for what was queued, gives up at its
// context's deadline when the writer is stuck, and counts drops that no
// later record carried.
func TestLogQueueFlush(t *testing.T) {
	w := newGateWriter(t)
	lq := newTestQueue(textNoTime(w), 2)
	log := slog.New(lq)
	for i := range 5 { // one held by the writer, 2 queued, 2 dropped
		log.Info("r", "i", i)
		if i == 0 {
			w.blocked(t)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := lq.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with a stuck writer returned %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Flush with a stuck writer took %v, want about its 50 ms", d)
	}

	w.open()
	flush(t, lq)
	want := []string{
		"level=INFO msg=r i=0",
		"level=INFO msg=r i=1",
		"level=INFO msg=r i=2",
		`level=WARN msg="log records dropped" dropped=2`,
	}
	if got := w.lines(); !equal(got, want) {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLogQueueDerived: handlers made by With and WithGroup write through
// the same queue, in the order of the calls.
func TestLogQueueDerived(t *testing.T) {
	var buf logSafeBuffer
	lq := NewLogQueue(textNoTime(&buf))
	log := slog.New(lq)
	log.With("a", 1).Info("one")
	log.WithGroup("g").Info("two", "b", 2)
	log.Info("three")
	flush(t, lq)
	want := "level=INFO msg=one a=1\nlevel=INFO msg=two g.b=2\nlevel=INFO msg=three\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Debug disabled, want the wrapped handler's level")
	}
	quiet := NewLogQueue(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if quiet.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Info enabled behind a Warn handler")
	}
}

type logSafeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logSafeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logSafeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countHandler counts records and allocates nothing.
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h *countHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h *countHandler) WithGroup(string) slog.Handler             { return h }

// TestLogQueueAllocs: a record through the queue allocates no more than
// the same record handed to the handler directly.
func TestLogQueueAllocs(t *testing.T) {
	var direct, behind countHandler
	lq := NewLogQueue(&behind)
	ctx := context.Background()
	logDirect, logQueued := slog.New(&direct), slog.New(lq)
	logQueued.Info("start the writer")
	attrs := func(log *slog.Logger) func() {
		return func() {
			log.LogAttrs(ctx, slog.LevelInfo, "r", slog.Int("fd", 7), slog.String("remote", "127.0.0.1:1"))
		}
	}
	want := testing.AllocsPerRun(1000, attrs(logDirect))
	if got := testing.AllocsPerRun(1000, attrs(logQueued)); got > want {
		t.Errorf("LogAttrs through the queue: %v allocations, want at most the %v of the handler alone", got, want)
	}
	// The engines' form, with arguments boxed.
	args := func(log *slog.Logger) func() {
		return func() { log.Debug("connection closed", "fd", 7, "reason", "eof") }
	}
	want = testing.AllocsPerRun(1000, args(logDirect))
	if got := testing.AllocsPerRun(1000, args(logQueued)); got > want {
		t.Errorf("Debug through the queue: %v allocations, want at most the %v of the handler alone", got, want)
	}
	flush(t, lq)
}

// TestServerLogStuck runs a server that logs every connection and message
// to a writer that never returns: clients are answered at once, and
// Shutdown and Serve return, a second after their work is done at most.
func TestServerLogStuck(t *testing.T) {
	w := newGateWriter(t)
	s, err := New(Config{Addr: "127.0.0.1:0", Loops: 2, Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()

	const clients, msgs = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", s.Addr().String(), 2*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, len(Answer))
			for j := range msgs {
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := fmt.Fprintf(c, "client %d message %d\n", i, j); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- fmt.Errorf("client %d, answer %d: %w", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Without the queue, an engine stuck in a log call never finishes
	// Shutdown: wait for it no longer than Serve.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	for range 2 {
		select {
		case err := <-shut:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("Shutdown or Serve did not return with the log stuck")
		}
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("Shutdown and Serve took %v with the log stuck, want about a second", d)
	}
}
