package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// holdConn passes writes through until hold is set, then keeps them until
// flush sends them in one write: records that reach the server together.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (h *holdConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		return h.buf.Write(b)
	}
	return h.Conn.Write(b)
}

func (h *holdConn) setHold() {
	h.mu.Lock()
	h.hold = true
	h.mu.Unlock()
}

func (h *holdConn) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = false
	_, err := h.Conn.Write(h.buf.Bytes())
	h.buf.Reset()
	return err
}

// holdLastFlight connects to addr with TLS 1.3 and shakes hands, holding
// back the client's second flight (its Finished) and what is written
// after it until hc.flush.
func holdLastFlight(t *testing.T, addr net.Addr) (raw net.Conn, hc *holdConn, c *tls.Conn) {
	t.Helper()
	raw, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	hc = &holdConn{Conn: raw}
	cc := clientConfig(t, tls.VersionTLS13)
	cc.VerifyConnection = func(tls.ConnectionState) error { hc.setHold(); return nil }
	c = tls.Client(hc, cc)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return raw, hc, c
}

// nestHandler pauses and resumes reading inside OnData, and records
// whether that ran OnData again within it or changed its input.
type nestHandler struct {
	depth, nested, changed atomic.Int32
	got                    chan string
}

func (h *nestHandler) OnOpen(c *server.Conn) {}
func (h *nestHandler) OnData(c *server.Conn, in []byte) {
	if h.depth.Add(1) > 1 {
		h.nested.Add(1)
	}
	defer h.depth.Add(-1)
	before := string(in)
	c.PauseReading()
	c.ResumeReading()
	if string(in) != before {
		h.changed.Add(1)
	}
	h.got <- before
}
func (h *nestHandler) OnClose(c *server.Conn, why error) {}

// TestTLSResumeInsideOnData: records that reach the server together take
// more than one OnData; ResumeReading within OnData must not run the next
// OnData inside it, over the input the first one still holds.
func TestTLSResumeInsideOnData(t *testing.T) {
	h := &nestHandler{got: make(chan string, 100)}
	s, ok := tlsServer(t, server.Config{Handler: h})
	if !ok {
		return
	}
	raw, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hc := &holdConn{Conn: raw}
	c := tls.Client(hc, clientConfig(t, tls.VersionTLS13))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	hc.setHold()
	var want strings.Builder
	for i := range 8 {
		p := strings.Repeat(string(rune('A'+i)), 13000)
		want.WriteString(p)
		c.Write([]byte(p))
	}
	if err := hc.flush(); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for got.Len() < want.Len() {
		select {
		case g := <-h.got:
			got.WriteString(g)
		case <-time.After(ioTimeout):
			t.Fatalf("got %d of %d bytes", got.Len(), want.Len())
		}
	}
	if h.nested.Load() > 0 || h.changed.Load() > 0 {
		t.Errorf("OnData ran within OnData %d times; its input changed under it %d times", h.nested.Load(), h.changed.Load())
	}
	if got.String() != want.String() {
		t.Error("the input reached OnData out of order")
	}
}

// pauseOpen pauses reading in OnOpen and resumes it a little later.
type pauseOpen struct {
	data   chan string
	closed chan error
}

func (p *pauseOpen) OnOpen(c *server.Conn) {
	c.PauseReading()
	c.AfterFunc(50*time.Millisecond, c.ResumeReading)
}
func (p *pauseOpen) OnData(c *server.Conn, in []byte)  { p.data <- string(in) }
func (p *pauseOpen) OnClose(c *server.Conn, why error) { p.closed <- why }

// TestTLSFinishedDataEOF: a client's Finished, its first message and its
// FIN reach the server together, while the Handler has paused reading in
// OnOpen. The message is handed on when reading resumes, and the EOF
// after it.
func TestTLSFinishedDataEOF(t *testing.T) {
	p := &pauseOpen{data: make(chan string, 100), closed: make(chan error, 100)}
	s, ok := tlsServer(t, server.Config{Handler: p})
	if !ok {
		return
	}
	for i := range 10 {
		// The client's second flight goes with the message and the FIN.
		raw, hc, c := holdLastFlight(t, s.Addr())
		c.Write([]byte("data\n"))
		if err := hc.flush(); err != nil {
			t.Fatal(err)
		}
		raw.(*net.TCPConn).CloseWrite()
		var got string
	wait:
		for {
			select {
			case d := <-p.data:
				got += d
			case <-p.closed:
				break wait
			case <-time.After(ioTimeout):
				t.Fatal("no OnClose")
			}
		}
		raw.Close()
		if got != "data\n" {
			t.Fatalf("connection %d: OnData got %q before OnClose, want the message", i, got)
		}
	}
}

// TestTLSHealthCheck: a connection closed before a byte of a ClientHello,
// as a balancer's TCP health check is, is no TLS error.
func TestTLSHealthCheck(t *testing.T) {
	s, ok := tlsServer(t, server.Config{})
	if !ok {
		return
	}
	st := s.Stats()
	for range 3 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	waitFor(t, "the three to be closed", func() bool { return st.Accepted.Load() == 3 && st.Open.Load() == 0 })
	if n := st.TLSErrors.Load(); n != 0 {
		t.Fatalf("TLSErrors = %d after connections that sent nothing", n)
	}
}

