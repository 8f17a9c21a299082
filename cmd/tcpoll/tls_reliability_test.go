//go:build linux

package main

// The tests in this file attack `tcpoll serve -tls-cert -tls-key` as the
// plaintext reliability tests attack the plain server, with the real
// binary as a separate process: HAProxy re-encrypting to it, the reset
// storm with clients that also reset mid-handshake, a TLS client that
// never reads, and SIGTERM with TLS clients connected. Inside TLS a
// connection's end has two parts, the close_notify alert and then TCP's
// FIN. tls.Conn returns io.EOF for the alert, but also for a FIN without
// one that comes between records (a possible truncation, which crypto/tls
// lets pass): finConn tells them apart, and after the alert the socket
// must read the FIN, not a reset and not another byte.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/storm"
	"github.com/tcpoll/poll/internal/testcert"
	"golang.org/x/sys/unix"
)

// skipEvio skips a TLS test on the evio engine, which refuses TLS.
func skipEvio(t *testing.T) {
	t.Helper()
	if strings.Contains(os.Getenv("TCPOLL_TAGS"), "evio") {
		t.Skip("the evio engine has no TLS")
	}
}

// trustingTLS is a client configuration trusting the test certificate.
func trustingTLS(t *testing.T) *tls.Config {
	t.Helper()
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	return pair.ClientConfig()
}

// finConn is the TCP connection under a TLS session. It notes the
// server's FIN, read by the session or by the test: crypto/tls returns
// io.EOF after a close_notify, with the FIN not read yet, and after a FIN
// without one at a record's boundary.
type finConn struct {
	*net.TCPConn
	fin bool
}

func (c *finConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if err == io.EOF {
		c.fin = true
	}
	return n, err
}

// dialTLS connects to addr and completes a TLS handshake; the connection
// is closed when the test ends. It returns the session and the TCP
// connection under it.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *finConn) {
	t.Helper()
	raw := &finConn{TCPConn: dial(t, addr)}
	raw.SetDeadline(time.Now().Add(ioTimeout))
	tc := tls.Client(raw, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	raw.SetDeadline(time.Time{})
	return tc, raw
}

// expectTLSEnd reads the end of a TLS session whose answers have all been
// read: the close_notify, then the FIN. Anything else is an error.
func expectTLSEnd(tc *tls.Conn, raw *finConn) error {
	raw.SetReadDeadline(time.Now().Add(ioTimeout))
	var b [64]byte
	n, err := tc.Read(b[:])
	if n > 0 {
		return fmt.Errorf("got %q, want close_notify", b[:n])
	}
	return tlsEnded(err, raw)
}

// tlsEnded checks how a TLS session's reading ended, err: with the
// close_notify, then the FIN.
func tlsEnded(err error, raw *finConn) error {
	switch {
	case err == io.EOF && raw.fin, errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%v: the FIN came without close_notify", err)
	case err != io.EOF:
		return fmt.Errorf("got %v, want close_notify", err)
	}
	var b [64]byte
	if n, err := raw.Read(b[:]); n > 0 || err != io.EOF {
		return fmt.Errorf("after close_notify: %q and %v, want the FIN", b[:n], err)
	}
	return nil
}

// engine returns the engine the server runs on, from its "listening"
// record.
func engine(t *testing.T, p *proc) string {
	t.Helper()
	for _, line := range p.log.matching("msg=listening") {
		if m := engineRE.FindStringSubmatch(line); m != nil {
			return m[1]
		}
	}
	t.Fatal("no engine= in the server's listening record")
	return ""
}

var engineRE = regexp.MustCompile(` engine=(\S+)`)

