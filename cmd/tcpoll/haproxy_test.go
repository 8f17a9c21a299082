//go:build linux

// TestHAProxy runs tcpoll as operators run it on more than one machine:
// several `tcpoll serve -proxy-protocol` instances behind HAProxy, with
// deploy/haproxy.cfg as it is, and checks through the balancer that the
// protocol holds, that every instance serves and sees the real client
// addresses, that -max-conns-per-ip counts those addresses, and that load
// goes through with every answer right.
//
// It needs the haproxy binary (Debian's haproxy package) and skips without
// it, unless TCPOLL_REQUIRE_HAPROXY=1 (CI), which makes its absence a
// failure.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/check"
)

// haproxyConfig is the configuration under test, the one operators copy.
const haproxyConfig = "../../deploy/haproxy.cfg"

// haproxyPath finds the haproxy binary, or skips the test (fails it with
// TCPOLL_REQUIRE_HAPROXY=1).
func haproxyPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("haproxy")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr == nil {
			return "/usr/sbin/haproxy"
		}
		if os.Getenv("TCPOLL_REQUIRE_HAPROXY") == "1" {
			t.Fatalf("TCPOLL_REQUIRE_HAPROXY=1 and no haproxy binary: %v", err)
		}
		t.Skipf("no haproxy binary (apt-get install haproxy; TCPOLL_REQUIRE_HAPROXY=1 makes this a failure): %v", err)
	}
	return path
}

// balancer is a running HAProxy.
type balancer struct {
	pid    int
	addr   string        // where clients connect
	out    *lockedBuffer // its stdout and stderr
	exited chan struct{}
	werr   error
}

