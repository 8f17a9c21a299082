package server_test

// End-to-end tests of whichever engine this build runs (go test, go test
// -tags evio, go test -tags stdnet), through real loopback sockets. Where
// evio cannot meet PROTOCOL.md the test pins down what evio does instead,
// behind the helpers below, so a change in evio's behaviour shows up too.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// ioTimeout bounds every read and write of these tests.
const ioTimeout = 5 * time.Second

// answersAtEOF reports whether the engine answers an unfinished message at
// the client's EOF. evio closes the socket before it reports the EOF (see
// engine_evio.go), so the answer has nowhere to go.
func answersAtEOF(s *server.Server) bool { return s.Engine() != "evio" }

// lingers reports whether the engine half-closes after "close" and drains
// late input, so that a client that keeps sending sees EOF, not a reset.
// evio closes outright.
func lingers(s *server.Server) bool { return s.Engine() != "evio" }

// boundsPendingOutput reports whether the engine keeps a paused client's
// answers within MaxPendingOutput. evio reads 64 KiB at a time whatever
// the limit.
func boundsPendingOutput(s *server.Server) bool { return s.Engine() != "evio" }

// countsBackpressure reports whether Stats.Backpressure counts pauses:
// stdnet pauses inside a blocking Write, evio where it cannot be seen.
func countsBackpressure(s *server.Server) bool { return s.Engine() == "poll" }

// acks is n answers, then Closing if closing.
func acks(n int, closing bool) string {
	s := strings.Repeat(server.Answer, n)
	if closing {
		s += server.Closing
	}
	return s
}

// model is the expected output for a client stream: a Framer fed all of it,
// then End if the stream is not closed by "close".
func model(maxMessage int, stream []byte, end bool) string {
	f := server.NewFramer(maxMessage, server.FramingLine)
	out, closed := f.Feed(nil, stream)
	if !closed && end {
		out = f.End(out)
	}
	return string(out)
}

// startServer serves cfg (on 127.0.0.1:0 unless cfg.Addr or cfg.Listeners
// is set) until the
// test ends, then shuts it down and checks that Serve returned
// ErrServerClosed.
func startServer(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	if cfg.Addr == "" && cfg.Listeners == nil {
		cfg.Addr = "127.0.0.1:0"
	}
	// TCPOLL_DIRECT_SEND=1 runs the suite on the send(2) path instead of
	// io_uring's; .ci/run runs it both ways.
	if os.Getenv("TCPOLL_DIRECT_SEND") == "1" {
		cfg.DirectSend = true
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return s
}

// client is a test connection to a server.
type client struct {
	t *testing.T
	c *net.TCPConn
}

func dial(t *testing.T, addr net.Addr) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c.(*net.TCPConn)}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *client) closeWrite() {
	c.t.Helper()
	if err := c.c.CloseWrite(); err != nil {
		c.t.Fatalf("CloseWrite: %v", err)
	}
}

// expect reads len(want) bytes and compares.
func (c *client) expect(want string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	got := make([]byte, len(want))
	n, err := io.ReadFull(c.c, got)
	if err != nil || string(got) != want {
		c.t.Fatalf("read %q, %v; want %q", got[:n], err, want)
	}
}

// expectQuiet checks that nothing arrives for d.
func (c *client) expectQuiet(d time.Duration) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	var b [64]byte
	n, err := c.c.Read(b[:])
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("read %q, %v; want nothing for %v", b[:n], err, d)
	}
}

// readEnd reads until EOF, an error or ioTimeout. err is nil for a clean
// EOF.
func (c *client) readEnd() (got string, err error) {
	return readEnd(c.c, ioTimeout)
}

// maxReadEnd is far above what any test's server owes a client (24 MiB).
const maxReadEnd = 256 << 20

