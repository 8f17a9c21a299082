package server_test

// TLS (Config.TLS) end to end on whichever engine this build runs, with
// crypto/tls clients on loopback sockets. evio has no TLS: there each test
// checks that New refuses it with errors.ErrUnsupported (tlsServer).

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
	"github.com/tcpoll/poll/server"
)

func testPair(t *testing.T) *testcert.Pair {
	t.Helper()
	p, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsServer starts a server of cfg inside TLS, on the test certificate,
// until the test ends. On an engine without TLS it checks that New refuses
// it with errors.ErrUnsupported, and reports false.
func tlsServer(t *testing.T, cfg server.Config) (*server.Server, bool) {
	t.Helper()
	probe, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	engine := probe.Engine()
	probe.Shutdown(context.Background())
	cfg.TLS = testPair(t).ServerConfig()
	if engine == "evio" {
		// TLS alone: evio refuses Handler and ProxyProtocol too.
		s, err := server.New(server.Config{Addr: "127.0.0.1:0", TLS: cfg.TLS})
		if err == nil {
			s.Shutdown(context.Background())
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("New with TLS on evio: %v, want errors.ErrUnsupported", err)
		}
		t.Logf("engine without TLS: %v", err)
		return nil, false
	}
	return startServer(t, cfg), true
}

// clientConfig trusts the test certificate and speaks only version v
// (0: any).
func clientConfig(t *testing.T, v uint16) *tls.Config {
	cfg := testPair(t).ClientConfig()
	cfg.MinVersion, cfg.MaxVersion = v, v
	return cfg
}

// wireConn is a client's socket that keeps what it reads: the ciphertext.
type wireConn struct {
	net.Conn
	mu sync.Mutex
	in bytes.Buffer
}

func (w *wireConn) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	w.mu.Lock()
	w.in.Write(b[:n])
	w.mu.Unlock()
	return n, err
}

func (w *wireConn) wire() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.in.Bytes())
}

// tlsClient is a crypto/tls client of a test server.
type tlsClient struct {
	t   *testing.T
	c   *tls.Conn
	raw *net.TCPConn
	w   *wireConn
}

// dialTLS connects to addr, sends prefix in the clear (a PROXY header),
// and runs the handshake, within ioTimeout. The socket closes when the
// test ends.
func dialTLS(t *testing.T, addr net.Addr, cfg *tls.Config, prefix string) (*tlsClient, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(raw, prefix); err != nil {
		t.Fatal(err)
	}
	w := &wireConn{Conn: raw}
	c := &tlsClient{t: t, c: tls.Client(w, cfg), raw: raw.(*net.TCPConn), w: w}
	err = c.c.Handshake()
	raw.SetDeadline(time.Time{})
	return c, err
}

func mustDialTLS(t *testing.T, addr net.Addr, cfg *tls.Config) *tlsClient {
	t.Helper()
	c, err := dialTLS(t, addr, cfg, "")
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c
}

func (c *tlsClient) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *tlsClient) expect(want string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	got := make([]byte, len(want))
	if n, err := io.ReadFull(c.c, got); err != nil || string(got) != want {
		c.t.Fatalf("read %q, %v; want %q", got[:n], err, want)
	}
}

// expectEnd reads the rest of the stream: want, then the server's
// close_notify (crypto/tls's Read returns io.EOF, not an error), and
// checks that the alert was on the wire.
func (c *tlsClient) expectEnd(want string) {
	c.t.Helper()
	if err := c.end(want); err != nil {
		c.t.Fatal(err)
	}
}

// end is expectEnd for any goroutine.
func (c *tlsClient) end(want string) error {
	got, err := readEnd(c.c, ioTimeout)
	if got != want || err != nil {
		return fmt.Errorf("read %d bytes %.40q then %v; want %d %.40q then EOF", len(got), got, err, len(want), want)
	}
	if !endsWithAlert(c.w.wire(), c.c.ConnectionState().Version) {
		return errors.New("the stream's last record is not an alert: the server sent no close_notify before its FIN")
	}
	return nil
}