// startTLSProber is startProber inside TLS: a healthy TLS client measuring
// round trips (the handshake is not one of them).
func startTLSProber(t *testing.T, addr string, every time.Duration) *prober {
	t.Helper()
	c, _ := dialTLS(t, addr, trustingTLS(t))
	pr := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			d, err := roundTrip(c, fmt.Sprintf("probe %d", i))
			if err != nil {
				pr.err = err
				return
			}
			pr.rtts = append(pr.rtts, d)
			select {
			case <-pr.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(pr.finish)
	return pr
}

// TestTLSHAProxy runs HAProxy as users put it in front of a TLS service:
// it terminates TLS from the client (bind ... ssl crt) and re-encrypts to
// `tcpoll serve -tls-cert -tls-key` (server ... ssl verify none), in TCP
// mode. Every case of `tcpoll check -tls` passes through it (HAProxy
// turning each close_notify and FIN of one side into the other's, which
// the half-close and close cases need), and `tcpoll load -tls` through it
// gets every answer right. With send-proxy-v2 the PROXY header goes in
// the clear before the ClientHello, and `-proxy-protocol -tls-cert` reads
// it first: the server logs each client's own address.
//
// Like TestHAProxy it needs haproxy (TCPOLL_REQUIRE_HAPROXY=1 makes its
// absence a failure).
func TestTLSHAProxy(t *testing.T) {
	haproxyPath(t)
	skipEvio(t)
	t.Run("re-encrypt", func(t *testing.T) {
		p, cert := startTLSServer(t)
		lb := startTLSHAProxy(t, p.addr, "")
		tlsCheckThrough(t, lb, cert)
		errs := checkTLSErrors(t, p)
		tlsLoadThrough(t, lb, cert)
		if v := p.vars(t); v.Tcpoll["tls_errors"] != errs {
			t.Errorf("server counters %v after load, want tls_errors still %d", v.Tcpoll, errs)
		}
	})
	t.Run("send-proxy-v2", func(t *testing.T) {
		p, cert := startTLSServer(t, "-proxy-protocol", "-v")
		lb := startTLSHAProxy(t, p.addr, "send-proxy-v2")
		tlsCheckThrough(t, lb, cert)
		errs := checkTLSErrors(t, p)
		tlsSourcesThrough(t, lb, p)
		v := p.vars(t)
		if v.Tcpoll["proxy_errors"] != 0 || v.Tcpoll["tls_errors"] != errs {
			t.Errorf("server counters %v, want no proxy_errors and tls_errors still %d", v.Tcpoll, errs)
		}
	})
}

// checkTLSErrors returns the server's tls_errors after `tcpoll check`
// through HAProxy, and fails the test if there is more than one. One is
// HAProxy's: for the case "EOF with nothing sent" it connects to the
// server and, its client gone before a byte came, resets that connection
// before sending a ClientHello (seen through a relay), which the server
// counts, as it should, as a handshake that failed.
func checkTLSErrors(t *testing.T, p *proc) int64 {
	t.Helper()
	v := p.vars(t)
	if v.Tcpoll["accepted"] == 0 || v.Tcpoll["tls_errors"] > 1 {
		t.Errorf("server counters %v after tcpoll check, want connections accepted and at most 1 tls_error", v.Tcpoll)
	}
	return v.Tcpoll["tls_errors"]
}

// tlsCheckThrough runs `tcpoll check -tls` through the balancer, trusting
// the test certificate, which HAProxy presents too.
func tlsCheckThrough(t *testing.T, lb *balancer, cert string) {
	t.Helper()
	out, errOut, err := tcpoll(t, "", "check", "-tls", "-tls-ca", cert, lb.addr)
	if err != nil || !strings.Contains(out, "cases ok") {
		t.Errorf("tcpoll check -tls through haproxy: %v\n%s%s", err, out, errOut)
		return
	}
	t.Logf("check: %s", out[strings.LastIndexByte(strings.TrimSuffix(out, "\n"), '\n')+1:])
}

// tlsLoadThrough runs `tcpoll load -tls` through the balancer: every
// message answered, and rightly.
func tlsLoadThrough(t *testing.T, lb *balancer, cert string) {
	t.Helper()
	out, errOut, err := tcpoll(t, "", "load", "-tls", "-tls-ca", cert, "-c", "8", "-p", "8",
		"-d", "500ms", "-warmup", "100ms", "-json", lb.addr)
	if err != nil {
		t.Fatalf("tcpoll load -tls through haproxy: %v\n%s%s", err, out, errOut)
	}
	var res struct {
		Sent, Answered, Mismatches, Errors, Timeouts uint64
		MsgsPerSec                                   float64 `json:"msgs_per_sec"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if res.Sent == 0 || res.Answered != res.Sent || res.Mismatches+res.Errors+res.Timeouts != 0 {
		t.Errorf("tcpoll load -tls through haproxy: %s", out)
	}
	t.Logf("load: %.0f msgs/s through haproxy, TLS on both sides", res.MsgsPerSec)
}

// tlsSourcesThrough connects through the balancer from 127.0.0.2 to
// 127.0.0.9 and finds each client's own address and port in a "connection
// opened" record of the server.
func tlsSourcesThrough(t *testing.T, lb *balancer, p *proc) {
	t.Helper()
	const n = 8
	cfg := trustingTLS(t)
	want := make(map[netip.AddrPort]bool)
	for i := range n {
		d := net.Dialer{Timeout: ioTimeout, LocalAddr: srcAddr(i)}
		c, err := tls.DialWithDialer(&d, "tcp", lb.addr, cfg)
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
	// server's stderr.
	seen := make(map[netip.AddrPort]bool)
	for deadline := time.Now().Add(5 * time.Second); len(seen) < n && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		for _, line := range p.log.matching(`msg="connection opened"`) {
			if m := openedRE.FindStringSubmatch(line); m != nil {
				if a, err := netip.ParseAddrPort(m[1]); err == nil && want[a] {
					seen[a] = true
				}
			}
		}
	}
	for a := range want {
		if !seen[a] {
			t.Errorf("client %v not in the server's log as remote=%v", a, a)
		}
	}
	if t.Failed() {
		t.Logf("connection records:\n%s", strings.Join(p.log.matching("connection"), "\n"))
	}
}

// startTLSHAProxy runs HAProxy in the foreground, terminating TLS with the
// test certificate on a free loopback port (handed to it as descriptor 3,
// as startHAProxy does) and re-encrypting to backend, with more server
// options (such as send-proxy-v2). It is stopped, by its pid, when the
// test ends.
func startTLSHAProxy(t *testing.T, backend, serverOpts string) *balancer {
	t.Helper()
	bin := haproxyPath(t)
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// HAProxy's crt file holds the certificate and its key together.
	combined := filepath.Join(dir, "combined.pem")
	if err := os.WriteFile(combined, slices.Concat(pair.CertPEM, pair.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	// No health check: the server counts every connection that fails
	// its handshake in tls_errors, and the tests want none.
	config := fmt.Sprintf(`global
    log stderr format short local0 notice
    maxconn 1000
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 1m
    timeout server 1m
    timeout client-fin 30s
    timeout server-fin 30s
frontend tls
    bind fd@3 ssl crt %s
    default_backend tcpoll
backend tcpoll
    server s1 %s ssl verify none %s
`, combined, backend, serverOpts)
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

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
	cmd := exec.Command(bin, "-db", "-f", cfgFile)
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
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

	// Ready once a message goes through, TLS on both sides.
	cfg := trustingTLS(t)
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case <-b.exited:
			t.Fatalf("haproxy exited at start (%v):\n%s", b.werr, b.out)
		default:
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := tls.DialWithDialer(&d, "tcp", b.addr, cfg)
		if err == nil {
			_, err = roundTrip(c, "ready?")
			c.Close()
		}
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer through haproxy within 10s: %v\n%s", err, b.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTLSResetStorm is TestResetStorm inside TLS, against the -race
// server with -tls-cert: the storm's connections complete their handshake
// and then close or reset with answers owed, and more reset in the middle
// of a handshake, right after a whole ClientHello or part of one, where
// the server hands a connection from its loop to a handshake goroutine and
// back. Then: every polite TLS client was answered, no race is reported,
// the server is idle within a second, every connection is closed (open
// 0), every descriptor freed and every goroutine gone (a handshake
// goroutine left waiting for a reset client would hold a -max-handshakes
// slot for good), a new TLS client is answered, and SIGTERM stops it with
// exit status 0. With a small -max-pending-output, answers queue as
// ciphertext and reading pauses on connections being reset; with a small
// -max-handshakes, hellos wait for a slot and are reset in the queue.
func TestTLSResetStorm(t *testing.T) {
	skipEvio(t)
	for _, c := range []struct {
		name  string
		flags []string
	}{
		{"default", nil},
		{"max-pending-output 1024 max-handshakes 8", []string{"-max-pending-output", "1024", "-max-handshakes", "8"}},
	} {
		t.Run(c.name, func(t *testing.T) { testTLSStorm(t, c.flags...) })
	}
}

func testTLSStorm(t *testing.T, flags ...string) {
	dur := time.Duration(size(3, 20)) * time.Second
	const grace = 3 * time.Second
	cert, key := certFiles(t)
	s := startRaceServer(t, append([]string{"-tls-cert", cert, "-tls-key", key, "-shutdown-timeout", grace.String()}, flags...)...)
	fds0 := s.steadyFDs(t)
	g0 := s.vars(t).Goroutines

	cfg := stormConfig(s.addr, dur)
	cfg.TLS = trustingTLS(t)
	res, err := storm.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	t.Logf("storm: %v", res)
	checkStormResult(t, res, "polite TLS clients", false)
	if res.Kinds[storm.Hello] == 0 || res.Kinds[storm.PartialHello] == 0 || res.Drained == 0 {
		t.Errorf("no reset mid-handshake, or nothing drained: %v", res)
	}

	// Idle again: the second that starts a second after the storm.
	time.Sleep(time.Until(end.Add(time.Second)))
	s.aliveAfter(t, "the storm")
	cpu := checkIdle(t, s.proc)

	// Every connection closed, its descriptor freed: by now a connection
	// the server closed has had its client's reset, or its linger is over.
	// The goroutines: the debug server's own may come and go.
	v := s.waitVars(t, 3*time.Second, fmt.Sprintf("open 0, goroutines at most %d (%d before)", g0+2, g0), func(v debugVars) bool {
		return v.Tcpoll["open"] == 0 && v.Goroutines <= g0+2
	})
	fds := s.fds(t)
	for deadline := time.Now().Add(2 * time.Second); fds != fds0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		fds = s.fds(t)
	}
	if fds != fds0 {
		t.Errorf("server holds %d descriptors after the storm, %d before", fds, fds0)
	}

	// A new TLS client is served, and ends as the protocol says.
	tc, raw := dialTLS(t, s.addr, trustingTLS(t))
	if _, err := roundTrip(tc, "after the storm"); err != nil {
		t.Errorf("a TLS client after the storm: %v", err)
	} else if _, err := io.WriteString(tc, "close\n"); err != nil {
		t.Errorf("a TLS client after the storm: %v", err)
	} else if b, err := io.ReadAll(io.LimitReader(tc, int64(len("closing")))); string(b) != "closing" {
		t.Errorf("a TLS client after the storm: got %q (%v) after close, want %q", b, err, "closing")
	} else if err := expectTLSEnd(tc, raw); err != nil {
		t.Errorf("a TLS client after the storm: %v", err)
	}
	// Closed, it ends the server's linger: SIGTERM finds no connection.
	raw.Close()

	took, exited := s.terminate(t, grace+2*time.Second)
	races, _ := s.races(t)
	t.Logf("after the storm: %d race reports, CPU %v in a second, tls_errors %d, accepted %d, descriptors %d (%d before), goroutines %d (%d before); "+
		"SIGTERM: exited %v after %v (%v)",
		races, cpu, v.Tcpoll["tls_errors"], v.Tcpoll["accepted"], fds, fds0, v.Goroutines, g0, exited, took.Round(time.Millisecond), s.werr)
	s.checkClean(t, took, exited, grace)
}

// TestTLSNonReadingClient is TestNonReadingClient inside TLS: a client
// pipelines megabytes of empty messages and reads nothing. The server
// stops reading it (what it holds is MaxPendingOutput of ciphertext, and
// its RSS barely moves), another TLS client is answered promptly
// meanwhile, and once the slow client reads, every answer arrives, right,
// then the server's close_notify and FIN.
func TestTLSNonReadingClient(t *testing.T) {
	skipEvio(t)
	total := size(20<<20, 50<<20) // bytes of "\n", one message each
	p, _ := startTLSServer(t)
	pr := startTLSProber(t, p.addr, 10*time.Millisecond)
	slow, raw := dialTLS(t, p.addr, trustingTLS(t))
	if _, err := roundTrip(slow, "warm up"); err != nil {
		t.Fatal(err)
	}
	slow.SetDeadline(time.Time{})
	time.Sleep(100 * time.Millisecond)
	rss0 := p.rss(t)

	// TLS's EOF, then TCP's.
	nr := startNonReader(slow, total, func() error {
		if err := slow.CloseWrite(); err != nil {
			return err
		}
		return raw.CloseWrite()
	})
	nr.stall(t, p, rss0)
	// stdnet pauses inside a blocking Write, which counts nothing
	// (server/engine_stdnet.go): the stall and the RSS show it there.
	if v := p.vars(t); v.Tcpoll["backpressure"] == 0 && engine(t, p) != "stdnet" {
		t.Errorf("backpressure = 0 while a TLS client reads nothing, want > 0")
	}
	pr.check(t, healthyRTT, slowestRTT)

	// Reading and decrypting as fast as it can, the slow client competes
	// with the healthy one for the machine's cores: answers stay under a
	// second.
	pr = startTLSProber(t, p.addr, 10*time.Millisecond)

	// Now read: every answer arrives, then close_notify and the FIN.
	raw.SetReadDeadline(time.Now().Add(60 * time.Second))
	if err := tlsEnded(nr.drain(t, slow), raw); err != nil {
		t.Errorf("after every answer: %v", err)
	}
	pr.check(t, 500*time.Millisecond, time.Second)
	p.alive(t)
}

// TestTLSShutdown sends SIGTERM to the server while TLS clients are
// connected, each having sent messages: some read their answers already
// and are idle, some have answers waiting unread, some have a message
// without its LF after complete ones, and some wrote a burst the server had
// not read when the signal came (it was stopped: SIGSTOP, the burst,
// SIGTERM, SIGCONT). Each client reads every answer owed to it, then the
// server's close_notify, then its FIN; and the process exits 0 within its
// -shutdown-timeout.
func TestTLSShutdown(t *testing.T) {
	skipEvio(t)
	const each = 8
	const grace = 5 * time.Second
	p, _ := startTLSServer(t, "-shutdown-timeout", grace.String())
	cfg := trustingTLS(t)

	type client struct {
		kind string
		tc   *tls.Conn
		raw  *finConn
		owed int // answers owed, not read before the signal
	}
	var clients []*client
	burst := bytes.Repeat([]byte("in flight\n"), 200)
	for _, kind := range []string{"idle", "unread", "unfinished", "in flight"} {
		for range each {
			tc, raw := dialTLS(t, p.addr, cfg)
			c := &client{kind: kind, tc: tc, raw: raw}
			clients = append(clients, c)
			var err error
			switch kind {
			case "idle":
				_, err = roundTrip(tc, "hello")
			case "unread":
				_, err = io.WriteString(tc, strings.Repeat("unread\n", 100))
				c.owed = 100
			case "unfinished":
				// The protocol answers complete messages at shutdown: the
				// unfinished one is dropped with the connection.
				_, err = io.WriteString(tc, "a\nb\nno LF yet")
				c.owed = 2
			}
			if err != nil {
				t.Fatalf("%s client: %v", kind, err)
			}
		}
	}
	// Let the server read all that, and the clients the session tickets of
	// TLS 1.3, which come after the handshake.
	time.Sleep(200 * time.Millisecond)

	// Stopped, the server reads nothing: each burst waits in its socket
	// when SIGTERM comes, and must be answered.
	if err := unix.Kill(p.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if c.kind == "in flight" {
			c.raw.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := c.tc.Write(burst); err != nil {
				unix.Kill(p.pid, unix.SIGCONT)
				t.Fatal(err)
			}
			c.owed = bytes.Count(burst, []byte("\n"))
		}
	}
	time.Sleep(100 * time.Millisecond)
	sigAt := time.Now()
	if err := unix.Kill(p.pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(p.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Go(func() {
			c.raw.SetReadDeadline(time.Now().Add(grace + 5*time.Second))
			if err := readAnswers(c.tc, c.owed); err != nil {
				errs[i] = err
				return
			}
			errs[i] = expectTLSEnd(c.tc, c.raw)
			// Its FIN ends the server's linger.
			c.raw.Close()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s client %d (%d answers owed): %v", clients[i].kind, i, clients[i].owed, err)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("server still running %v after SIGTERM", grace+5*time.Second)
	}
	took := time.Since(sigAt)
	t.Logf("%d TLS clients, each read its answers, close_notify and the FIN; server exited %v after SIGTERM: %v",
		len(clients), took.Round(time.Millisecond), p.werr)
	if p.werr != nil {
		t.Errorf("server exited with %v, want exit status 0", p.werr)
	}
	if took > grace {
		t.Errorf("server took %v to stop, want < %v (-shutdown-timeout)", took, grace)
	}
}