// readEnd reads c until EOF or an error; err is nil for a clean EOF.
// timeout bounds the wait for each MiB, not the whole: a long stream read
// on a slow machine is no failure, a stream that stops short of its end is,
// and so is one that goes on past maxReadEnd.
func readEnd(c net.Conn, timeout time.Duration) (string, error) {
	var buf bytes.Buffer
	for {
		if buf.Len() > maxReadEnd {
			return buf.String(), fmt.Errorf("no end after %d bytes", buf.Len())
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		n, err := buf.ReadFrom(io.LimitReader(c, 1<<20))
		if err != nil {
			return buf.String(), err
		}
		if n < 1<<20 {
			return buf.String(), nil // EOF
		}
	}
}

// expectEnd reads the rest of the stream and wants it to be want, ended by
// a clean EOF. Then it closes the connection, as a client done with it
// would (a server lingering after "close" waits for that).
func (c *client) expectEnd(want string) {
	c.t.Helper()
	got, err := c.readEnd()
	if got != want || err != nil {
		c.t.Fatalf("read %q then %v; want %q then EOF", got, err, want)
	}
	c.c.Close()
}

// logBuffer collects a server's log, for failure messages.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// pendingError reads and clears the socket's pending error: a reset the
// kernel received leaves one there even after the data before it was read.
func pendingError(c *net.TCPConn) (syscall.Errno, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	cerr := raw.Control(func(fd uintptr) { n, err = soErrorOf(fd) })
	if cerr != nil {
		return 0, cerr
	}
	return syscall.Errno(n), err
}

// waitFor polls cond until it holds or ioTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEngineName(t *testing.T) {
	s := startServer(t, server.Config{})
	switch s.Engine() {
	case "poll", "stdnet", "evio":
	default:
		t.Fatalf("Engine() = %q", s.Engine())
	}
	t.Logf("engine %s", s.Engine())
}

// TestExamples runs every example of PROTOCOL.md through a socket. The
// client sends the chunks (pausing between them so they arrive apart),
// half-closes, and reads to the end.
func TestExamples(t *testing.T) {
	s := startServer(t, server.Config{})
	x600, x256 := strings.Repeat("x", 600), strings.Repeat("x", 256)
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
		// wantEvio, if set, is what evio sends instead. Each such case is
		// an EOF with a message pending: evio has no socket left to answer
		// it on.
		wantEvio *string
	}{
		{name: "hello", chunks: []string{"hello\n"}, want: acks(1, false)},
		{name: "pipelined", chunks: []string{"a\nb\nc\n"}, want: acks(3, false)},
		{name: "split CRLF", chunks: []string{"hel", "lo\r\n"}, want: acks(1, false)},
		{name: "empty", chunks: []string{"\n"}, want: acks(1, false)},
		{name: "close", chunks: []string{"close\n"}, want: acks(0, true)},
		{name: "after close", chunks: []string{"x\nclose\ny\n"}, want: acks(1, true)},
		{name: "600 bytes", chunks: []string{x600, "\n"}, want: acks(3, false)},
		{name: "bye EOF", chunks: []string{"bye"}, want: acks(1, false), wantEvio: ptr("")},
		{name: "256+LF", chunks: []string{x256 + "\n"}, want: acks(1, false)},
		{name: "256+CRLF", chunks: []string{x256 + "\r\n"}, want: acks(2, false)},
		{name: "close EOF", chunks: []string{"close"}, want: acks(0, true), wantEvio: ptr("")},
		{name: "nothing", chunks: nil, want: ""},
		// Not in the table, but in its rules.
		{name: "close CRLF", chunks: []string{"close\r\n"}, want: acks(0, true)},
		{name: "close CR EOF", chunks: []string{"close\r"}, want: acks(0, true), wantEvio: ptr("")},
		{name: "Close", chunks: []string{"Close\n", " close\n", "close \n", "close\r\r\n"}, want: acks(4, false)},
		{name: "binary", chunks: []string{"\x00\xff\xfe\r\x00\n"}, want: acks(1, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s.Addr())
			for i, ch := range tc.chunks {
				if i > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				c.send(ch)
			}
			c.closeWrite()
			want := tc.want
			if tc.wantEvio != nil && !answersAtEOF(s) {
				want = *tc.wantEvio
			}
			c.expectEnd(want)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestAnswersAtOnce checks that a complete message is answered without
// waiting for more input, and an unfinished one is not answered.
func TestAnswersAtOnce(t *testing.T) {
	s := startServer(t, server.Config{})
	c := dial(t, s.Addr())
	c.send("hello\n")
	c.expect(server.Answer)
	c.send("hel")
	c.expectQuiet(100 * time.Millisecond)
	c.send("lo\r")
	c.expectQuiet(50 * time.Millisecond)
	c.send("\n")
	c.expect(server.Answer)
	c.send(strings.Repeat("y", 255))
	c.expectQuiet(50 * time.Millisecond)
	c.send("yy") // byte 257 cuts the first 256
	c.expect(server.Answer)
	c.send("\nclose\n") // the last "y", then "close"
	c.expectEnd(acks(1, true))
}

// TestPipelining sends thousands of messages in one write.
func TestPipelining(t *testing.T) {
	s := startServer(t, server.Config{})
	c := dial(t, s.Addr())
	msgs := []string{"a", "", "\r", "hello\r", "close\r\r", "\x00"}
	var b strings.Builder
	const n = 6000
	for i := range n {
		b.WriteString(msgs[i%len(msgs)])
		b.WriteByte('\n')
	}
	b.WriteString("close\n")
	sent := sendAsync(t, c.c, b.String(), true)
	got, err := c.readEnd()
	// The answers can all arrive before the writer's CloseWrite: wait for
	// it before anything closes the connection under it.
	<-sent
	if want := acks(n, true); got != want || err != nil {
		t.Fatalf("read %d bytes then %v; want %d then EOF", len(got), err, len(want))
	}
}

// sendAsync writes s from another goroutine, so a test can read meanwhile,
// then half-closes if closeWrite. A write error is reported only if
// mustWrite. ioTimeout bounds each 64 KiB, not the whole, as readEnd
// does: a server that takes its input as its client reads the answers
// takes a long stream slowly on a loaded machine, and that is no failure.
func sendAsync(t *testing.T, c *net.TCPConn, s string, mustWrite bool) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		for b := []byte(s); len(b) > 0 && err == nil; {
			chunk := b[:min(len(b), 64<<10)]
			c.SetWriteDeadline(time.Now().Add(ioTimeout))
			_, err = c.Write(chunk)
			b = b[len(chunk):]
		}
		if err == nil {
			err = c.CloseWrite()
		}
		if err != nil && mustWrite {
			t.Errorf("write: %v", err)
		}
		done <- err
	}()
	return done
}