// endsWithAlert reports whether the last record on the wire is an alert,
// which after a clean io.EOF can only be close_notify. Up to TLS 1.2 an
// alert's record type is 21; TLS 1.3 disguises every record as
// application data (23), and only an alert's is 19 bytes long: 2 bytes,
// the inner type, a 16-byte AEAD tag (RFC 8446, 5.2).
func endsWithAlert(wire []byte, version uint16) bool {
	var last []byte
	for len(wire) >= 5 {
		n := 5 + (int(wire[3])<<8 | int(wire[4]))
		if n > len(wire) {
			return false
		}
		last, wire = wire[:n], wire[n:]
	}
	switch {
	case last == nil || len(wire) != 0:
		return false
	case version == tls.VersionTLS13:
		return last[0] == 23 && len(last) == 5+19
	}
	return last[0] == 21
}

// clientHello returns what a crypto/tls client sends first: its
// ClientHello, one record.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, clientConfig(t, 0)).Handshake() // ends with the pipe
	b.SetReadDeadline(time.Now().Add(ioTimeout))
	rec := make([]byte, 5)
	if _, err := io.ReadFull(b, rec); err != nil {
		t.Fatal(err)
	}
	rec = append(rec, make([]byte, int(rec[3])<<8|int(rec[4]))...)
	if _, err := io.ReadFull(b, rec[5:]); err != nil {
		t.Fatal(err)
	}
	return rec
}

var tlsVersions = []struct {
	name    string
	version uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// TestTLSProtocol plays the acknowledgement protocol inside TLS 1.2 and
// 1.3: answers, pipelining, messages cut across records, "close" (its
// answer, the close_notify, then nothing for what followed it), and the
// client's EOF. Each record is one client Write.
func TestTLSProtocol(t *testing.T) {
	s, ok := tlsServer(t, server.Config{})
	if !ok {
		return
	}
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			c := mustDialTLS(t, s.Addr(), clientConfig(t, v.version))
			if got := c.c.ConnectionState().Version; got != v.version {
				t.Fatalf("version %x, want %x", got, v.version)
			}
			c.send("hello\n")
			c.expect(server.Answer)
			c.send("a\nb\nc\n")
			c.expect(acks(3, false))
			// Messages cut across records: were a record taken for a
			// message, the answers below would be more.
			for _, rec := range []string{"hel", "lo\r\n", "w", "o", "r", "l", "d", "\n"} {
				c.send(rec)
			}
			x := strings.Repeat("x", 200)
			for _, rec := range []string{x, x, x, "\n"} { // 600 bytes: 256 + 256 + 88
				c.send(rec)
			}
			c.send("x\nclose\ny\n")
			c.expectEnd(acks(6, true))

			eof := mustDialTLS(t, s.Addr(), clientConfig(t, v.version))
			eof.send("bye")
			if err := eof.c.CloseWrite(); err != nil { // the client's close_notify
				t.Fatal(err)
			}
			eof.expectEnd(server.Answer)
		})
	}
}

// TestTLSResumption: a client's second connection resumes the session of
// its first (a ticket), in TLS 1.2 and 1.3; it would not were the server's
// ticket keys made per connection, or tickets off.
func TestTLSResumption(t *testing.T) {
	s, ok := tlsServer(t, server.Config{})
	if !ok {
		return
	}
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			cfg := clientConfig(t, v.version)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			first := mustDialTLS(t, s.Addr(), cfg)
			if first.c.ConnectionState().DidResume {
				t.Fatal("the first connection resumed")
			}
			// TLS 1.3's ticket comes after the handshake: a Read takes it.
			first.send("close\n")
			first.expectEnd(server.Closing)
			second := mustDialTLS(t, s.Addr(), cfg)
			if !second.c.ConnectionState().DidResume {
				t.Fatal("the second connection did not resume the first's session")
			}
			second.send("again\n")
			second.expect(server.Answer)
		})
	}
}

