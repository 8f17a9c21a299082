//go:build unix

package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
	"github.com/tcpoll/poll/server"
)

func certPair(t *testing.T) *testcert.Pair {
	t.Helper()
	p, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsConfig is quickConfig inside TLS, trusting the test certificate.
func tlsConfig(t *testing.T, addr string) Config {
	cfg := quickConfig(addr)
	cfg.Duration = 500 * time.Millisecond
	cfg.TLS = certPair(t).ClientConfig()
	return cfg
}

// TestTLSFake runs TLS clients against a crypto/tls fake in its right
// forms: TLS 1.3 and 1.2, answers split at every byte, and a pipeline of
// messages and answers deeper than the socket buffers, where a client
// that waited for its write to end before reading would wait forever.
func TestTLSFake(t *testing.T) {
	pair := certPair(t)
	tls12 := pair.ServerConfig()
	tls12.MaxVersion = tls.VersionTLS12
	// 1024-byte messages cut every 16 bytes: 64 answers each.
	cut := func(int) []byte { return bytes.Repeat([]byte(Answer), 64) }
	for _, tt := range []struct {
		name string
		f    *fakeServer
		edit func(*Config)
	}{
		{"TLS 1.3", &fakeServer{answer: good, tls: pair.ServerConfig()}, nil},
		{"TLS 1.2", &fakeServer{answer: good, tls: tls12}, nil},
		{"split answers", &fakeServer{answer: good, split: true, tls: pair.ServerConfig()}, nil},
		{"deep pipeline", &fakeServer{answer: cut, tls: pair.ServerConfig()}, func(c *Config) {
			// 1 MiB of messages and 1.5 MiB of answers in flight each.
			c.Conns, c.Depth, c.Size, c.MaxMessage = 2, 1024, 1024, 16
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsConfig(t, startFake(t, tt.f))
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkClean(t, res)
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			if !res.TLS || !strings.Contains(res.String(), "TLS") || !bytes.Contains(b, []byte(`"tls":true`)) {
				t.Errorf("Result.TLS %v, summary %q, JSON %s: want TLS said", res.TLS, res.String(), b)
			}
			t.Logf("%.0f msgs/s, p50 %v, p99 %v", res.MsgsPerSec, res.P50, res.P99)
		})
	}
}

// TestTLSFaults runs TLS clients against a fake that is wrong in one way
// each: every fault is counted as the event loops count it.
func TestTLSFaults(t *testing.T) {
	pair := certPair(t)
	wrong := func(n int) []byte {
		switch n {
		case 3:
			return []byte("I recieved\n")
		case 4:
			return []byte("I recieved your message!!\n")
		case 5:
			return []byte("closing" + Answer)
		}
		return []byte(Answer)
	}
	mute := func(n int) []byte {
		if n >= 100 {
			return nil
		}
		return []byte(Answer)
	}

	t.Run("wrong lengths", func(t *testing.T) {
		cfg := tlsConfig(t, startFake(t, &fakeServer{answer: wrong, tls: pair.ServerConfig()}))
		cfg.Conns, cfg.Depth, cfg.Loops, cfg.Duration = 1, 1, 1, 200*time.Millisecond
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Mismatches != 3 || res.Errors != 0 || res.Timeouts != 0 {
			t.Errorf("%d mismatches, %d errors, %d timeouts; want 3, 0, 0", res.Mismatches, res.Errors, res.Timeouts)
		}
	})
	t.Run("timeouts", func(t *testing.T) {
		cfg := tlsConfig(t, startFake(t, &fakeServer{answer: mute, tls: pair.ServerConfig()}))
		cfg.Conns, cfg.Timeout, cfg.Duration = 4, 300*time.Millisecond, 600*time.Millisecond
		start := time.Now()
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.Timeouts, uint64(cfg.Conns*cfg.Depth); got != want {
			t.Errorf("timeouts %d, want %d (every message in flight)", got, want)
		}
		if res.Errors != 0 || res.Mismatches != 0 || !strings.Contains(res.FirstError, "no answer") {
			t.Errorf("%d errors, %d mismatches, first error %q; want none, and a timeout", res.Errors, res.Mismatches, res.FirstError)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("run took %v", d)
		}
	})
	t.Run("server closes", func(t *testing.T) {
		cfg := tlsConfig(t, startFake(t, &fakeServer{answer: good, closeAt: 50, tls: pair.ServerConfig()}))
		cfg.Conns = 3
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != uint64(cfg.Conns) || res.Timeouts != 0 || res.Mismatches != 0 {
			t.Errorf("%d errors, %d timeouts, %d mismatches; want %d, 0, 0", res.Errors, res.Timeouts, res.Mismatches, cfg.Conns)
		}
		if !strings.Contains(res.FirstError, "closed") && !strings.Contains(res.FirstError, "reset") {
			t.Errorf("first error %q, want the server closing", res.FirstError)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		cfg := tlsConfig(t, startFake(t, &fakeServer{answer: good, tls: pair.ServerConfig()}))
		cfg.TLS = &tls.Config{ServerName: "127.0.0.1"}
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != uint64(cfg.Conns) || res.Sent != 0 || !strings.Contains(res.FirstError, "TLS handshake") {
			t.Errorf("%d errors, %d sent, first error %q; want %d, 0, a handshake failure", res.Errors, res.Sent, res.FirstError, cfg.Conns)
		}
	})
	t.Run("plaintext server", func(t *testing.T) {
		cfg := tlsConfig(t, startFake(t, &fakeServer{answer: good}))
		cfg.Conns, cfg.Timeout = 3, time.Second
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != uint64(cfg.Conns) || !strings.Contains(res.FirstError, "TLS handshake") {
			t.Errorf("%d errors, first error %q; want %d, a handshake failure", res.Errors, res.FirstError, cfg.Conns)
		}
	})
}

// TestTLSProxy sends the PROXY header in the clear before the handshake,
// announcing each connection's own address, from several sources on Linux.
func TestTLSProxy(t *testing.T) {
	pair := certPair(t)
	for _, v := range []Proxy{ProxyV1, ProxyV2} {
		t.Run(v.String(), func(t *testing.T) {
			fs := &fakeServer{answer: good, proxy: true, tls: pair.ServerConfig()}
			cfg := tlsConfig(t, startFake(t, fs))
			cfg.Duration, cfg.Proxy = 300*time.Millisecond, v
			if runtime.GOOS == "linux" {
				cfg.Sources = []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkClean(t, res)
			fs.mu.Lock()
			defer fs.mu.Unlock()
			if got, want := len(fs.headers), cfg.Conns; got != want {
				t.Errorf("%d headers, want %d", got, want)
			}
			for _, h := range fs.headers {
				if h.err != nil || h.source != h.remote {
					t.Errorf("header announcing %v from %v (%v), want the connection's own address", h.source, h.remote, h.err)
				}
			}
			for _, a := range cfg.Sources {
				if got, want := fs.remotes[a], cfg.Conns/len(cfg.Sources); got != want {
					t.Errorf("%d connections from %v, want %d", got, a, want)
				}
			}
		})
	}
}

// TestTLSRateProgressCancel: the rate holds inside TLS, the progress line
// is written, and a canceled context ends the window early.
func TestTLSRateProgressCancel(t *testing.T) {
	addr := startFake(t, &fakeServer{answer: good, tls: certPair(t).ServerConfig()})
	cfg := tlsConfig(t, addr)
	cfg.Rate, cfg.Duration = 3000, 1500*time.Millisecond
	var buf syncBuffer
	cfg.Progress = &buf
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	if res.MsgsPerSec > 1.05*cfg.Rate || res.MsgsPerSec < 0.5*cfg.Rate {
		t.Errorf("%.0f msgs/s, want %v (-50%%, +5%%)", res.MsgsPerSec, cfg.Rate)
	}
	if out := buf.String(); !strings.Contains(out, "msgs/s") || !strings.Contains(out, "p99") || !strings.HasSuffix(out, "\r") {
		t.Errorf("progress output %q: want a line with msgs/s and p99, cleared at the end", out)
	}

	// The handshakes take part of the second, much of it under the race
	// detector on a small machine.
	cfg = tlsConfig(t, addr)
	cfg.Conns, cfg.Duration = 4, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if res, err = Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	if d := res.Duration; d <= 0 || d >= time.Second {
		t.Errorf("window %v, want under 900ms, ended by the context", d)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a canceled context: %v, want context.Canceled", err)
	}
}

// TestRealServerTLS measures the real server inside TLS, with messages the
// server cuts into several answers too. The evio engine has no TLS, and
// New must say so.
func TestRealServerTLS(t *testing.T) {
	pair := certPair(t)
	scfg := server.Config{MaxMessage: 16, TLS: pair.ServerConfig()}
	if probe, err := server.New(server.Config{Addr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	} else if probe.Shutdown(context.Background()); probe.Engine() == "evio" {
		scfg.Addr = "127.0.0.1:0"
		if _, err := server.New(scfg); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("evio engine: New with TLS: %v, want errors.ErrUnsupported", err)
		}
		return
	}
	addr := startServer(t, scfg)
	for _, size := range []int{16, 17, 1000} {
		cfg := tlsConfig(t, addr)
		cfg.Size, cfg.MaxMessage = size, 16
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("size %d: %.0f msgs/s, p50 %v, p99 %v", size, res.MsgsPerSec, res.P50, res.P99)
		checkClean(t, res)
	}
}