// TestOneByteAtATime sends every byte in its own write.
func TestOneByteAtATime(t *testing.T) {
	s := startServer(t, server.Config{MaxMessage: 16})
	c := dial(t, s.Addr())
	in := "hello\r\n\n" + strings.Repeat("z", 40) + "\r\nclose\r\n"
	for i := range len(in) {
		c.send(in[i : i+1])
		if i%7 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	// "hello", "", then 16+16+8 z's (the last piece with its CR), then
	// "close".
	c.expectEnd(acks(2+3, true))
}

// TestRandomSplits sends one stream, cut at random places by the kernel
// and by pauses, and compares with the Framer fed the whole stream.
func TestRandomSplits(t *testing.T) {
	s := startServer(t, server.Config{MaxMessage: 32})
	var b strings.Builder
	for i := range 300 {
		switch i % 7 {
		case 0:
			b.WriteString(strings.Repeat("q", i%97))
		case 1:
			b.WriteString("\r")
		case 2:
			b.WriteString("clos")
		case 3:
			b.WriteString("\x00\xff")
		}
		b.WriteString("\n")
	}
	b.WriteString("tail")
	stream := b.String()
	c := dial(t, s.Addr())
	for i, step := 0, 1; i < len(stream); step = step*7%61 + 1 {
		j := min(i+step, len(stream))
		c.send(stream[i:j])
		if step%5 == 0 {
			time.Sleep(time.Millisecond)
		}
		i = j
	}
	c.closeWrite()
	want := model(32, []byte(stream), answersAtEOF(s))
	c.expectEnd(want)
}

func TestIPv6(t *testing.T) {
	s, err := server.New(server.Config{Addr: "[::1]:0"})
	if err != nil {
		t.Skipf("cannot listen on [::1]: %v", err)
	}
	s.Shutdown(context.Background())
	s = startServer(t, server.Config{Addr: "[::1]:0"})
	if a, ok := s.Addr().(*net.TCPAddr); !ok || a.IP.To4() != nil {
		t.Fatalf("Addr() = %v, want an IPv6 address", s.Addr())
	}
	c := dial(t, s.Addr())
	c.send("hello\r\nclose\n")
	c.expectEnd(acks(1, true))
}

// TestAllInterfaces listens with an empty host, which must take IPv4 and,
// where the host has it, IPv6.
func TestAllInterfaces(t *testing.T) {
	s := startServer(t, server.Config{Addr: ":0"})
	port := s.Addr().(*net.TCPAddr).Port
	hosts := []string{"127.0.0.1"}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		hosts = append(hosts, "::1")
	}
	for _, h := range hosts {
		c := dial(t, &net.TCPAddr{IP: net.ParseIP(h), Port: port})
		c.send("hi " + h + "\nclose\n")
		c.expectEnd(acks(1, true))
	}
}

