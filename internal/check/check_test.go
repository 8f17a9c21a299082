package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
	"github.com/tcpoll/poll/server"
)

// TestServer checks the real server, whichever engine this build runs on.
// The evio engine cannot answer a message pending at EOF (see
// server/engine_evio.go); for it those cases must fail and all others pass.
func TestServer(t *testing.T) {
	for _, max := range []int{0, 16, 1000} {
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			addr, engine := startServer(t, server.Config{Addr: "127.0.0.1:0", MaxMessage: max})
			cfg := Config{Addr: addr, MaxMessage: max, Quiet: 50 * time.Millisecond}
			for _, c := range Cases(cfg.withDefaults().MaxMessage) {
				r := c.Run(context.Background(), cfg)
				switch {
				case engine == "evio" && c.AnswersAtEOF():
					if r.Err == nil {
						t.Logf("%s: passed on evio, which was not expected to answer at EOF", c.Name)
					}
				case r.Err != nil:
					t.Errorf("FAIL %s: %v", r.Name, r.Err)
				}
			}
		})
	}
}

// TestServerTLS checks the real server inside TLS, 1.3 and 1.2: every case
// passes, as in plaintext. The evio engine has no TLS, and New must say so.
func TestServerTLS(t *testing.T) {
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	if _, engine := startServer(t, server.Config{Addr: "127.0.0.1:0"}); engine == "evio" {
		if _, err := server.New(server.Config{Addr: "127.0.0.1:0", TLS: pair.ServerConfig()}); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("evio engine: New with TLS: %v, want errors.ErrUnsupported", err)
		}
		return
	}
	for _, max := range []int{0, 16} {
		addr, _ := startServer(t, server.Config{Addr: "127.0.0.1:0", MaxMessage: max, TLS: pair.ServerConfig()})
		for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			t.Run(fmt.Sprintf("max=%d/%s", max, tls.VersionName(version)), func(t *testing.T) {
				client := pair.ClientConfig()
				client.MaxVersion = version
				cfg := Config{Addr: addr, MaxMessage: max, Quiet: 50 * time.Millisecond, TLS: client}
				cfg.MaxMessage = cfg.withDefaults().MaxMessage
				if failed := runAll(t, cfg); len(failed) > 0 {
					t.Errorf("%d cases failed: %q", len(failed), failed)
				}
			})
		}
	}
}

func startServer(t *testing.T, cfg server.Config) (addr, engine string) {
	t.Helper()
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := s.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		if err := <-done; err != nil && !errors.Is(err, server.ErrServerClosed) && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s.Addr().String(), s.Engine()
}

// fake is a small goroutine-per-connection server written from the
// protocol, with switches that make it wrong in one way each.
type fake struct {
	max          int
	answer       string // what a message gets
	noCut        bool   // hold long lines whole instead of cutting them
	noCR         bool   // keep the CR before LF
	resetOnClose bool   // end every connection with a reset
	ignoreEOF    bool   // drop an unfinished message at EOF
	perRead      bool   // answer every read, like the original server
	// tls, when set, serves inside TLS; noCloseNotify then ends each
	// connection with a bare FIN.
	tls           *tls.Config
	noCloseNotify bool
}

