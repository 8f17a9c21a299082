//go:build unix

package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// startServer starts the real server on a free port and returns its address.
func startServer(t *testing.T, cfg server.Config) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
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
		if err := <-done; err != nil && !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s.Addr().String()
}

// fakeServer is a tiny server of the protocol with a fault of choice, for
// the cases the real server must never produce.
type fakeServer struct {
	// answer returns the bytes to send for the n-th message (0-based) of
	// a connection; nil means no answer.
	answer func(n int) []byte
	// split writes each answer in small pieces, to cut answers across
	// reads at every byte.
	split bool
	// closeAt, if not 0, closes the connection when message closeAt comes.
	closeAt int
	// proxy makes the fake read a PROXY protocol header first, with the
	// server's parser, and close connections without a valid one.
	proxy bool
	// tls, when set, serves inside TLS (after the PROXY header).
	tls *tls.Config

	ln      net.Listener
	mu      sync.Mutex
	remotes map[netip.Addr]int
	headers []proxyHeader // with proxy: one per connection
	wg      sync.WaitGroup
}

// proxyHeader is what the fake learnt of a connection from its PROXY
// header and its socket.
type proxyHeader struct {
	source, remote netip.AddrPort // announced, and the socket's peer
	err            error
}

func startFake(t *testing.T, f *fakeServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.remotes = make(map[netip.Addr]int)
	var conns sync.Map
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			f.mu.Lock()
			f.remotes[c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()]++
			f.mu.Unlock()
			f.wg.Go(func() {
				defer c.Close()
				f.serve(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		f.wg.Wait()
	})
	return ln.Addr().String()
}

func (f *fakeServer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	if f.proxy && !f.readProxy(c, r) {
		return
	}
	if f.tls != nil {
		tc := tls.Server(bufferedConn{c, r}, f.tls)
		defer tc.Close() // close_notify, when the fake ends first
		c, r = tc, bufio.NewReader(tc)
	}
	w := bufio.NewWriter(c)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	for n := 0; ; n++ {
		if _, err := r.ReadSlice('\n'); err != nil {
			return
		}
		if f.closeAt > 0 && n == f.closeAt {
			w.Flush()
			return
		}
		a := f.answer(n)
		for f.split && len(a) > 0 {
			k := 1 + rng.IntN(min(len(a), 7))
			if _, err := c.Write(a[:k]); err != nil {
				return
			}
			a = a[k:]
		}
		w.Write(a)
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

// bufferedConn is a connection whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// readProxy reads c's PROXY header from r one byte at a time, so that not
// one byte after it is consumed, records it, and reports whether it was
// valid.
func (f *fakeServer) readProxy(c net.Conn, r *bufio.Reader) bool {
	h := proxyHeader{remote: c.RemoteAddr().(*net.TCPAddr).AddrPort()}
	var ph server.ProxyHeader
	for {
		b, err := r.ReadByte()
		if err != nil {
			h.err = err
			break
		}
		_, done, err := ph.Feed([]byte{b})
		if err != nil {
			h.err = err
			break
		}
		if done {
			var ok bool
			if h.source, ok = ph.Source(); !ok {
				h.err = errors.New("no source address in the header")
			}
			break
		}
	}
	f.mu.Lock()
	f.headers = append(f.headers, h)
	f.mu.Unlock()
	return h.err == nil
}

func good(int) []byte { return []byte(Answer) }

func quickConfig(addr string) Config {
	return Config{
		Addr:     addr,
		Conns:    20,
		Depth:    4,
		Duration: time.Second,
		Warmup:   100 * time.Millisecond,
		Loops:    2,
		Timeout:  2 * time.Second,
	}
}

func checkClean(t *testing.T, res Result) {
	t.Helper()
	if !res.OK() {
		t.Errorf("%d mismatches, %d errors, %d timeouts (first error %q), want none",
			res.Mismatches, res.Errors, res.Timeouts, res.FirstError)
	}
	if res.Sent == 0 || res.Answered != res.Sent {
		t.Errorf("sent %d, answered %d: want equal and not 0", res.Sent, res.Answered)
	}
	if res.MsgsPerSec <= 0 || res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.P999 || res.P999 > res.Max {
		t.Errorf("implausible figures: %.0f msgs/s, p50 %v, p99 %v, p99.9 %v, max %v",
			res.MsgsPerSec, res.P50, res.P99, res.P999, res.Max)
	}
}

func TestAnswerMatchesServer(t *testing.T) {
	if Answer != server.Answer {
		t.Fatalf("load.Answer = %q, server.Answer = %q", Answer, server.Answer)
	}
}

func TestRealServer(t *testing.T) {
	addr := startServer(t, server.Config{})
	res, err := Run(context.Background(), quickConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	if d := res.Duration; d < 900*time.Millisecond || d > 1100*time.Millisecond {
		t.Errorf("window %v, want about 1s", d)
	}
	if res.ClientCPU <= 0 {
		t.Errorf("client CPU %v, want > 0", res.ClientCPU)
	}
	t.Logf("%.0f msgs/s, p50 %v, p99 %v, p99.9 %v, max %v", res.MsgsPerSec, res.P50, res.P99, res.P999, res.Max)
}

func TestRealServerSizes(t *testing.T) {
	// Empty messages, a message of exactly MaxMessage bytes, and long ones
	// that the server cuts into several answered pieces.
	addr := startServer(t, server.Config{MaxMessage: 16})
	for _, size := range []int{1, 2, 17, 18, 33, 1000, 70000} {
		cfg := quickConfig(addr)
		cfg.Size, cfg.MaxMessage, cfg.Duration, cfg.Conns = size, 16, 500*time.Millisecond, 5
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("size %d: %d answered", size, res.Answered)
		checkClean(t, res)
	}
}

func TestSplitAnswers(t *testing.T) {
	addr := startFake(t, &fakeServer{answer: good, split: true})
	cfg := quickConfig(addr)
	cfg.Duration = 500 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
}

func TestMismatches(t *testing.T) {
	// Every 10th answer has a wrong byte; one connection's 5th answer is
	// short and the next is long, which must not derail the rest.
	corrupt := func(n int) []byte {
		a := []byte(Answer)
		if n%10 == 9 {
			a[n%(len(a)-1)] ^= 0x20
		}
		return a
	}
	addr := startFake(t, &fakeServer{answer: corrupt})
	cfg := quickConfig(addr)
	cfg.Duration = 500 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Timeouts != 0 {
		t.Errorf("%d errors, %d timeouts, want none", res.Errors, res.Timeouts)
	}
	if res.Answered != res.Sent {
		t.Errorf("answered %d, sent %d: want equal", res.Answered, res.Sent)
	}
	// About a tenth of all answers, warm-up and drain included.
	if lo, hi := res.Sent/15, res.Sent/5; res.Mismatches < lo || res.Mismatches > hi {
		t.Errorf("%d mismatches for %d answers, want about a tenth", res.Mismatches, res.Sent)
	}
	if res.OK() || res.Err() == nil {
		t.Error("OK with mismatches")
	}
}

func TestWrongLengths(t *testing.T) {
	// A short answer, a long one, "closing" without LF then the right
	// answers: each wrong one costs one mismatch and the check resyncs.
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
	addr := startFake(t, &fakeServer{answer: wrong})
	cfg := quickConfig(addr)
	cfg.Conns, cfg.Depth, cfg.Loops, cfg.Duration = 1, 1, 1, 200*time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Mismatches, uint64(3); got != want {
		t.Errorf("mismatches %d, want %d", got, want)
	}
	if res.Errors != 0 || res.Timeouts != 0 {
		t.Errorf("%d errors, %d timeouts, want none", res.Errors, res.Timeouts)
	}
}

func TestTimeouts(t *testing.T) {
	// The server stops answering after 100 messages per connection.
	mute := func(n int) []byte {
		if n >= 100 {
			return nil
		}
		return []byte(Answer)
	}
	addr := startFake(t, &fakeServer{answer: mute})
	cfg := quickConfig(addr)
	cfg.Conns, cfg.Timeout, cfg.Duration = 4, 300*time.Millisecond, 600*time.Millisecond
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Timeouts, uint64(cfg.Conns*cfg.Depth); got != want {
		t.Errorf("timeouts %d, want %d (every message in flight)", got, want)
	}
	if res.Errors != 0 || res.Mismatches != 0 {
		t.Errorf("%d errors, %d mismatches, want none", res.Errors, res.Mismatches)
	}
	if !strings.Contains(res.FirstError, "no answer") {
		t.Errorf("first error %q, want a timeout", res.FirstError)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("run took %v", d)
	}
}

func TestServerCloses(t *testing.T) {
	// The server closes each connection after 50 answers: one error per
	// connection, and its messages in flight are lost, not timed out.
	addr := startFake(t, &fakeServer{answer: good, closeAt: 50})
	cfg := quickConfig(addr)
	cfg.Conns, cfg.Duration = 3, 500*time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Errors, uint64(cfg.Conns); got != want {
		t.Errorf("errors %d, want %d", got, want)
	}
	if res.Timeouts != 0 || res.Mismatches != 0 {
		t.Errorf("%d timeouts, %d mismatches, want none", res.Timeouts, res.Mismatches)
	}
	// Closing with our next messages unread, the server may reset.
	if !strings.Contains(res.FirstError, "closed") && !strings.Contains(res.FirstError, "reset") {
		t.Errorf("first error %q, want the server closing", res.FirstError)
	}
}

func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := quickConfig(addr)
	cfg.Duration = 100 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Errors, uint64(cfg.Conns); got != want {
		t.Errorf("errors %d, want %d", got, want)
	}
	if !strings.Contains(res.FirstError, "refused") {
		t.Errorf("first error %q, want connection refused", res.FirstError)
	}
}

func TestRate(t *testing.T) {
	addr := startServer(t, server.Config{})
	cfg := quickConfig(addr)
	cfg.Rate = 3000
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	// Never above the rate; below it only if the machine is too busy to
	// keep up, which a shared test machine can be.
	if res.MsgsPerSec > 1.05*cfg.Rate || res.MsgsPerSec < 0.5*cfg.Rate {
		t.Errorf("%.0f msgs/s, want %v (-50%%, +5%%)", res.MsgsPerSec, cfg.Rate)
	}
}

func TestSources(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux routes all of 127/8 to loopback")
	}
	fs := &fakeServer{answer: good}
	addr := startFake(t, fs)
	cfg := quickConfig(addr)
	cfg.Duration = 500 * time.Millisecond
	cfg.Sources = []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("127.0.0.5")}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, a := range cfg.Sources {
		if got, want := fs.remotes[a], cfg.Conns/len(cfg.Sources); got != want {
			t.Errorf("%d connections from %v, want %d", got, a, want)
		}
	}
}

func TestCancel(t *testing.T) {
	addr := startServer(t, server.Config{})
	cfg := quickConfig(addr)
	cfg.Duration = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	if d := res.Duration; d < 300*time.Millisecond || d > time.Second {
		t.Errorf("window %v, want about 400ms", d)
	}

	// Canceled before the window opens: ctx's error.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a canceled context: %v, want context.Canceled", err)
	}
}

