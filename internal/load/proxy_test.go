//go:build unix

package load

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

func TestAppendProxyHeader(t *testing.T) {
	for _, tc := range []struct {
		v        Proxy
		src, dst string
		want     string
	}{
		{ProxyV1, "127.0.0.2:40000", "127.0.0.1:3137", "PROXY TCP4 127.0.0.2 127.0.0.1 40000 3137\r\n"},
		{ProxyV1, "[::1]:1", "[::1]:65535", "PROXY TCP6 ::1 ::1 1 65535\r\n"},
		{ProxyV1, "[fe80::1%lo]:5", "[fe80::2%lo]:6", "PROXY TCP6 fe80::1 fe80::2 5 6\r\n"},
		{ProxyV1, "[::ffff:10.0.0.1]:7", "10.0.0.2:8", "PROXY TCP4 10.0.0.1 10.0.0.2 7 8\r\n"},
		{ProxyV1, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
			"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"},
		{ProxyV2, "127.0.0.2:40000", "127.0.0.1:3137",
			"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" +
				"\x7f\x00\x00\x02" + "\x7f\x00\x00\x01" + "\x9c\x40" + "\x0c\x41"},
		{ProxyV2, "[2001:db8::1]:258", "[::1]:3137",
			"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24" +
				"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" +
				"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" +
				"\x01\x02" + "\x0c\x41"},
		{ProxyNone, "127.0.0.2:1", "127.0.0.1:2", ""},
	} {
		src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
		got := string(AppendProxyHeader([]byte("x"), tc.v, src, dst))
		if got != "x"+tc.want {
			t.Errorf("%v header from %v to %v:\ngot  %q\nwant %q", tc.v, src, dst, got[1:], tc.want)
			continue
		}
		if len(tc.want) > MaxProxyHeader {
			t.Errorf("%v header of %d bytes, over MaxProxyHeader %d", tc.v, len(tc.want), MaxProxyHeader)
		}
		if tc.v == ProxyNone {
			continue
		}
		// The server's parser reads it whole, and the source it announces.
		var h server.ProxyHeader
		n, done, err := h.Feed([]byte(tc.want + "ping\n"))
		if err != nil || !done || n != len(tc.want) {
			t.Errorf("server.ProxyHeader.Feed(%q) = %d, %v, %v; want %d, true, nil", tc.want, n, done, err, len(tc.want))
			continue
		}
		want := netip.AddrPortFrom(src.Addr().Unmap().WithZone(""), src.Port())
		if got, ok := h.Source(); !ok || got != want {
			t.Errorf("source of %q: %v, %v; want %v", tc.want, got, ok, want)
		}
	}
}

func TestAppendProxyHeaderAllocs(t *testing.T) {
	src := netip.MustParseAddrPort("[2001:db8::1]:40000")
	dst := netip.MustParseAddrPort("[2001:db8::2]:3137")
	buf := make([]byte, 0, MaxProxyHeader)
	for _, v := range []Proxy{ProxyV1, ProxyV2} {
		if got := testing.AllocsPerRun(100, func() { buf = AppendProxyHeader(buf[:0], v, src, dst) }); got != 0 {
			t.Errorf("%v: %v allocations per header, want 0", v, got)
		}
	}
}

func TestParseProxy(t *testing.T) {
	for _, v := range []Proxy{ProxyNone, ProxyV1, ProxyV2} {
		if got, err := ParseProxy(v.String()); err != nil || got != v {
			t.Errorf("ParseProxy(%q) = %v, %v; want %v", v.String(), got, err, v)
		}
	}
	if got, err := ParseProxy(""); err != nil || got != ProxyNone {
		t.Errorf(`ParseProxy("") = %v, %v; want none`, got, err)
	}
	for _, s := range []string{"v3", "1", "V2", "proxy"} {
		if _, err := ParseProxy(s); err == nil {
			t.Errorf("ParseProxy(%q) succeeded, want an error", s)
		}
	}
	if _, err := Run(context.Background(), Config{Addr: "127.0.0.1:1", Proxy: 3}); err == nil {
		t.Error("Run with Proxy 3 succeeded, want an error")
	}
}

// TestProxyFake runs both versions against a fake that parses each
// connection's header with the server's parser: every connection sends
// one, announcing its own address, then its messages.
func TestProxyFake(t *testing.T) {
	for _, v := range []Proxy{ProxyV1, ProxyV2} {
		t.Run(v.String(), func(t *testing.T) {
			fs := &fakeServer{answer: good, proxy: true}
			cfg := quickConfig(startFake(t, fs))
			cfg.Duration, cfg.Proxy = 300*time.Millisecond, v
			if runtime.GOOS == "linux" {
				cfg.Sources = []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkClean(t, res)
			if res.Proxy != v {
				t.Errorf("Result.Proxy = %v, want %v", res.Proxy, v)
			}
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
		})
	}
}

// TestRealServerProxy measures a server that requires the PROXY header
// with a client that sends it, and shows that one that does not send it
// gets nothing but closed connections. MaxConnsPerIP 1 with one source
// address per connection: the server counts the header's address, which
// is each connection's own.
func TestRealServerProxy(t *testing.T) {
	cfg := server.Config{ProxyProtocol: true}
	if runtime.GOOS == "linux" {
		cfg.MaxConnsPerIP = 1
	}
	if probe, err := server.New(server.Config{Addr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	} else if probe.Shutdown(context.Background()); probe.Engine() == "evio" {
		// The reference engine has no PROXY protocol: New must say so.
		cfg.Addr = "127.0.0.1:0"
		if _, err := server.New(cfg); err == nil {
			t.Fatal("evio engine: New with ProxyProtocol succeeded; want an error")
		}
		return
	}
	addr := startServer(t, cfg)
	// Each run its own 20 addresses, one per connection: the server may
	// not have seen the last run's connections close yet.
	for i, v := range []Proxy{ProxyV1, ProxyV2} {
		lc := quickConfig(addr)
		lc.Duration, lc.Proxy = 500*time.Millisecond, v
		if runtime.GOOS == "linux" {
			first := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + 20*i)})
			for a := first; len(lc.Sources) < lc.Conns; a = a.Next() {
				lc.Sources = append(lc.Sources, a)
			}
		}
		res, err := Run(context.Background(), lc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v: %.0f msgs/s", v, res.MsgsPerSec)
		checkClean(t, res)
	}

	lc := quickConfig(addr)
	lc.Conns, lc.Duration = 3, 200*time.Millisecond
	res, err := Run(context.Background(), lc)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != uint64(lc.Conns) || res.Answered != 0 {
		t.Errorf("without a header: %d errors, %d answered; want %d errors, none answered", res.Errors, res.Answered, lc.Conns)
	}
}