// TestEOF covers the client's half-close, with and without a pending
// message.
func TestEOF(t *testing.T) {
	s := startServer(t, server.Config{})
	t.Run("pending", func(t *testing.T) {
		c := dial(t, s.Addr())
		c.send("a\nb\nbye")
		c.expect(acks(2, false))
		c.closeWrite()
		if answersAtEOF(s) {
			c.expectEnd(acks(1, false))
		} else {
			c.expectEnd("") // evio: the pending "bye" is never answered
		}
	})
	t.Run("pending CR", func(t *testing.T) {
		c := dial(t, s.Addr())
		c.send("a\r")
		c.closeWrite()
		want := acks(1, false)
		if !answersAtEOF(s) {
			want = ""
		}
		c.expectEnd(want)
	})
	t.Run("nothing pending", func(t *testing.T) {
		c := dial(t, s.Addr())
		c.send("a\n")
		c.expect(server.Answer)
		c.closeWrite()
		c.expectEnd("")
	})
	t.Run("client closes fully", func(t *testing.T) {
		c := dial(t, s.Addr())
		c.send("a\n")
		c.expect(server.Answer)
		c.c.Close()
		waitFor(t, "the server to close it", func() bool { return s.Stats().Open.Load() == 0 })
	})
}

// TestCloseNoReset: after "close" the client keeps sending for a while,
// then reads. It must get "closing" and a clean EOF: a server that closed
// with that input unread would send a reset, which can make the client's
// kernel drop "closing" before the client reads it.
func TestCloseNoReset(t *testing.T) {
	s := startServer(t, server.Config{})
	c := dial(t, s.Addr())
	c.send("one\nclose\n")
	var werr error
	for i := 0; i < 20 && werr == nil; i++ {
		time.Sleep(5 * time.Millisecond)
		c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
		_, werr = c.c.Write([]byte("late input, ignored\n"))
	}
	got, err := c.readEnd()
	if lingers(s) {
		if werr != nil {
			t.Errorf("write after close: %v; want the server to drain it", werr)
		}
		c.closeWrite()
		if got != acks(1, true) || err != nil {
			t.Fatalf("read %q then %v; want %q then EOF", got, err, acks(1, true))
		}
		return
	}
	// evio closes the socket as soon as "closing" is written, with the late
	// input unread: the kernel answers it with a reset, so the client's
	// writes fail and its read ends in ECONNRESET. Linux still delivers the
	// bytes that arrived before the reset.
	if !isReset(werr) && !isReset(err) {
		t.Errorf("evio: write error %v, read error %v; want a reset (if evio lingers now, update lingers)", werr, err)
	}
	if got != acks(1, true) && got != "" {
		t.Errorf("evio: read %q; want %q or nothing", got, acks(1, true))
	}
	t.Logf("evio: write error %v; read %q then %v", werr, got, err)
}

// TestCloseUnreadInput sends input after "close" in the same instant, so it
// is still unread when the server is done with the connection.
func TestCloseUnreadInput(t *testing.T) {
	s := startServer(t, server.Config{})
	c := dial(t, s.Addr())
	c.send("close\n")
	c.send(strings.Repeat("more\n", 1000))
	time.Sleep(50 * time.Millisecond) // let the server close, or linger
	got, err := c.readEnd()
	if lingers(s) {
		if got != server.Closing || err != nil {
			t.Fatalf("read %q then %v; want %q then EOF", got, err, server.Closing)
		}
		return
	}
	// evio: whether the second write is read before the close is a race;
	// if not, the close resets the connection.
	if got != server.Closing || (err != nil && !isReset(err)) {
		t.Fatalf("evio: read %q then %v; want %q then EOF or a reset", got, err, server.Closing)
	}
	t.Logf("evio: read ended with %v", err)
}