func (f fake) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.conn(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

func (f fake) conn(tcp *net.TCPConn) {
	// c carries the protocol; closer ends the connection: the TLS session,
	// with close_notify, or the socket alone.
	var c net.Conn = tcp
	var closer io.Closer = tcp
	defer func() { closer.Close() }()
	if f.resetOnClose {
		tcp.SetLinger(0)
	}
	tcp.SetDeadline(time.Now().Add(10 * time.Second))
	if f.tls != nil {
		tc := tls.Server(tcp, f.tls)
		if tc.Handshake() != nil {
			return
		}
		c = tc
		if !f.noCloseNotify {
			closer = tc
		}
	}
	var pending []byte
	// message answers one message and reports whether it was "close".
	message := func(out, msg []byte) ([]byte, bool) {
		if !f.noCR && len(msg) > 0 && msg[len(msg)-1] == '\r' {
			msg = msg[:len(msg)-1]
		}
		if string(msg) == "close" {
			return append(out, closing...), true
		}
		return append(out, f.answer...), false
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		var out []byte
		done := false
		if f.perRead && n > 0 {
			out, done = message(out, bytes.TrimSuffix(buf[:n], []byte("\n")))
			n = 0
		}
		for _, b := range buf[:n] {
			if b == '\n' {
				out, done = message(out, pending)
				pending = pending[:0]
				if done {
					break
				}
				continue
			}
			if len(pending) == f.max && !f.noCut {
				out = append(out, f.answer...)
				pending = pending[:0]
			}
			pending = append(pending, b)
		}
		if err != nil && !done && len(pending) > 0 && !f.ignoreEOF {
			out, done = message(out, pending)
		}
		if _, werr := c.Write(out); werr != nil || done || err != nil {
			return
		}
	}
}

// runAll plays every case at once and returns the names of those that
// failed.
func runAll(t *testing.T, cfg Config) []string {
	t.Helper()
	cases := Cases(cfg.MaxMessage)
	results := make([]Result, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() { results[i] = c.Run(context.Background(), cfg) })
	}
	wg.Wait()
	var failed []string
	for _, r := range results {
		if r.Err != nil {
			t.Logf("FAIL %s: %v", r.Name, r.Err)
			failed = append(failed, r.Name)
		}
	}
	return failed
}

// fakeTest is a fake and the cases it must fail.
type fakeTest struct {
	name     string
	f        fake
	mustFail []string // names of cases that must fail; nil: none may
}

// testFakes plays every case against each fake, inside TLS with client if
// it is not nil.
func testFakes(t *testing.T, tests []fakeTest, client *tls.Config) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := tt.f.serve(t)
			failed := runAll(t, Config{Addr: addr, MaxMessage: 256, Timeout: 2 * time.Second, Quiet: 50 * time.Millisecond, TLS: client})
			if tt.mustFail == nil {
				if len(failed) > 0 {
					t.Fatalf("a correct server failed %q", failed)
				}
				return
			}
			for _, name := range tt.mustFail {
				if !slices.Contains(failed, name) {
					t.Errorf("case %s passed against a wrong server; failed: %q", name, failed)
				}
			}
		})
	}
}

// TestFake checks the checker: the correct fake passes, and each wrong
// one fails on the cases that show its fault.
func TestFake(t *testing.T) {
	good := fake{max: 256, answer: answer}
	testFakes(t, []fakeTest{
		{"correct", good, nil},
		{"spelling", fake{max: 256, answer: "I received your message\n"}, []string{`"hello\n"`, `"a\nb\nc\n" in one write`}},
		{"no cut", fake{max: 256, answer: answer, noCut: true}, []string{"600 bytes without LF, then LF", "257 bytes + LF"}},
		{"no CR rule", fake{max: 256, answer: answer, noCR: true}, []string{`"close\r\n"`, `"close\r" then EOF`}},
		{"reset", fake{max: 256, answer: answer, resetOnClose: true}, []string{`"close\n"`, "EOF with nothing sent"}},
		{"EOF drops", fake{max: 256, answer: answer, ignoreEOF: true}, []string{`"bye" then EOF`, `"close" then EOF`}},
		{"per read", fake{max: 256, answer: answer, perRead: true}, []string{`"hel" then "lo\r\n"`, "1000 messages in one write"}},
	}, nil)
}

// TestFakeTLS checks the checker inside TLS, 1.3 and 1.2: the correct fake
// passes every case, each wrong one still fails where its fault shows, and
// one that ends connections with a FIN but no close_notify fails wherever
// the server must close.
func TestFakeTLS(t *testing.T) {
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	srv := pair.ServerConfig()
	tls12 := pair.ServerConfig()
	tls12.MaxVersion = tls.VersionTLS12
	testFakes(t, []fakeTest{
		{"correct", fake{max: 256, answer: answer, tls: srv}, nil},
		{"correct TLS 1.2", fake{max: 256, answer: answer, tls: tls12}, nil},
		{"spelling", fake{max: 256, answer: "I received your message\n", tls: srv}, []string{`"hello\n"`, `"a\nb\nc\n" in one write`}},
		{"no cut", fake{max: 256, answer: answer, noCut: true, tls: srv}, []string{"600 bytes without LF, then LF", "257 bytes + LF"}},
		{"reset", fake{max: 256, answer: answer, resetOnClose: true, tls: srv}, []string{`"close\n"`, "EOF with nothing sent"}},
		{"EOF drops", fake{max: 256, answer: answer, ignoreEOF: true, tls: srv}, []string{`"bye" then EOF`, `"close" then EOF`}},
		{"per read", fake{max: 256, answer: answer, perRead: true, tls: srv}, []string{`"hel" then "lo\r\n"`, `"hello\r\n" one byte per write`}},
		{"no close_notify", fake{max: 256, answer: answer, noCloseNotify: true, tls: srv},
			[]string{`"hello\n"`, `"close\n"`, "EOF with nothing sent", `"bye" then EOF`}},
	}, pair.ClientConfig())
}