// TestTLSHandshakeTimeout: clients that send nothing, half a ClientHello,
// a whole one and then nothing more, or garbage, are each closed within
// HandshakeTimeout (garbage at once) and counted in TLSErrors, while a
// healthy client handshakes, and stays open past HandshakeTimeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, ok := tlsServer(t, server.Config{HandshakeTimeout: timeout})
	if !ok {
		return
	}
	hello := clientHello(t)
	type attacker struct {
		name, send string
		waits      bool // for the timeout, not closed at once
	}
	attackers := []attacker{
		{"silent", "", true},
		{"half ClientHello", string(hello[:len(hello)/2]), true},
		{"stalled after ClientHello", string(hello), true},
		{"garbage", "GET / HTTP/1.1\r\n\r\n", false},
		{"record too long", "\x16\x03\x01\xff\xff", false},
	}
	var wg sync.WaitGroup
	for _, a := range attackers {
		start := time.Now()
		c := dial(t, s.Addr())
		c.send(a.send)
		wg.Go(func() {
			// The server's first flight, for the stalled client, then
			// the end.
			readEnd(c.c, ioTimeout)
			d := time.Since(start)
			switch {
			case a.waits && d < timeout:
				t.Errorf("%s: closed after %v, before HandshakeTimeout %v", a.name, d, timeout)
			case a.waits && d > timeout+time.Second, !a.waits && d > timeout:
				t.Errorf("%s: closed after %v; HandshakeTimeout is %v", a.name, d, timeout)
			}
		})
	}
	healthy := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	healthy.send("hi\n")
	healthy.expect(server.Answer)
	wg.Wait()
	waitFor(t, "the attackers counted in TLSErrors", func() bool {
		return s.Stats().TLSErrors.Load() == int64(len(attackers))
	})
	// Past its HandshakeTimeout, the healthy client is still served.
	healthy.send("again\n")
	healthy.expect(server.Answer)
	if n := s.Stats().TLSErrors.Load(); n != int64(len(attackers)) {
		t.Fatalf("TLSErrors = %d, want %d", n, len(attackers))
	}
}

// TestTLSHandshakeSlots: with MaxHandshakes 1, clients that have not sent
// a whole ClientHello hold no slot, so a healthy client handshakes while
// they wait out their deadline; a client whose handshake runs holds the
// slot, and the next handshake waits for it to end.
func TestTLSHandshakeSlots(t *testing.T) {
	// Longer than every wait below: no client here times out.
	s, ok := tlsServer(t, server.Config{MaxHandshakes: 1, HandshakeTimeout: 30 * time.Second})
	if !ok {
		return
	}
	st := s.Stats()
	hello := clientHello(t)
	var sent int64
	for range 10 {
		dial(t, s.Addr()) // silent
		c := dial(t, s.Addr())
		c.send(string(hello[:len(hello)/2]))
		sent += int64(len(hello) / 2)
	}
	waitFor(t, "the server to read the half ClientHellos", func() bool { return st.BytesIn.Load() >= sent })
	healthy := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	if n := st.TLSErrors.Load(); n != 0 {
		t.Fatalf("the handshake waited for %d clients without a ClientHello to time out", n)
	}
	healthy.send("hi\n")
	healthy.expect(server.Answer)

	// A handshake that runs (the server answered its ClientHello) holds
	// the only slot.
	stalled := dial(t, s.Addr())
	stalled.send(string(hello))
	stalled.c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := stalled.c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("no ServerHello for a whole ClientHello: %v", err)
	}
	in := st.BytesIn.Load()
	next := dial(t, s.Addr())
	next.c.SetDeadline(time.Now().Add(ioTimeout))
	done := make(chan error, 1)
	go func() { done <- tls.Client(next.c, clientConfig(t, 0)).Handshake() }()
	waitFor(t, "the server to read the next ClientHello", func() bool { return st.BytesIn.Load() >= in+int64(len(hello)) })
	select {
	case err := <-done:
		t.Fatalf("a second handshake ended (%v) while the only slot was held", err)
	case <-time.After(200 * time.Millisecond):
	}
	stalled.c.Close() // its handshake fails, and frees the slot
	if err := receive(t, done, "the second handshake"); err != nil {
		t.Fatalf("second handshake: %v", err)
	}
	deadline := time.Now().Add(ioTimeout)
	for st.TLSErrors.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := st.TLSErrors.Load(); n != 1 {
		t.Fatalf("TLSErrors = %d; want 1, the client that left mid-handshake", n)
	}
}