// TestCloseQueuedInput: "close" comes with more input behind it in one
// segment, and the client then sends nothing and reads nothing for longer
// than the server lingers. The server must have read and discarded that
// input: a socket closed with input unread resets the connection, and a
// client whose answers are still unread may then lose them (RFC 2525,
// section 2.17).
func TestCloseQueuedInput(t *testing.T) {
	s := startServer(t, server.Config{})
	c := dial(t, s.Addr())
	c.send("close\n" + strings.Repeat("x", 20000))
	time.Sleep(2300 * time.Millisecond) // lingerTime, 2 s, and a margin
	got, err := c.readEnd()
	if got != server.Closing || err != nil {
		t.Fatalf("read %q then %v; want %q then EOF", got, err, server.Closing)
	}
	soErr, err := pendingError(c.c)
	if err != nil {
		t.Fatalf("SO_ERROR: %v", err)
	}
	if !lingers(s) {
		t.Logf("evio: SO_ERROR %v", soErr)
		return
	}
	if soErr != 0 {
		t.Fatalf("the connection was reset (SO_ERROR %v): the server closed it with input unread", soErr)
	}
}

// TestCloseQueuedAnswers: a client floods, then sends "close", and keeps
// sending while it slowly reads megabytes of answers. Every answer must
// arrive: a server that closes while input is unread or still arriving
// gets the connection reset by its kernel, which then discards the
// answers still in the socket's send buffer.
func TestCloseQueuedAnswers(t *testing.T) {
	s := startServer(t, server.Config{})
	c := dial(t, s.Addr())
	c.c.SetReadBuffer(64 << 10) // a small window: answers queue at the server
	const n = 100000
	want := acks(n, true)
	wrote := make(chan error, 1)
	go func() {
		c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
		_, err := c.c.Write([]byte(strings.Repeat("\n", n) + "close\n"))
		wrote <- err
	}()
	var got bytes.Buffer
	buf := make([]byte, 16<<10)
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	var err error
	for flooded := false; ; {
		var k int
		k, err = c.c.Read(buf)
		got.Write(buf[:k])
		if err != nil {
			break
		}
		if !flooded {
			select {
			case werr := <-wrote:
				if werr != nil {
					t.Fatalf("write: %v", werr)
				}
				flooded = true
			default:
			}
		}
		if flooded {
			c.c.Write([]byte("ignored\n")) // fails once evio reset it
		}
		time.Sleep(time.Millisecond)
	}
	if err == io.EOF {
		err = nil
	}
	if lingers(s) {
		if got.String() != want || err != nil {
			t.Fatalf("read %d bytes then %v; want %d then EOF", got.Len(), err, len(want))
		}
		return
	}
	// evio: a prefix, cut short; see engine_evio.go.
	if !strings.HasPrefix(want, got.String()) || got.Len() == len(want) {
		t.Fatalf("evio: read %d bytes then %v; want a strict prefix of the %d bytes (if evio keeps them now, update lingers)", got.Len(), err, len(want))
	}
	t.Logf("evio: read %d of %d bytes, then %v", got.Len(), len(want), err)
}

func TestMaxConns(t *testing.T) {
	s := startServer(t, server.Config{MaxConns: 2})
	c1, c2 := dial(t, s.Addr()), dial(t, s.Addr())
	for _, c := range []*client{c1, c2} {
		c.send("hi\n")
		c.expect(server.Answer)
	}
	c3 := dial(t, s.Addr())
	c3.c.Write([]byte("hi\n")) // may fail: the server may have closed it already
	got, err := c3.readEnd()
	if got != "" || (err != nil && !isReset(err)) {
		t.Fatalf("third connection: read %q then %v; want it closed unanswered", got, err)
	}
	waitFor(t, "Rejected = 1", func() bool { return s.Stats().Rejected.Load() == 1 })
	// The first two are still served.
	c1.send("again\n")
	c1.expect(server.Answer)
	// Once one closes, a new connection is served.
	c2.send("close\n")
	c2.expectEnd(server.Closing)
	waitFor(t, "a free slot", func() bool { return s.Stats().Open.Load() == 1 })
	c4 := dial(t, s.Addr())
	c4.send("close\n")
	c4.expectEnd(server.Closing)
}

func TestIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	s := startServer(t, server.Config{IdleTimeout: idle})
	busy := dial(t, s.Addr())
	quiet := dial(t, s.Addr())
	quiet.send("hi\npending")
	quiet.expect(server.Answer)
	stopBusy := time.Now().Add(3 * idle)
	for time.Now().Before(stopBusy) {
		busy.send("ping\n")
		busy.expect(server.Answer)
		time.Sleep(idle / 5)
	}
	// The quiet one was closed (without an answer to "pending": idle is
	// not EOF), the busy one was not.
	got, err := quiet.readEnd()
	if got != "" || (err != nil && !isReset(err)) {
		t.Fatalf("idle connection: read %q then %v; want it closed", got, err)
	}
	busy.send("close\n")
	busy.expectEnd(server.Closing)
	if n := s.Stats().IdleClosed.Load(); n != 1 {
		t.Errorf("IdleClosed = %d, want 1", n)
	}
}

// TestIdleTimeoutNotEarly checks the idle timeout does not fire early.
func TestIdleTimeoutNotEarly(t *testing.T) {
	const idle = 400 * time.Millisecond
	s := startServer(t, server.Config{IdleTimeout: idle})
	c := dial(t, s.Addr())
	start := time.Now()
	got, err := c.readEnd()
	if d := time.Since(start); d < idle-20*time.Millisecond || d > idle+time.Second || got != "" || (err != nil && !isReset(err)) {
		t.Fatalf("read %q then %v after %v; want the connection closed after %v", got, err, d, idle)
	}
}

// TestGracefulShutdown: every complete message received before Shutdown is
// answered, each connection then closes cleanly, and Serve returns
// ErrServerClosed.
func TestGracefulShutdown(t *testing.T) {
	s, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()

	idle := dial(t, s.Addr())
	partial := dial(t, s.Addr())
	partial.send("a\nb\npar")
	partial.expect(acks(2, false))
	// A burst sent just before Shutdown: all of it is in the server's
	// socket buffer when Shutdown starts.
	burst := dial(t, s.Addr())
	const n = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		got, err := burst.readEnd()
		if got != acks(n, false) || err != nil {
			t.Errorf("burst: read %d bytes then %v; want %d answers then EOF", len(got), err, n)
		}
	})
	burst.send(strings.Repeat("m\n", n))
	time.Sleep(20 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve did not return")
	}
	idle.expectEnd("")
	partial.expectEnd("") // "par" is not complete: no answer
	wg.Wait()
	if n := s.Stats().Open.Load(); n != 0 {
		t.Errorf("Open = %d after Shutdown", n)
	}
	// No longer accepting.
	if c, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout); err == nil {
		got, err := readEnd(c, ioTimeout)
		c.Close()
		if got != "" || (err != nil && !isReset(err)) {
			t.Errorf("dial after Shutdown: read %q then %v", got, err)
		}
	}
}

// TestShutdownDeadline: a client that does not read holds its answers;
// Shutdown gives up at its context's deadline and closes everything.
func TestShutdownDeadline(t *testing.T) {
	var log logBuffer
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", MaxPendingOutput: 1024, Logger: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	c := dial(t, s.Addr())
	c.c.SetReadBuffer(4096)
	floodUntilStuck(t, s, c.c)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown returned %v after %v, want DeadlineExceeded; stats %v\n%s", err, time.Since(start), s.Stats().Snapshot(), log.String())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	select {
	case err := <-served:
		if !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve did not return")
	}
	if n := s.Stats().Open.Load(); n != 0 {
		t.Errorf("Open = %d after Shutdown", n)
	}
}

// TestServeContext: cancelling Serve's context closes everything at once
// and Serve returns the context's error.
func TestServeContext(t *testing.T) {
	s, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	c := dial(t, s.Addr())
	c.send("hi\npending")
	c.expect(server.Answer)
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v, want context.Canceled", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve did not return")
	}
	got, err := c.readEnd()
	if got != "" || (err != nil && !isReset(err)) {
		t.Errorf("read %q then %v; want the connection closed", got, err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after Serve's context ended: %v", err)
	}
}

