package server_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// proxyV1 is a v1 header announcing src.
func proxyV1(src netip.AddrPort) string {
	fam := "TCP4"
	if src.Addr().Is6() {
		fam = "TCP6"
	}
	dst := "127.0.0.1"
	if src.Addr().Is6() {
		dst = "::1"
	}
	return "PROXY " + fam + " " + src.Addr().String() + " " + dst + " " +
		strconv.Itoa(int(src.Port())) + " 3137\r\n"
}

// proxyV2 is a v2 PROXY header announcing the IPv4 source src, or a LOCAL
// header if src is the zero AddrPort.
func proxyV2(src netip.AddrPort) string {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	if !src.IsValid() {
		return string(append(b, 0x20, 0x00, 0, 0))
	}
	b = append(b, 0x21, 0x11, 0, 12)
	a := src.Addr().As4()
	b = append(b, a[:]...)
	b = append(b, 127, 0, 0, 1)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, 3137)
	return string(b)
}

// addrProto answers like the built-in protocol and records the address
// the engine gave it.
type addrProto struct {
	server.Protocol
	mu   *sync.Mutex
	seen *[]netip.AddrPort
}

func (p addrProto) SetRemoteAddr(a netip.AddrPort) {
	p.mu.Lock()
	*p.seen = append(*p.seen, a)
	p.mu.Unlock()
}

// proxyServer starts a server with ProxyProtocol on, or reports false on
// the evio engine, which must refuse it.
func proxyServer(t *testing.T, cfg server.Config) (*server.Server, bool) {
	t.Helper()
	cfg.ProxyProtocol = true
	return limitServer(t, cfg)
}

// limitServer starts a server with ProxyProtocol or MaxConnsPerIP set, or
// reports false on the evio engine after checking that New refuses them.
func limitServer(t *testing.T, cfg server.Config) (*server.Server, bool) {
	t.Helper()
	probe, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	engine := probe.Engine()
	probe.Shutdown(t.Context())
	if engine == "evio" {
		cfg.Addr = "127.0.0.1:0"
		if _, err := server.New(cfg); err == nil {
			t.Fatal("evio engine: New succeeded; want an error for ProxyProtocol and MaxConnsPerIP")
		}
		return nil, false
	}
	return startServer(t, cfg), true
}

func TestProxyProtocol(t *testing.T) {
	var mu sync.Mutex
	var seen []netip.AddrPort
	s, ok := proxyServer(t, server.Config{NewProtocol: func() server.Protocol {
		return addrProto{server.NewFramer(server.DefaultMaxMessage, server.FramingLine), &mu, &seen}
	}})
	if !ok {
		return
	}
	srcs := []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.7:40001"),
		netip.MustParseAddrPort("[2001:db8::9]:40002"),
		netip.MustParseAddrPort("198.51.100.3:40003"),
	}
	t.Run("v1 and a message in one write", func(t *testing.T) {
		c := dial(t, s.Addr())
		c.send(proxyV1(srcs[0]) + "hello\n")
		c.expect(server.Answer)
		c.closeWrite()
		c.expectEnd("")
	})
	t.Run("v1 IPv6, then messages", func(t *testing.T) {
		c := dial(t, s.Addr())
		c.send(proxyV1(srcs[1]))
		c.send("a\nb\n")
		c.expect(server.Answer + server.Answer)
		c.send("close\n")
		c.expectEnd(server.Closing)
	})
	t.Run("v2 a byte at a time", func(t *testing.T) {
		c := dial(t, s.Addr())
		for _, b := range []byte(proxyV2(srcs[2]) + "x\n") {
			c.send(string([]byte{b}))
			time.Sleep(time.Millisecond)
		}
		c.expect(server.Answer)
		c.closeWrite()
		c.expectEnd("")
	})
	t.Run("v2 LOCAL is served as itself", func(t *testing.T) {
		c := dial(t, s.Addr())
		c.send(proxyV2(netip.AddrPort{}) + "ping\n")
		c.expect(server.Answer)
		c.closeWrite()
		c.expectEnd("")
	})
	mu.Lock()
	got := append([]netip.AddrPort(nil), seen...)
	mu.Unlock()
	for _, want := range srcs {
		found := false
		for _, a := range got {
			found = found || a == want
		}
		if !found {
			t.Errorf("Protocol saw addresses %v; want %v among them", got, want)
		}
	}
	before := s.Stats().ProxyErrors.Load()
	for _, bad := range []string{"hello\n", "PROXY TCP4 1.2.3.4\r\n", "PROXY TCP4 300.1.1.1 1.1.1.1 1 2\r\nhi\n", "\r\n\r\n\x00\r\nQUIT\n\x31"} {
		c := dial(t, s.Addr())
		c.send(bad)
		if got, err := c.readEnd(); got != "" {
			t.Errorf("after %q: read %q, %v; want the connection closed with no answer", bad, got, err)
		}
	}
	waitFor(t, "ProxyErrors to count 4 bad headers", func() bool { return s.Stats().ProxyErrors.Load()-before == 4 })
}