// TestTLSReport checks what Run says of a TLS server that ends without
// close_notify, of one whose certificate the client does not trust, and
// of a plaintext server: each case fails at once, saying why.
func TestTLSReport(t *testing.T) {
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Timeout: 2 * time.Second, Quiet: 20 * time.Millisecond, TLS: pair.ClientConfig()}
	for _, tt := range []struct {
		name   string
		f      fake
		client *tls.Config
		want   []string
	}{
		{"no close_notify", fake{max: 256, answer: answer, noCloseNotify: true, tls: pair.ServerConfig()}, cfg.TLS, []string{
			`FAIL  "close\n": got "closing" then EOF without close_notify, want "closing" then close_notify and EOF`,
			`FAIL  "a\nb\nc\n" in one write: got "I recieved your message\n"×3 then EOF without close_notify, want "I recieved your message\n"×3 then close_notify and EOF`,
		}},
		{"untrusted", fake{max: 256, answer: answer, tls: pair.ServerConfig()}, &tls.Config{ServerName: "127.0.0.1"}, []string{
			`FAIL  "hello\n": TLS handshake: tls: failed to verify certificate`,
		}},
		{"plaintext server", fake{max: 256, answer: answer}, cfg.TLS, []string{
			`FAIL  "hello\n": TLS handshake: `,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfg
			cfg.Addr, cfg.TLS = tt.f.serve(t), tt.client
			var out bytes.Buffer
			start := time.Now()
			if err := Run(context.Background(), &out, cfg); err == nil {
				t.Fatalf("Run passed:\n%s", out.String())
			}
			for _, want := range tt.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Run took %v: the cases should fail at once", d)
			}
		})
	}
}

// TestRunFails checks Run's report against a server that answers wrongly.
func TestRunFails(t *testing.T) {
	addr := fake{max: 256, answer: "ok\n"}.serve(t)
	var out bytes.Buffer
	err := Run(context.Background(), &out, Config{Addr: addr, Timeout: time.Second, Quiet: 20 * time.Millisecond})
	if err == nil {
		t.Fatalf("Run passed a wrong server:\n%s", out.String())
	}
	got := out.String()
	for _, want := range []string{
		`FAIL  "hello\n": got "ok\n", want "I recieved your message\n"`,
		"ok    EOF with nothing sent\n",
		"cases FAILED\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestNoServer checks that a refused connection fails the case.
func TestNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = Run(context.Background(), io.Discard, Config{Addr: addr, Timeout: time.Second})
	if err == nil {
		t.Fatal("Run passed with no server")
	}
}

func TestShow(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{answer, `"I recieved your message\n"`},
		{answer + answer + answer + closing, `"I recieved your message\n"×3 + "closing"`},
		{"x" + answer + answer, `"x" + "I recieved your message\n"×2`},
		{strings.Repeat("a", 100), `"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"…(100 bytes)…"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"`},
	}
	for _, tt := range tests {
		if got := show([]byte(tt.in)); got != tt.want {
			t.Errorf("show(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestAnswersAtEOF(t *testing.T) {
	var got []string
	for _, c := range Cases(256) {
		if c.AnswersAtEOF() {
			got = append(got, c.Name)
		}
	}
	want := []string{`"bye" then EOF`, `"close" then EOF`, "256 bytes then EOF", "257 bytes then EOF", `"close\r" then EOF`}
	if !slices.Equal(got, want) {
		t.Errorf("cases answering at EOF: got %q, want %q", got, want)
	}
}