// TestTLSQueuedAnswersBounded: a client that never reads sends messages in
// full 16 KiB records. The answers the server holds for it stay near
// MaxPendingOutput: a record completed by a few bytes must not make all
// its messages' answers at once.
func TestTLSQueuedAnswersBounded(t *testing.T) {
	const limit = 4096
	s, ok := tlsServer(t, server.Config{MaxPendingOutput: limit})
	if !ok {
		return
	}
	if s.Engine() == "stdnet" && runtime.GOOS != "linux" {
		t.Skip("the stdnet engine caps what the kernel holds unsent (TCP_NOTSENT_LOWAT) only on Linux; elsewhere the send buffer adds to MaxPendingOutput")
	}
	st := s.Stats()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		// A small receive window: the kernel holds little of what the
		// server sends, so what it answered shows what it queued.
		var err error
		rc.Control(func(fd uintptr) { err = setRcvBuf(fd, 4096) })
		return err
	}}
	raw, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cc := clientConfig(t, tls.VersionTLS13)
	cc.DynamicRecordSizingDisabled = true
	c := tls.Client(raw, cc)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	go func() {
		chunk := bytes.Repeat([]byte("\n"), 16<<10)
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		for range 64 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	// Wait until the server stops answering: it has paused reading.
	var last int64 = -1
	for n := st.Messages.Load(); n != last; n = st.Messages.Load() {
		last = n
		time.Sleep(300 * time.Millisecond)
	}
	// The kernel takes its share besides (the server's unsent bytes are
	// capped at 16 KiB, TCP_NOTSENT_LOWAT, plus what is in flight to the
	// small window): 128 KiB is far above it, and far below the 24
	// answers per byte of a 16 KiB record.
	if got := last * int64(len(server.Answer)); got > limit+128<<10 {
		t.Fatalf("%d bytes of answers made for a client that reads nothing, MaxPendingOutput %d (bytes in %d, out %d, paused %d times)", got, limit, st.BytesIn.Load(), st.BytesOut.Load(), st.Backpressure.Load())
	}
}

// tinyWriter writes one byte at a time in OnOpen until the bound stops it,
// and reports the pending output then.
type tinyWriter struct{ pending chan int }

func (w tinyWriter) OnOpen(c *server.Conn) {
	for i := 0; i < 1<<20; i++ {
		if err := c.Write([]byte{'x'}); err != nil {
			break
		}
	}
	w.pending <- c.Pending()
}
func (tinyWriter) OnData(c *server.Conn, in []byte)  {}
func (tinyWriter) OnClose(c *server.Conn, why error) {}

// TestTLSTinyWritesBounded: each Write on the loop is sealed as a record
// of its own, 23 bytes or more for one byte written. The pending output,
// which counts ciphertext, stays within MaxPendingOutput: a write is
// charged for what its record adds before it is accepted.
func TestTLSTinyWritesBounded(t *testing.T) {
	const limit = 1000
	w := tinyWriter{pending: make(chan int, 1)}
	s, ok := tlsServer(t, server.Config{Handler: w, MaxPendingOutput: limit})
	if !ok {
		return
	}
	c := mustDialTLS(t, s.Addr(), clientConfig(t, tls.VersionTLS13))
	defer c.c.Close()
	select {
	case p := <-w.pending:
		if p > limit {
			t.Fatalf("pending output %d after one-byte writes, MaxPendingOutput %d", p, limit)
		}
	case <-time.After(ioTimeout):
		t.Fatal("no OnOpen")
	}
}

// pauseData echoes, and pauses reading for a moment after each input.
type pauseData struct{ opened chan struct{} }

func (p *pauseData) OnOpen(c *server.Conn) { p.opened <- struct{}{} }
func (p *pauseData) OnData(c *server.Conn, in []byte) {
	c.Write(in)
	c.PauseReading()
	c.AfterFunc(20*time.Millisecond, c.ResumeReading)
}
func (p *pauseData) OnClose(c *server.Conn, why error) {}

// TestTLSHandshakeEndsInShutdown: a handshake that ends while the server
// shuts down, with a message in the client's last flight whose OnData
// pauses reading: the message is answered, then the connection ends, as
// the others do, and Shutdown returns without waiting for its deadline.
func TestTLSHandshakeEndsInShutdown(t *testing.T) {
	for attempt := 0; ; attempt++ {
		p := &pauseData{opened: make(chan struct{}, 1)}
		s, ok := tlsServer(t, server.Config{Handler: p})
		if !ok {
			return
		}
		raw, hc, c := holdLastFlight(t, s.Addr())
		c.Write([]byte("hello\n"))
		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			shut <- s.Shutdown(ctx)
		}()
		waitFor(t, "the shutdown to begin", func() bool { return server.StopRequested(s) })
		if err := hc.flush(); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		got, err := io.ReadAll(c)
		raw.Close()
		select {
		case <-p.opened:
		default:
			// The handshake did not end within the shutdown's wait for
			// it (drainWait): a slow machine. Again, on a new server.
			if attempt == 10 {
				t.Fatal("no handshake ended within the shutdown in 10 attempts")
			}
			<-shut
			continue
		}
		if string(got) != "hello\n" || err != nil {
			t.Fatalf("read %q, %v; want the echo, then the end", got, err)
		}
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		return
	}
}