// TestProxyHeaderTimeout: a header that does not complete in time is the
// slowloris of headers; the connection is closed.
func TestProxyHeaderTimeout(t *testing.T) {
	t.Parallel()
	s, ok := proxyServer(t, server.Config{})
	if !ok {
		return
	}
	c := dial(t, s.Addr())
	c.send("PROXY TCP4 ")
	start := time.Now()
	got, err := readEnd(c.c, server.ProxyHeaderTimeout+2*time.Second)
	if got != "" || errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > server.ProxyHeaderTimeout+time.Second {
		t.Fatalf("read %q, %v after %v; want the connection closed after about %v", got, err, time.Since(start), server.ProxyHeaderTimeout)
	}
	if n := s.Stats().ProxyErrors.Load(); n != 1 {
		t.Errorf("ProxyErrors = %d; want 1", n)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	t.Run("from the PROXY header", func(t *testing.T) {
		s, ok := proxyServer(t, server.Config{MaxConnsPerIP: 1})
		if !ok {
			return
		}
		a := netip.MustParseAddrPort("192.0.2.1:1000")
		first := dial(t, s.Addr())
		first.send(proxyV2(a) + "one\n")
		first.expect(server.Answer)
		second := dial(t, s.Addr())
		second.send(proxyV2(netip.AddrPortFrom(a.Addr(), 1001)) + "two\n")
		if got, _ := second.readEnd(); got != "" {
			t.Errorf("second connection from %v: read %q; want it closed unanswered", a.Addr(), got)
		}
		other := dial(t, s.Addr())
		other.send(proxyV1(netip.MustParseAddrPort("192.0.2.2:1000")) + "three\n")
		other.expect(server.Answer)
		// LOCAL is the balancer's own: no client's cap applies.
		for range 2 {
			local := dial(t, s.Addr())
			local.send(proxyV2(netip.AddrPort{}) + "check\n")
			local.expect(server.Answer)
		}
		if n := s.Stats().RejectedPerIP.Load(); n != 1 {
			t.Errorf("RejectedPerIP = %d; want 1", n)
		}
		first.closeWrite()
		first.expectEnd("")
		// The address's slot is free again once its connection closed.
		waitFor(t, "a new connection from the address to be served", func() bool {
			c := dial(t, s.Addr())
			c.send(proxyV2(a) + "again\n")
			got, _ := readEnd(c.c, time.Second)
			return got == server.Answer
		})
	})
	t.Run("from the peer", func(t *testing.T) {
		s, ok := limitServer(t, server.Config{MaxConnsPerIP: 2})
		if !ok {
			return
		}
		from := func(ip string) *client {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: ioTimeout}
			nc, err := d.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			return &client{t: t, c: nc.(*net.TCPConn)}
		}
		for range 2 {
			c := from("127.0.0.1")
			c.send("ok\n")
			c.expect(server.Answer)
		}
		third := from("127.0.0.1")
		third.send("no\n")
		if got, _ := third.readEnd(); got != "" {
			t.Errorf("third connection from 127.0.0.1: read %q; want it closed unanswered", got)
		}
		c := from("127.0.0.2")
		c.send("ok\n")
		c.expect(server.Answer)
		if n := s.Stats().RejectedPerIP.Load(); n != 1 {
			t.Errorf("RejectedPerIP = %d; want 1", n)
		}
	})
	// A closed connection gives back exactly its own place: released
	// twice, it would let the address past its cap. And an address whose
	// last connection closed is forgotten: kept, every client that ever
	// came would stay in memory.
	t.Run("release", func(t *testing.T) {
		s, ok := limitServer(t, server.Config{MaxConnsPerIP: 2, ProxyProtocol: true})
		if !ok {
			return
		}
		a := netip.MustParseAddrPort("192.0.2.1:1000")
		open := func(port uint16) *client {
			c := dial(t, s.Addr())
			c.send(proxyV2(netip.AddrPortFrom(a.Addr(), port)) + "hi\n")
			return c
		}
		first, second := open(1), open(2)
		first.expect(server.Answer)
		second.expect(server.Answer)
		first.send("close\n")
		first.expectEnd(server.Closing)
		waitFor(t, "the first connection closed", func() bool { return s.Stats().Open.Load() == 1 })
		third := open(3)
		third.expect(server.Answer)
		fourth := open(4)
		if got, _ := fourth.readEnd(); got != "" {
			t.Fatalf("a third open connection from %v: read %q; want it closed unanswered", a.Addr(), got)
		}
		if n := s.Stats().RejectedPerIP.Load(); n != 1 {
			t.Errorf("RejectedPerIP = %d; want 1", n)
		}
		for i := range 50 {
			c := dial(t, s.Addr())
			c.send(proxyV1(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 1000)) + "close\n")
			c.expectEnd(server.Closing)
		}
		for _, c := range []*client{second, third} {
			c.send("close\n")
			c.expectEnd(server.Closing)
		}
		waitFor(t, "every connection closed", func() bool { return s.Stats().Open.Load() == 0 })
		if n := server.IPEntries(s); n != 0 {
			t.Fatalf("%d client addresses still tracked with no connection open; want 0", n)
		}
	})
}