// lockedBuffer is a bytes.Buffer for a child's output, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startHAProxy runs HAProxy in the foreground with deploy/haproxy.cfg,
// balancing over the two servers and sending them the PROXY header of
// version ("v1" or "v2"). Its listening socket is opened here, on a free
// loopback port, and handed to it as descriptor 3 (bind "fd@3"), so no
// port is guessed. HAProxy is stopped, by its pid, when the test ends.
func startHAProxy(t *testing.T, version string, s1, s2 *proc) *balancer {
	t.Helper()
	bin := haproxyPath(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	ln.Close() // lf is a duplicate: the socket stays open
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{addr: ln.Addr().String(), out: &lockedBuffer{}, exited: make(chan struct{})}
	cmd := exec.Command(bin, "-db", "-f", haproxyConfig)
	cmd.Env = append(os.Environ(),
		"TCPOLL_LISTEN=fd@3",
		"TCPOLL_SERVER1="+s1.addr,
		"TCPOLL_SERVER2="+s2.addr,
		"TCPOLL_SEND_PROXY="+version,
		// Two descriptors a connection: fits any descriptor limit.
		"TCPOLL_MAXCONN=1000",
	)
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	// The listening socket now lives in HAProxy alone: should HAProxy
	// exit, clients are refused rather than left in a queue nobody reads.
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	b.pid = cmd.Process.Pid
	go func() {
		b.werr = cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-b.exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-b.exited
			}
		}
		if t.Failed() {
			t.Logf("haproxy (pid %d, %v) said:\n%s", b.pid, b.werr, b.out)
		}
	})

	// Ready once a message goes through to each server in turn. The
	// probes come from an address of their own: the health checks count
	// as HAProxy's address, 127.0.0.1, against -max-conns-per-ip, and
	// the tests' clients come from 127.0.0.2 and up.
	deadline := time.Now().Add(10 * time.Second)
	probe := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 254)}}
	for ok := 0; ok < 2; {
		select {
		case <-b.exited:
			t.Fatalf("haproxy exited at start (%v):\n%s", b.werr, b.out)
		default:
		}
		c, err := probe.Dial("tcp", b.addr)
		if err == nil {
			_, err = roundTrip(c, "ready?")
			c.Close()
		}
		if err == nil {
			ok++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer through haproxy within 10s: %v\n%s", err, b.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b
}

// startPair starts two `tcpoll serve -proxy-protocol -v` instances with
// more flags, and HAProxy in front of them.
func startPair(t *testing.T, version string, flags ...string) (*balancer, [2]*proc) {
	t.Helper()
	flags = append([]string{"-proxy-protocol", "-v"}, flags...)
	s := [2]*proc{startServer(t, 0, flags...), startServer(t, 0, flags...)}
	return startHAProxy(t, version, s[0], s[1]), s
}

func TestHAProxy(t *testing.T) {
	haproxyPath(t)
	if strings.Contains(os.Getenv("TCPOLL_TAGS"), "evio") {
		t.Skip("the evio engine has no PROXY protocol and no -max-conns-per-ip")
	}
	for _, version := range []string{"v2", "v1"} {
		t.Run(version, func(t *testing.T) {
			t.Run("check", func(t *testing.T) { testHAProxyCheck(t, version) })
			t.Run("sources", func(t *testing.T) { testHAProxySources(t, version) })
			t.Run("max-conns-per-ip", func(t *testing.T) { testHAProxyPerIP(t, version) })
			t.Run("load", func(t *testing.T) { testHAProxyLoad(t, version) })
		})
	}
}

// testHAProxyCheck plays every case of `tcpoll check` through HAProxy: the
// header never reaches the protocol, and HAProxy passes on half-closes,
// cuts and "close" as the protocol needs.
func testHAProxyCheck(t *testing.T, version string) {
	lb, s := startPair(t, version, "-max-conns-per-ip", "8")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := check.Run(ctx, &out, check.Config{Addr: lb.addr}); err != nil {
		t.Errorf("tcpoll check through haproxy: %v\n%s", err, out.String())
	} else {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		t.Log(lines[len(lines)-1])
	}
	for i, p := range s {
		v := p.vars(t)
		if v.Tcpoll["accepted"] == 0 {
			t.Errorf("server %d accepted no connection", i+1)
		}
		if n := v.Tcpoll["proxy_errors"] + v.Tcpoll["rejected_per_ip"]; n != 0 {
			t.Errorf("server %d: counters %v, want no proxy_errors, no rejected_per_ip", i+1, v.Tcpoll)
		}
	}
}

// openedRE finds the client address of a "connection opened" record.
var openedRE = regexp.MustCompile(`msg="connection opened".* remote=(\S+)`)

// testHAProxySources connects through HAProxy from 127.0.0.2 to 127.0.0.9
// and finds each client's own address and port in the "connection opened"
// record of exactly one server, and both servers among them.
func testHAProxySources(t *testing.T, version string) {
	lb, s := startPair(t, version, "-max-conns-per-ip", "8")
	const n = 8
	want := make(map[netip.AddrPort]bool)
	for i := range n {
		d := net.Dialer{Timeout: ioTimeout, LocalAddr: srcAddr(i)}
		c, err := d.Dial("tcp", lb.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := roundTrip(c, fmt.Sprintf("from %v", c.LocalAddr())); err != nil {
			t.Fatalf("through haproxy from %v: %v", c.LocalAddr(), err)
		}
		want[c.LocalAddr().(*net.TCPAddr).AddrPort()] = true
	}

	// The records are written by now, but maybe not yet read from the
	// servers' stderr.
	var seen [2]map[netip.AddrPort]bool
	for deadline := time.Now().Add(5 * time.Second); ; {
		found := 0
		for i, p := range s {
			seen[i] = make(map[netip.AddrPort]bool)
			for _, line := range p.log.matching(`msg="connection opened"`) {
				m := openedRE.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				a, err := netip.ParseAddrPort(m[1])
				if err != nil {
					t.Fatalf("server %d: remote=%q in %q: %v", i+1, m[1], line, err)
				}
				if want[a] {
					seen[i][a] = true
					found++
				}
			}
		}
		if found >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for a := range want {
		switch {
		case seen[0][a] && seen[1][a]:
			t.Errorf("client %v seen by both servers", a)
		case !seen[0][a] && !seen[1][a]:
			t.Errorf("client %v seen by no server as remote=%v", a, a)
		}
	}
	for i := range s {
		t.Logf("server %d saw clients %v", i+1, keys(seen[i]))
		if len(seen[i]) == 0 {
			t.Errorf("server %d served none of the %d clients: round-robin should share them", i+1, n)
		}
	}
	if t.Failed() {
		for i, p := range s {
			t.Logf("server %d, connection records:\n%s", i+1, strings.Join(p.log.matching("connection"), "\n"))
		}
	}
}

func keys(m map[netip.AddrPort]bool) []netip.AddrPort {
	var out []netip.AddrPort
	for a := range m {
		out = append(out, a)
	}
	return out
}

// testHAProxyPerIP runs both servers with -max-conns-per-ip 1 behind
// round-robin: a client address holds one connection on each server, so
// its first two connections are served and its third, sent to the first
// server again, is closed without an answer; another address is still
// served. The limit counts the address from the PROXY header: HAProxy's own
// address holds all of these connections.
func testHAProxyPerIP(t *testing.T, version string) {
	lb, s := startPair(t, version, "-max-conns-per-ip", "1")
	from := func(i int) *net.TCPConn {
		t.Helper()
		d := net.Dialer{Timeout: ioTimeout, LocalAddr: srcAddr(i)}
		c, err := d.Dial("tcp", lb.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.TCPConn)
	}
	for k := range 2 {
		c := from(0)
		if _, err := roundTrip(c, "held"); err != nil {
			t.Fatalf("connection %d from %v: %v", k+1, c.LocalAddr(), err)
		}
	}
	refused := from(0)
	refused.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(refused, "over the limit\n")
	var buf [64]byte
	n, err := refused.Read(buf[:])
	switch {
	case n > 0:
		t.Errorf("third connection from %v: got %q, want the connection closed without an answer", refused.LocalAddr(), buf[:n])
	case err == io.EOF, errors.Is(err, syscall.ECONNRESET):
		t.Logf("third connection from %v: closed (%v)", refused.LocalAddr(), err)
	default:
		t.Errorf("third connection from %v: %v, want the connection closed", refused.LocalAddr(), err)
	}
	other := from(1)
	if _, err := roundTrip(other, "another address"); err != nil {
		t.Errorf("connection from %v: %v, want served", other.LocalAddr(), err)
	}

	var rejected [2]int64
	deadline := time.Now().Add(5 * time.Second)
	for {
		for i, p := range s {
			rejected[i] = p.vars(t).Tcpoll["rejected_per_ip"]
		}
		if rejected[0]+rejected[1] >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("rejected_per_ip: %d and %d", rejected[0], rejected[1])
	if rejected[0]+rejected[1] != 1 {
		t.Errorf("rejected_per_ip = %d and %d, want 1 in all (the third connection)", rejected[0], rejected[1])
	}
	for i, p := range s {
		if v := p.vars(t); v.Tcpoll["proxy_errors"] != 0 {
			t.Errorf("server %d: proxy_errors = %d, want 0", i+1, v.Tcpoll["proxy_errors"])
		}
	}
}

// testHAProxyLoad runs `tcpoll load` through HAProxy, from eight source
// addresses: every answer is checked, and both servers answer a share.
func testHAProxyLoad(t *testing.T, version string) {
	lb, s := startPair(t, version, "-max-conns-per-ip", "8")
	// With -v the servers trace each message and leave the messages
	// counter to the protocol: count the answers' bytes instead.
	const conns = 16
	var before, accepted [2]int64
	for i, p := range s {
		v := p.vars(t)
		before[i], accepted[i] = v.Tcpoll["bytes_out"], v.Tcpoll["accepted"]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tcpollBin, "load", "-c", strconv.Itoa(conns), "-p", "8", "-d", "1s", "-warmup", "200ms",
		"-src", "127.0.0.2-127.0.0.9", "-json", lb.addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpoll load through haproxy: %v\n%s%s", err, out, stderr.String())
	}
	var res struct {
		MsgsPerSec float64 `json:"msgs_per_sec"`
		P99        float64 `json:"p99_us"`
		Sent       int64   `json:"sent"`
		Answered   int64   `json:"answered"`
		Mismatches int64   `json:"mismatches"`
		Errors     int64   `json:"errors"`
		Timeouts   int64   `json:"timeouts"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("tcpoll load's output %q: %v", out, err)
	}
	t.Logf("through haproxy (%s): %.0f msgs/s, p99 %.0fµs, %d sent, %d answered", version, res.MsgsPerSec, res.P99, res.Sent, res.Answered)
	if res.Sent == 0 || res.Answered != res.Sent || res.Mismatches+res.Errors+res.Timeouts != 0 {
		t.Errorf("%+v: want every message answered, no mismatch, error or timeout", res)
	}
	for i, p := range s {
		v := p.vars(t)
		// Round-robin shares the connections evenly; how many messages
		// each connection gets through depends on how the two cores are
		// shared, so only the connections are counted exactly.
		got := (v.Tcpoll["bytes_out"] - before[i]) / int64(len(answer))
		acc := v.Tcpoll["accepted"] - accepted[i]
		t.Logf("server %d: %d connections (health checks included), %d messages answered", i+1, acc, got)
		if acc < conns/2 || got == 0 {
			t.Errorf("server %d accepted %d connections and answered %d messages, want %d or more and some", i+1, acc, got, conns/2)
		}
		if n := v.Tcpoll["proxy_errors"] + v.Tcpoll["rejected_per_ip"]; n != 0 {
			t.Errorf("server %d: counters %v, want no proxy_errors, no rejected_per_ip", i+1, v.Tcpoll)
		}
	}
}

// TestHAProxyCost measures what the balancer and the PROXY header cost, for
// the README: `tcpoll load` at 50x16 and 50x1 against three setups,
// interleaved, in rounds, and prints the medians:
//
//   - direct: a plain `tcpoll serve`;
//   - haproxy: HAProxy (deploy/haproxy.cfg, send-proxy-v2) in front of a
//     `tcpoll serve -proxy-protocol` (both server lines on that one
//     instance, so its CPU per message compares with direct's);
//   - proxy-v2: `tcpoll load -proxy v2` straight to a `tcpoll serve
//     -proxy-protocol`: the header's own cost, against direct;
//   - direct-2: a second plain `tcpoll serve`, the same as direct: how far
//     two identical servers differ on this machine, the noise below which
//     a difference means nothing.
//
// It runs only with TCPOLL_HAPROXY_COST=1 (TCPOLL_HAPROXY_ROUNDS=N for other
// than 3 rounds):
//
//	TCPOLL_HAPROXY_COST=1 go test -run '^TestHAProxyCost$' -v -timeout 15m ./cmd/tcpoll
func TestHAProxyCost(t *testing.T) {
	if os.Getenv("TCPOLL_HAPROXY_COST") != "1" {
		t.Skip("a measurement, not a test: TCPOLL_HAPROXY_COST=1 runs it")
	}
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("TCPOLL_HAPROXY_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	direct := startServer(t, 0)
	behind := startServer(t, 0, "-proxy-protocol")
	lb := startHAProxy(t, "v2", behind, behind)
	withHeader := startServer(t, 0, "-proxy-protocol")
	direct2 := startServer(t, 0)

	type setup struct {
		name   string
		addr   string
		server *proc
		flags  []string
	}
	setups := []setup{
		{"direct", direct.addr, direct, nil},
		{"haproxy", lb.addr, behind, nil},
		{"proxy-v2", withHeader.addr, withHeader, []string{"-proxy", "v2"}},
		{"direct-2", direct2.addr, direct2, nil},
	}
	loads := [][]string{{"-c", "50", "-p", "16"}, {"-c", "50", "-p", "1"}}
	type sample struct{ rate, p99, serverCPU, lbCPU float64 }
	samples := make(map[string][]sample)
	for r := range rounds {
		for _, ld := range loads {
			for _, s := range setups {
				args := append([]string{"load"}, ld...)
				args = append(args, "-d", "3s")
				args = append(args, s.flags...)
				args = append(args, "-server-pid", strconv.Itoa(s.server.pid), "-json", s.addr)
				lbCPU0 := (&proc{pid: lb.pid}).cpu(t)
				out, err := exec.Command(tcpollBin, args...).Output()
				lbCPU := (&proc{pid: lb.pid}).cpu(t) - lbCPU0
				if err != nil {
					t.Fatalf("tcpoll %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				var res struct {
					Rate      float64 `json:"msgs_per_sec"`
					P99       float64 `json:"p99_us"`
					ServerCPU float64 `json:"server_cpu_us_per_msg"`
					Window    float64 `json:"duration_s"`
				}
				if err := json.Unmarshal(out, &res); err != nil {
					t.Fatal(err)
				}
				x := sample{rate: res.Rate, p99: res.P99, serverCPU: res.ServerCPU}
				if s.name == "haproxy" {
					// HAProxy's CPU over the whole command, warm-up (1s)
					// included, per message at the window's rate.
					x.lbCPU = float64(lbCPU.Microseconds()) / (res.Rate * (res.Window + 1))
				}
				key := s.name + " " + strings.Join(ld, " ")
				samples[key] = append(samples[key], x)
				t.Logf("round %d: tcpoll %s\n\t%.0f msgs/s, p99 %.0fµs, server %.3fµs/msg", r+1,
					strings.Join(args, " "), x.rate, x.p99, x.serverCPU)
			}
		}
	}
	median := func(xs []sample, f func(sample) float64) float64 {
		v := make([]float64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	var table strings.Builder
	fmt.Fprintf(&table, "medians of %d interleaved rounds\n%-22s %12s %10s %16s %16s\n", rounds, "", "msgs/s", "p99 µs", "server µs/msg", "haproxy µs/msg")
	for _, ld := range loads {
		for _, s := range setups {
			key := s.name + " " + strings.Join(ld, " ")
			xs := samples[key]
			lbc := "-"
			if s.name == "haproxy" {
				lbc = fmt.Sprintf("%.2f", median(xs, func(x sample) float64 { return x.lbCPU }))
			}
			fmt.Fprintf(&table, "%-22s %12.0f %10.0f %16.3f %16s\n", key,
				median(xs, func(x sample) float64 { return x.rate }),
				median(xs, func(x sample) float64 { return x.p99 }),
				median(xs, func(x sample) float64 { return x.serverCPU }), lbc)
		}
	}
	t.Log("\n" + table.String())
}