// TestTLSBadRecord: a record that does not decrypt, on an established
// connection, closes it and counts in TLSErrors.
func TestTLSBadRecord(t *testing.T) {
	s, ok := tlsServer(t, server.Config{})
	if !ok {
		return
	}
	c := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	c.send("hi\n")
	c.expect(server.Answer)
	bad := append([]byte{23, 3, 3, 0, 32}, bytes.Repeat([]byte{0xa5}, 32)...)
	if _, err := c.raw.Write(bad); err != nil {
		t.Fatal(err)
	}
	if got, err := readEnd(c.c, ioTimeout); got != "" || err == nil {
		t.Fatalf("read %q then %v; want the connection ended by an alert", got, err)
	}
	waitFor(t, "TLSErrors", func() bool { return s.Stats().TLSErrors.Load() == 1 })
}

// TestTLSProxyProtocol: the PROXY header comes first, in the clear, and
// MaxConnsPerIP refuses a client before its handshake: the refusal is no
// TLS error.
func TestTLSProxyProtocol(t *testing.T) {
	s, ok := tlsServer(t, server.Config{ProxyProtocol: true, MaxConnsPerIP: 1})
	if !ok {
		return
	}
	const header = "PROXY TCP4 192.0.2.7 192.0.2.1 4000 443\r\n"
	c, err := dialTLS(t, s.Addr(), clientConfig(t, 0), header)
	if err != nil {
		t.Fatalf("handshake after a PROXY header: %v", err)
	}
	c.send("hi\n")
	c.expect(server.Answer)
	if _, err := dialTLS(t, s.Addr(), clientConfig(t, 0), header); err == nil {
		t.Fatal("a second connection from 192.0.2.7 handshook; MaxConnsPerIP is 1")
	}
	waitFor(t, "RejectedPerIP", func() bool { return s.Stats().RejectedPerIP.Load() == 1 })
	if n := s.Stats().TLSErrors.Load(); n != 0 {
		t.Fatalf("TLSErrors = %d, want 0", n)
	}
}