// TestShutdownBeforeServe: Serve after Shutdown serves nothing and returns
// ErrServerClosed ("ErrServerClosed is returned by Serve after Shutdown").
func TestShutdownBeforeServe(t *testing.T) {
	s, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve after Shutdown returned %v, want ErrServerClosed", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve after Shutdown did not return")
	}
}

// TestBackpressure: a client that sends and never reads makes the server
// stop reading it, holding at most MaxPendingOutput of answers; it must
// not hold up others, and nothing it sent is dropped: once it reads, every
// answer is there.
func TestBackpressure(t *testing.T) {
	const maxPending = 4096
	s := startServer(t, server.Config{MaxPendingOutput: maxPending, Loops: 1})
	hog := dial(t, s.Addr())
	// Small fixed buffers (no autotuning): 24 MiB of answers cannot fit.
	hog.c.SetReadBuffer(64 << 10)
	hog.c.SetWriteBuffer(64 << 10)
	const n = 1 << 20
	sendAsync(t, hog.c, strings.Repeat("\n", n), true)
	st := s.Stats()
	in := waitStalled(t, s)
	if in >= n {
		t.Fatalf("the server read all %d bytes while the client read nothing", in)
	}
	// Each "\n" is one answer: what was read and not yet written is
	// pending. evio counts answers as written when it takes them.
	if pending := in*int64(len(server.Answer)) - st.BytesOut.Load(); boundsPendingOutput(s) && pending > max(maxPending, 256*int64(len(server.Answer)))+int64(len(server.Answer)) {
		t.Errorf("%d bytes of answers pending, MaxPendingOutput is %d", pending, maxPending)
	}
	other := dial(t, s.Addr())
	for range 20 {
		start := time.Now()
		other.send("ping\n")
		other.expect(server.Answer)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("answer took %v while another client is paused", d)
		}
	}
	if countsBackpressure(s) && s.Stats().Backpressure.Load() == 0 {
		t.Errorf("Stats.Backpressure = 0")
	}
	got, err := hog.readEnd()
	if len(got) != n*len(server.Answer) || err != nil {
		t.Fatalf("read %d bytes then %v; want %d answers then EOF", len(got), err, n)
	}
	if got != acks(n, false) {
		t.Fatalf("answers corrupted")
	}
}

// waitStalled waits until the server has read something and then stops
// reading for 100ms, and returns Stats.BytesIn.
func waitStalled(t *testing.T, s *server.Server) int64 {
	t.Helper()
	var in int64
	waitFor(t, "the server to stop reading", func() bool {
		time.Sleep(100 * time.Millisecond)
		was := in
		in = s.Stats().BytesIn.Load()
		return in > 0 && in == was
	})
	return in
}

// floodUntilStuck sends empty messages on c, never reading, until every
// buffer between the client and the server is full: the client's writes
// block and the server stops reading. Only then is it certain that the
// server holds answers it cannot write.
func floodUntilStuck(t *testing.T, s *server.Server, c *net.TCPConn) {
	t.Helper()
	var chunks atomic.Int64
	go func() {
		chunk := bytes.Repeat([]byte("\n"), 1<<20)
		c.SetWriteDeadline(time.Now().Add(2 * ioTimeout))
		for range 256 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
			chunks.Add(1)
		}
	}()
	var in, wrote int64
	waitFor(t, "the client and the server to be stuck", func() bool {
		time.Sleep(200 * time.Millisecond)
		was, wasWrote := in, wrote
		in, wrote = s.Stats().BytesIn.Load(), chunks.Load()
		return in > 0 && in == was && wrote == wasWrote
	})
}

// TestManyClients runs concurrent clients, each with its own stream.
func TestManyClients(t *testing.T) {
	s := startServer(t, server.Config{Loops: 3, MaxMessage: 20})
	var wg sync.WaitGroup
	var answers atomic.Int64
	for i := range 50 {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			var b strings.Builder
			for j := range 200 {
				b.WriteString(strings.Repeat("w", (i*j)%50))
				b.WriteString("\n")
			}
			stream := b.String()
			go func() {
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				for k := 0; k < len(stream); k += 97 + i {
					if _, err := c.Write([]byte(stream[k:min(k+97+i, len(stream))])); err != nil {
						return
					}
				}
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := readEnd(c, ioTimeout)
			want := model(20, []byte(stream), true)
			answers.Add(int64(len(want) / len(server.Answer)))
			if got != want || err != nil {
				t.Errorf("client %d: read %d bytes then %v; want %d bytes then EOF", i, len(got), err, len(want))
			}
		})
	}
	wg.Wait()
	waitFor(t, "all connections to close", func() bool { return s.Stats().Open.Load() == 0 })
	st := s.Stats()
	if st.Accepted.Load() != 50 || st.Resets.Load() != 0 || st.Rejected.Load() != 0 || st.Messages.Load() != answers.Load() {
		t.Errorf("stats %v; want 50 accepted, %d messages", st.Snapshot(), answers.Load())
	}
}

