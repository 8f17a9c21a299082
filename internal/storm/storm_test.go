package storm

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
)

// clientTLS is a client configuration trusting the test certificate.
func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	return pair.ClientConfig()
}

// TestPlan draws many connections: the same seed gives the same ones, every
// kind of the defaults and every end is drawn, and what a Drain expects
// follows from the input. Inside TLS, the handshake kinds send all or the
// start of one ClientHello and never drain.
func TestPlan(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) { testPlan(t, nil) })
	t.Run("tls", func(t *testing.T) { testPlan(t, clientTLS(t)) })
}

func testPlan(t *testing.T, tlsConfig *tls.Config) {
	cfg, err := Config{Addr: "x:1", TLS: tlsConfig}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if want := numKinds - 2; tlsConfig == nil && (len(cfg.Kinds) != want || slices.Contains(cfg.Kinds, Hello) || slices.Contains(cfg.Kinds, PartialHello)) {
		t.Errorf("plaintext default kinds %v, want the %d without a handshake", cfg.Kinds, want)
	}
	if tlsConfig != nil && len(cfg.Kinds) != numKinds {
		t.Errorf("TLS default kinds %v, want all %d", cfg.Kinds, numKinds)
	}
	a := rand.New(rand.NewPCG(7, 3))
	b := rand.New(rand.NewPCG(7, 3))
	var kinds [numKinds]int
	var ends [numEnds]int
	for i := range 3000 {
		p, q := newPlan(a, &cfg), newPlan(b, &cfg)
		if p.kind != q.kind || p.end != q.end || p.wait != q.wait || !bytes.Equal(p.want, q.want) ||
			!bytes.Equal(bytes.Join(p.writes, nil), bytes.Join(q.writes, nil)) {
			t.Fatalf("plan %d differs with the same seed: %+v, %+v", i, p, q)
		}
		kinds[p.kind]++
		ends[p.end]++
		in := bytes.Join(p.writes, nil)
		if p.msgs > cfg.MaxMessages || p.wait > cfg.MaxWait {
			t.Fatalf("plan %d: %d messages, wait %v; want at most %d, %v", i, p.msgs, p.wait, cfg.MaxMessages, cfg.MaxWait)
		}
		if p.kind.handshakeOnly() {
			switch {
			case len(in) == 0 || !bytes.HasPrefix(cfg.hello, in):
				t.Fatalf("plan %d (%v): sends %d bytes that do not start the hello", i, p.kind, len(in))
			case (p.kind == Hello) != (len(in) == len(cfg.hello)):
				t.Fatalf("plan %d (%v): sends %d bytes of the %d-byte hello", i, p.kind, len(in), len(cfg.hello))
			case p.end == Drain || p.want != nil:
				t.Fatalf("plan %d (%v): ends %v wanting %q, want no drain", i, p.kind, p.end, p.want)
			}
			continue
		}
		if got, want := reference(in, p.kind == HalfClose), p.want; !bytes.Equal(got, want) {
			t.Fatalf("plan %d (%v): input %q is answered %q, want %q", i, p.kind, in, got, want)
		}
		for _, w := range p.writes {
			if len(w) == 0 {
				t.Fatalf("plan %d (%v): an empty write", i, p.kind)
			}
		}
		if p.kind == Pipelined && len(p.writes) < 2 {
			t.Fatalf("plan %d: pipelined in %d write", i, len(p.writes))
		}
		if p.kind == Silent && (len(in) > 0 || p.end != Now) {
			t.Fatalf("plan %d: silent, but sends %q and ends %v", i, in, p.end)
		}
	}
	for k, n := range kinds {
		if in := slices.Contains(cfg.Kinds, Kind(k)); in && n < 300 || !in && n > 0 {
			t.Errorf("%v drawn %d times in 3000 (a default: %v)", Kind(k), n, in)
		}
	}
	for e, n := range ends {
		if n < 500 {
			t.Errorf("%v drawn %d times in 3000", End(e), n)
		}
	}
}