// TestTLSShutdown: a graceful shutdown answers what each TLS client sent,
// then ends each with close_notify and a FIN (io.EOF to the client, not an
// error), and does not wait for the handshake of a client that never
// sends its ClientHello.
func TestTLSShutdown(t *testing.T) {
	s, ok := tlsServer(t, server.Config{HandshakeTimeout: time.Minute})
	if !ok {
		return
	}
	idle := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	partial := mustDialTLS(t, s.Addr(), clientConfig(t, tls.VersionTLS12))
	partial.send("a\nb\npar")
	partial.expect(acks(2, false))
	burst := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	silent := dial(t, s.Addr())
	const n = 2000
	burst.send(strings.Repeat("m\n", n))

	var wg sync.WaitGroup
	for _, c := range []struct {
		c    *tlsClient
		want string
	}{{idle, ""}, {partial, ""}, {burst, acks(n, false)}} {
		wg.Go(func() {
			if err := c.c.end(c.want); err != nil {
				t.Error(err)
			}
			c.c.raw.Close() // the server lingers for it
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v", err, time.Since(start))
	}
	wg.Wait()
	if got, err := readEnd(silent.c, ioTimeout); got != "" || err != nil && !isReset(err) {
		t.Fatalf("client without a ClientHello: read %q then %v; want the connection closed", got, err)
	}
	if n := s.Stats().Open.Load(); n != 0 {
		t.Fatalf("Open = %d after Shutdown", n)
	}
}

// tlsGreeter greets each connection in OnOpen, and records and echoes as
// recorder does.
type tlsGreeter struct{ *recorder }

func (g tlsGreeter) OnOpen(c *server.Conn) {
	if err := c.Write([]byte("hello\n")); err != nil {
		panic(err)
	}
	g.recorder.OnOpen(c)
}

// TestTLSHandler: the Handler API inside TLS. OnOpen comes after the
// handshake, never for a client that did not finish one; Write (in OnOpen
// and OnData) and AsyncWrite reach the client encrypted; the client's
// close_notify ends the connection with OnClose(io.EOF) and the server's
// own close_notify.
func TestTLSHandler(t *testing.T) {
	r := newRecorder(true)
	s, ok := tlsServer(t, server.Config{Handler: tlsGreeter{r}, HandshakeTimeout: 300 * time.Millisecond})
	if !ok {
		return
	}
	dial(t, s.Addr()) // sends nothing
	waitFor(t, "the silent client's handshake to time out", func() bool { return s.Stats().TLSErrors.Load() == 1 })
	select {
	case <-r.opened:
		t.Fatal("OnOpen for a client that did not handshake")
	case <-r.ended:
		t.Fatal("OnClose for a client that did not handshake")
	default:
	}

	c := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	c.expect("hello\n")
	hc := receive(t, r.opened, "OnOpen")
	if err := hc.AsyncWrite([]byte("async\n")); err != nil {
		t.Fatal(err)
	}
	c.expect("async\n")
	c.send("echo me\n")
	c.expect("echo me\n")
	if err := c.c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.expectEnd("")
	for _, plain := range []string{"hello\n", "async\n", "echo me\n"} {
		if bytes.Contains(c.w.wire(), []byte(plain)) {
			t.Fatalf("%q crossed the wire in the clear", plain)
		}
	}
	if got := receive(t, r.ended, "OnClose"); got != hc {
		t.Fatal("OnClose for another connection")
	}
	if why := r.why(hc); why != io.EOF {
		t.Fatalf("OnClose reason %v, want io.EOF", why)
	}
}

// TestTLSNonReader: a TLS client that sends and never reads makes the
// server stop reading it, and others are answered promptly; once it
// reads, every answer is there, intact.
func TestTLSNonReader(t *testing.T) {
	s, ok := tlsServer(t, server.Config{MaxPendingOutput: 4096, Loops: 1})
	if !ok {
		return
	}
	hog := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	hog.raw.SetReadBuffer(64 << 10)
	const n = 1 << 20
	shaken := s.Stats().BytesIn.Load()
	go func() {
		// Each 64 KiB within ioTimeout: the rest goes in as the client
		// reads. A stuck write fails at the test's end.
		b := bytes.Repeat([]byte("\n"), n)
		for len(b) > 0 {
			hog.c.SetWriteDeadline(time.Now().Add(ioTimeout))
			m, err := hog.c.Write(b[:min(len(b), 64<<10)])
			if err != nil {
				return
			}
			b = b[m:]
		}
	}()
	waitFor(t, "the server to read", func() bool { return s.Stats().BytesIn.Load() > shaken+1024 })
	in := waitStalled(t, s)
	// Each byte read is at most one answer, of 24 bytes: a server that
	// read on would hold up to 24 MiB of them.
	if in >= n/4 {
		t.Fatalf("the server read %d bytes of %d from a client that reads nothing", in, n)
	}
	other := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	for range 20 {
		start := time.Now()
		other.send("ping\n")
		other.expect(server.Answer)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("answer took %v while another client is paused", d)
		}
	}
	got := make([]byte, n*len(server.Answer))
	for off := 0; off < len(got); {
		// ioTimeout for each MiB, as readEnd.
		hog.c.SetReadDeadline(time.Now().Add(ioTimeout))
		m, err := io.ReadFull(hog.c, got[off:min(len(got), off+1<<20)])
		off += m
		if err != nil {
			t.Fatalf("read %d bytes of answers then %v; want %d", off, err, len(got))
		}
	}
	if string(got) != acks(n, false) {
		t.Fatal("answers corrupted")
	}
}

// TestTLSPendingOutput: a Handler's writes to a TLS client that does not
// read meet MaxPendingOutput: AsyncWrite fails with ErrBackpressure past
// it, and once the client reads, every write accepted arrives in order,
// then the close_notify of Close.
func TestTLSPendingOutput(t *testing.T) {
	const max = 64 << 10
	r := newRecorder(false)
	s, ok := tlsServer(t, server.Config{Handler: r, MaxPendingOutput: max})
	if !ok {
		return
	}
	c := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	c.raw.SetReadBuffer(64 << 10)
	hc := receive(t, r.opened, "OnOpen")
	line := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB
	var sent int
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := hc.AsyncWriteContext(ctx, line)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent += len(line)
		if time.Since(start) > ioTimeout {
			t.Fatalf("%d bytes written to a client that does not read, and no backpressure", sent)
		}
	}
	if p := hc.Pending(); p > max || p <= max/2 {
		t.Fatalf("pending output %d, want near the bound %d and within it", p, max)
	}
	if err := hc.AsyncWrite(make([]byte, max/2)); !errors.Is(err, server.ErrBackpressure) {
		t.Fatalf("AsyncWrite past the bound: %v, want ErrBackpressure", err)
	}
	if err := hc.Close(); err != nil {
		t.Fatal(err)
	}
	c.expectEnd(string(bytes.Repeat(line, sent/len(line))))
	receive(t, r.ended, "OnClose")
}