// TestThousandClients holds 1,000 connections open at once, each
// pipelining 100 messages in one write, and checks every answer.
func TestThousandClients(t *testing.T) {
	const clients, msgs = 1000, 100
	s := startServer(t, server.Config{})
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	waitFor(t, "all clients to be accepted", func() bool { return s.Stats().Open.Load() == clients })
	batch := []byte(strings.Repeat("0123456789abcde\n", msgs))
	want := strings.Repeat(server.Answer, msgs)
	var wg sync.WaitGroup
	var good atomic.Int64
	for i, c := range conns {
		wg.Go(func() {
			c.SetDeadline(time.Now().Add(4 * ioTimeout))
			if _, err := c.Write(batch); err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Errorf("client %d: got %d bytes (%v), want %d answers", i, len(got), err, msgs)
				return
			}
			good.Add(1)
		})
	}
	wg.Wait()
	if got := good.Load(); got != clients {
		t.Errorf("%d of %d clients got all %d answers", got, clients, msgs)
	}
}

// TestStatsBytes checks BytesIn and BytesOut against one session.
func TestStatsBytes(t *testing.T) {
	s := startServer(t, server.Config{})
	c := dial(t, s.Addr())
	c.send("a\nbb\n")
	c.expect(acks(2, false))
	c.send("close\n")
	c.expectEnd(server.Closing)
	waitFor(t, "the connection to close", func() bool { return s.Stats().Open.Load() == 0 })
	st := s.Stats()
	if in, out := st.BytesIn.Load(), st.BytesOut.Load(); in != 11 || out != int64(len(acks(2, true))) {
		t.Errorf("BytesIn, BytesOut = %d, %d; want 11, %d", in, out, len(acks(2, true)))
	}
	if st.Accepted.Load() != 1 || st.Messages.Load() != 3 {
		t.Errorf("Accepted, Messages = %d, %d; want 1, 3", st.Accepted.Load(), st.Messages.Load())
	}
}

// TestClientReset: a client that resets its connection costs only that
// connection.
func TestClientReset(t *testing.T) {
	s := startServer(t, server.Config{})
	other := dial(t, s.Addr())
	c := dial(t, s.Addr())
	c.send("x\n")
	c.expect(server.Answer)
	c.c.SetLinger(0)
	c.send("unfinished")
	time.Sleep(20 * time.Millisecond)
	c.c.Close() // RST
	waitFor(t, "the reset connection to close", func() bool { return s.Stats().Open.Load() == 1 })
	other.send("still here\nclose\n")
	other.expectEnd(acks(1, true))
}

// TestRawFraming: raw framing through a socket, with one message per
// write and pauses so each read is one write.
func TestRawFraming(t *testing.T) {
	s := startServer(t, server.Config{Framing: server.FramingRaw})
	c := dial(t, s.Addr())
	c.send("hello")
	c.expect(server.Answer)
	c.send("a\nb\n")
	c.expect(server.Answer)
	c.send("close\n")
	c.expectEnd(server.Closing)
}

// TestCustomProtocol: engines run whatever Config.NewProtocol returns.
func TestCustomProtocol(t *testing.T) {
	s := startServer(t, server.Config{NewProtocol: func() server.Protocol { return new(echo) }})
	c := dial(t, s.Addr())
	c.send("abc")
	c.expect("abc")
	c.send("!")
	c.expectEnd("!")
}

// echo echoes its input and closes after "!".
type echo struct{}

func (*echo) Feed(out, in []byte) ([]byte, bool) {
	if i := bytes.IndexByte(in, '!'); i >= 0 {
		return append(out, in[:i+1]...), true
	}
	return append(out, in...), false
}
func (*echo) End(out []byte) []byte { return out }