func TestProgress(t *testing.T) {
	addr := startServer(t, server.Config{})
	cfg := quickConfig(addr)
	cfg.Duration = 1500 * time.Millisecond
	var buf syncBuffer
	cfg.Progress = &buf
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, res)
	out := buf.String()
	if !strings.Contains(out, "msgs/s") || !strings.Contains(out, "p99") || !strings.HasSuffix(out, "\r") {
		t.Errorf("progress output %q: want a line with msgs/s and p99, cleared at the end", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestResultJSON(t *testing.T) {
	r := Result{
		Conns: 10, Depth: 2, Size: 16, Loops: 1, Duration: 2 * time.Second,
		Sent: 1000, Answered: 1000, MsgsPerSec: 500,
		P50: 12345 * time.Nanosecond, P99: 100 * time.Microsecond, P999: time.Millisecond, Max: 3 * time.Millisecond,
		ClientCPU: 500 * time.Millisecond, ServerCPU: time.Second, HasServerCPU: true,
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"msgs_per_sec": 500, "p50_us": 12.3, "p99_us": 100, "p999_us": 1000, "max_us": 3000,
		"sent": 1000, "answered": 1000, "mismatches": 0, "errors": 0, "timeouts": 0,
		"client_cpu_s": 0.5, "client_cpu_us_per_msg": 500, "server_cpu_s": 1, "server_cpu_us_per_msg": 1000,
		"conns": 10, "depth": 2, "size": 16, "duration_s": 2,
	}
	for k, v := range want {
		if got, ok := m[k].(float64); !ok || got != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	r.HasServerCPU = false
	b, _ = json.Marshal(r)
	if bytes.Contains(b, []byte("server_cpu")) {
		t.Errorf("JSON without a server PID names server CPU: %s", b)
	}
	if bytes.Contains(b, []byte(`"tls"`)) {
		t.Errorf("JSON of a plaintext run names TLS: %s", b)
	}
}

func TestParseSources(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // addresses joined by spaces, or "error"
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1-127.0.0.3", "127.0.0.1 127.0.0.2 127.0.0.3"},
		{"127.0.0.254-127.0.1.1", "127.0.0.254 127.0.0.255 127.0.1.0 127.0.1.1"},
		{"10.0.0.1, 10.0.0.5-10.0.0.6", "10.0.0.1 10.0.0.5 10.0.0.6"},
		{"::1,fe80::1-fe80::2", "::1 fe80::1 fe80::2"},
		{"127.0.0.3-127.0.0.1", "error"},
		{"127.0.0.1-::1", "error"},
		{"localhost", "error"},
		{"", "error"},
		{"0.0.0.0-0.255.255.255", "error"},
	} {
		addrs, err := ParseSources(tc.in)
		var got string
		if err != nil {
			got = "error"
		} else {
			var s []string
			for _, a := range addrs {
				s = append(s, a.String())
			}
			got = strings.Join(s, " ")
		}
		if got != tc.want {
			t.Errorf("ParseSources(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := "1234 (my (odd) server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 1000000 200\n"
	got, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Errorf("parseStat = %v, want %v", got, want)
	}
	if _, err := parseStat([]byte("1234 (x) S 1 2")); err == nil {
		t.Error("parseStat accepted a short line")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Addr: "127.0.0.1:1", Conns: -1},
		{Addr: "127.0.0.1:1", Size: -1},
		{Addr: "127.0.0.1:1", Rate: -1},
		{Addr: "127.0.0.1:1", Depth: 1 << 20, Size: 1 << 10},
		{Addr: "127.0.0.1", Conns: 1},
		{Addr: "127.0.0.1:1", Sources: []netip.Addr{netip.MustParseAddr("::1")}},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestMessages(t *testing.T) {
	for _, size := range []int{1, 2, 6, 30} {
		m := messages(size, 3)
		if len(m) != 3*size {
			t.Fatalf("len = %d, want %d", len(m), 3*size)
		}
		for i := range 3 {
			msg := m[i*size : (i+1)*size]
			if bytes.IndexByte(msg, '\n') != size-1 || bytes.IndexByte(msg, '\r') >= 0 || bytes.Contains(msg, []byte("close")) {
				t.Errorf("size %d: bad message %q", size, msg)
			}
		}
	}
	for _, tc := range []struct{ size, max, want int }{
		{1, 16, 1}, {17, 16, 1}, {18, 16, 2}, {33, 16, 2}, {34, 16, 3},
	} {
		if got := answersPerMessage(tc.size, tc.max); got != tc.want {
			t.Errorf("answersPerMessage(%d, %d) = %d, want %d", tc.size, tc.max, got, tc.want)
		}
	}
}