// TestTLSWriteTimeout: a Handler's write timeout inside TLS, whose stream
// cannot go on after a Write that failed: a client that reads slowly makes
// progress, which restarts the wait, and stays; once it stops reading it
// is closed with ErrWriteTimeout, no sooner than the timeout.
func TestTLSWriteTimeout(t *testing.T) {
	// A reader every 50ms keeps far inside d, also on a loaded machine,
	// where the test's own sleeps can overrun by a few hundred ms.
	const d = 500 * time.Millisecond
	r := newRecorder(false)
	s, ok := tlsServer(t, server.Config{Handler: timeoutHandler{recorder: r, write: d}})
	if !ok {
		return
	}
	c := mustDialTLS(t, s.Addr(), clientConfig(t, 0))
	c.raw.SetReadBuffer(128 << 10) // fixed, so that each read opens the window
	hc := receive(t, r.opened, "OnOpen")
	f := keepFullTaken(t, hc, s.Stats().BytesOut.Load)
	buf := make([]byte, 256<<10)
	var got int
	for start := time.Now(); time.Since(start) < time.Second; {
		time.Sleep(50 * time.Millisecond)
		// crypto/tls reads a record per call: read what has come.
		for n := 0; n < 128<<10; {
			c.c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
			m, err := c.c.Read(buf)
			n += m
			got += m
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("slow reader: %v after %d bytes (OnClose: %v)", err, got, r.why(hc))
			}
		}
		stillOpen(t, r, fmt.Sprintf("a client that reads every 50ms (%d bytes)", got))
	}
	at, why := waitEnd(t, r, hc, ioTimeout)
	last, full := f.wait(t)
	if why != server.ErrWriteTimeout {
		t.Fatalf("OnClose reason %v once the client stopped reading, want ErrWriteTimeout", why)
	}
	if full == 0 {
		t.Fatal("the output was never full")
	}
	if e := at.Sub(last); e < d || e > 3*time.Second {
		t.Fatalf("closed %v after the output's last progress; want the write timeout %v, and within 3s", e, d)
	}
}