// reference answers input as PROTOCOL.md says (short messages only), with
// EOF after it if eof.
func reference(in []byte, eof bool) []byte {
	var out []byte
	for {
		line, rest, found := bytes.Cut(in, []byte("\n"))
		if !found && !(eof && len(line) > 0) {
			return out
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if string(line) == "close" {
			return append(out, closing...)
		}
		out = append(out, answer...)
		if !found {
			return out
		}
		in = rest
	}
}

// serveReference serves the protocol on ln, a goroutine a connection, the
// simple way: answer each complete message, on "close" send "closing" and a
// FIN and read until the client is gone. With tlsConfig, inside TLS: the
// FIN follows close_notify, and a client's close_notify is its EOF.
func serveReference(ln net.Listener, tlsConfig *tls.Config) {
	for {
		nc, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// A connection reset before it was accepted: under Wine,
			// AcceptEx fails with WSAENOTCONN. The next may be whole. A
			// millisecond's pause keeps a failing listener (EMFILE) from
			// spinning.
			time.Sleep(time.Millisecond)
			continue
		}
		go func() {
			raw := nc.(*net.TCPConn)
			defer raw.Close()
			var c interface {
				net.Conn
				CloseWrite() error
			} = raw
			if tlsConfig != nil {
				tc := tls.Server(raw, tlsConfig)
				raw.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() != nil {
					return // the storm's handshake kinds
				}
				raw.SetDeadline(time.Time{})
				c = tc
			}
			var pending []byte
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				pending = append(pending, buf[:n]...)
				eof := err == io.EOF
				out := reference(pending, eof)
				closed := bytes.HasSuffix(out, []byte(closing))
				if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
					pending = pending[i+1:]
				}
				if _, werr := c.Write(out); werr != nil {
					return
				}
				if closed || eof {
					c.CloseWrite()
					raw.CloseWrite() // after a TLS close_notify
					io.Copy(io.Discard, c)
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// TestRun storms a reference server: every kind and end is made, no
// connection fails, and the polite clients are answered.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveReference(ln, nil)
	testRun(t, Config{Addr: ln.Addr().String()})
}

// TestRunTLS storms a reference server inside TLS: the same, the
// handshake kinds too.
func TestRunTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	go serveReference(ln, pair.ServerConfig())
	// A second: handshakes under -race are slow, and every kind must be
	// drawn.
	testRun(t, Config{Addr: ln.Addr().String(), TLS: pair.ClientConfig(), Duration: time.Second})
}

func testRun(t *testing.T, cfg Config) {
	cfg.Stormers, cfg.Polite = 8, 2
	if cfg.Duration == 0 {
		cfg.Duration = 500 * time.Millisecond
	}
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	kinds := cfg.Kinds
	if cfg, err := cfg.withDefaults(); err == nil {
		kinds = cfg.Kinds
	}
	t.Log(res)
	if took := time.Since(start); took > cfg.Duration+2500*time.Millisecond {
		t.Errorf("Run took %v for a %v storm", took, cfg.Duration)
	}
	if res.StormFailures > 0 || res.PoliteFailures > 0 || res.StormDialErrors > 0 {
		t.Errorf("failures: storm %v, polite %v", res.StormErrors, res.PoliteErrors)
	}
	if res.Polite == 0 || res.PoliteAnswers != res.Polite {
		t.Errorf("%d polite connections, %d answers", res.Polite, res.PoliteAnswers)
	}
	for _, k := range kinds {
		if res.Kinds[k] == 0 {
			t.Errorf("no %v connection made", k)
		}
	}
	for e := range End(numEnds) {
		if res.Ends[e] == 0 {
			t.Errorf("no connection ended %v", e)
		}
	}
	if res.Drained == 0 {
		t.Errorf("no connection drained")
	}
}

// TestRunNoServer storms a port nobody listens on: every dial fails, the
// clients do not spin, and Run stops on time. A canceled context stops it
// early, with ctx's error.
func TestRunNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	res, err := Run(context.Background(), Config{Addr: addr, Duration: 200 * time.Millisecond, Stormers: 4, Polite: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Storm != 0 || res.StormDialErrors == 0 || res.PoliteFailures == 0 {
		t.Errorf("got %v, want dial errors only", res)
	}
	// Each client pauses after a failed dial.
	if max := 6 * int(200*time.Millisecond/pauseAfterDialError); res.StormDialErrors+res.PoliteFailures > max {
		t.Errorf("%d failed dials in 200ms, want at most %d", res.StormDialErrors+res.PoliteFailures, max)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := Run(ctx, Config{Addr: addr, Duration: time.Hour, Stormers: 2, Polite: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled run: %v, want %v", err, context.Canceled)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("canceled run took %v", took)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{},
		{Addr: "x:1", Duration: -1},
		{Addr: "x:1", Stormers: -1},
		{Addr: "x:1", Kinds: []Kind{}},
		{Addr: "x:1", Kinds: []Kind{numKinds}},
		{Addr: "x:1", Ends: []End{numEnds}},
		{Addr: "x:1", Kinds: []Kind{Hello}},
		{Addr: "x:1", Kinds: []Kind{Close, PartialHello}},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v) = nil error", c)
		}
	}
}
