//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
	"github.com/tcpoll/poll/server"
)

// The tests in this file run `tcpoll serve -tls-cert -tls-key` and the
// client commands with -tls against it, and Debian's openssl s_client.

// certFiles writes the test certificate and its key as PEM files in a
// temporary directory.
func certFiles(t *testing.T) (cert, key string) {
	t.Helper()
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = pair.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// startTLSServer runs `tcpoll serve` with the test certificate, more flags
// after, and returns it with the certificate's file, for clients to trust.
func startTLSServer(t *testing.T, flags ...string) (p *proc, cert string) {
	t.Helper()
	cert, key := certFiles(t)
	p = startServer(t, 0, append([]string{"-tls-cert", cert, "-tls-key", key}, flags...)...)
	if lines := p.log.matching("listening"); len(lines) != 1 || !strings.Contains(lines[0], " tls=true") {
		t.Errorf("listening lines %q, want one saying tls=true", lines)
	}
	return p, cert
}

// tcpoll runs the tcpoll binary with args and stdin, and returns its
// standard output and error and how it exited.
func tcpoll(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tcpollBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestTLSCheck plays every conformance case of `tcpoll check` inside TLS,
// 1.3 by default, against the server, with -max-message 16 too, and shows
// that the server counts a plaintext client in tls_errors.
func TestTLSCheck(t *testing.T) {
	for _, max := range []string{"256", "16"} {
		t.Run("max-message="+max, func(t *testing.T) {
			p, cert := startTLSServer(t, "-max-message", max)
			out, errOut, err := tcpoll(t, "", "check", "-tls", "-tls-ca", cert, "-max-message", max, "-timeout", "2s", p.addr)
			if err != nil || !strings.Contains(out, "cases ok") {
				t.Fatalf("tcpoll check -tls: %v\n%s%s", err, out, errOut)
			}
			t.Logf("%s", out[strings.LastIndexByte(strings.TrimSuffix(out, "\n"), '\n')+1:])
		})
	}

	p, _ := startTLSServer(t)
	c := dial(t, p.addr)
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	// The server may answer with an alert before it closes; never with
	// the protocol's answer.
	b, _ := io.ReadAll(c)
	if strings.Contains(string(b), server.Answer) {
		t.Errorf("a plaintext client got %q from a TLS server", b)
	}
	p.waitVars(t, 5*time.Second, "tls_errors 1", func(v debugVars) bool { return v.Tcpoll["tls_errors"] == 1 })
}

// TestTLSSend runs `tcpoll send -tls` with messages as arguments and on
// stdin, trusting the certificate by -tls-ca or by -tls-insecure, and
// without trusting it, which must fail.
func TestTLSSend(t *testing.T) {
	p, cert := startTLSServer(t)
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"arguments", "", []string{"-tls-ca", cert, p.addr, "hello", "close"}, server.Answer + server.Closing},
		{"stdin", "a\nb\nc", []string{"-tls-ca", cert, p.addr}, strings.Repeat(server.Answer, 3)},
		{"insecure", "", []string{"-tls-insecure", p.addr, "hello"}, server.Answer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := tcpoll(t, tt.stdin, append([]string{"send", "-tls"}, tt.args...)...)
			if err != nil || out != tt.want {
				t.Errorf("tcpoll send -tls: %v, stdout %q, stderr %q; want stdout %q", err, out, errOut, tt.want)
			}
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		out, errOut, err := tcpoll(t, "", "send", "-tls", p.addr, "hello")
		if err == nil || out != "" || !strings.Contains(errOut, "certificate") {
			t.Errorf("tcpoll send -tls with an unknown CA: %v, stdout %q, stderr %q; want a certificate error", err, out, errOut)
		}
	})
}

// TestTLSLoad runs `tcpoll load -tls` against the server: every message
// answered, nothing wrong.
func TestTLSLoad(t *testing.T) {
	p, cert := startTLSServer(t)
	out, errOut, err := tcpoll(t, "", "load", "-tls", "-tls-ca", cert, "-c", "8", "-p", "8",
		"-d", "500ms", "-warmup", "100ms", "-json", "-server-pid", strconv.Itoa(p.pid), p.addr)
	if err != nil {
		t.Fatalf("tcpoll load -tls: %v\n%s%s", err, out, errOut)
	}
	var res struct {
		Sent, Answered, Mismatches, Errors, Timeouts uint64
		TLS                                          bool
		MsgsPerSec                                   float64 `json:"msgs_per_sec"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if !res.TLS || res.Sent == 0 || res.Answered != res.Sent || res.Mismatches+res.Errors+res.Timeouts != 0 {
		t.Errorf("tcpoll load -tls: %s", out)
	}
	t.Logf("%.0f msgs/s over TLS", res.MsgsPerSec)
}

// TestTLSResumption: the server issues session tickets, so a client's
// second connection resumes its session, in TLS 1.3 and 1.2.
func TestTLSResumption(t *testing.T) {
	p, _ := startTLSServer(t)
	pair, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cfg := pair.ClientConfig()
			cfg.MaxVersion = version
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			for i, want := range []bool{false, true} {
				c, err := tls.Dial("tcp", p.addr, cfg)
				if err != nil {
					t.Fatal(err)
				}
				// TLS 1.3 sends the ticket after the handshake: an answer
				// read is a ticket read.
				_, err = roundTrip(c, "hello")
				resumed := c.ConnectionState().DidResume
				c.Close()
				if err != nil {
					t.Fatal(err)
				}
				if resumed != want {
					t.Errorf("connection %d: resumed %v, want %v", i+1, resumed, want)
				}
			}
		})
	}
}

// TestTLSFlags: TLS flags given wrongly stop the command at once, with an
// error naming what is wrong and exit status 1; -h states the ranges.
func TestTLSFlags(t *testing.T) {
	cert, key := certFiles(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-tls-cert", cert}, "-tls-cert and -tls-key go together"},
		{[]string{"serve", "-tls-key", key}, "-tls-cert and -tls-key go together"},
		{[]string{"serve", "-tls-cert", missing, "-tls-key", key}, "missing.pem: no such file or directory"},
		{[]string{"serve", "-tls-cert", cert, "-tls-key", missing}, "missing.pem: no such file or directory"},
		{[]string{"serve", "-tls-cert", garbage, "-tls-key", key}, "failed to find any PEM data in certificate input"},
		{[]string{"serve", "-tls-cert", key, "-tls-key", cert}, "-tls-cert " + key},
		{[]string{"serve", "-tls-cert", cert, "-tls-key", key, "-handshake-timeout", "2h"}, "HandshakeTimeout 2h0m0s is outside its range"},
		{[]string{"serve", "-tls-cert", cert, "-tls-key", key, "-max-handshakes", "-1"}, "MaxHandshakes -1 is outside its range"},
		{[]string{"send", "-tls-insecure", "127.0.0.1:1", "x"}, "-tls-insecure and -tls-ca need -tls"},
		{[]string{"check", "-tls-ca", cert, "127.0.0.1:1"}, "-tls-insecure and -tls-ca need -tls"},
		{[]string{"load", "-tls", "-tls-ca", missing, "127.0.0.1:1"}, "-tls-ca: open " + missing},
		{[]string{"load", "-tls", "-tls-ca", garbage, "127.0.0.1:1"}, "no PEM certificate"},
		{[]string{"send", "-tls", "-tls-insecure", "-tls-ca", cert, "127.0.0.1:1"}, "exclusive"},
	} {
		args := tt.args
		if args[0] == "serve" {
			// Should the flags be taken by mistake, the server must not
			// bind the default port.
			args = append(args, "-addr", "127.0.0.1:0")
		}
		_, errOut, err := tcpoll(t, "", args...)
		if code := exitCode(err); code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("tcpoll %q: exit status %d, stderr %q; want 1 and %q", tt.args, code, errOut, tt.want)
		}
	}

	_, usage, _ := tcpoll(t, "", "serve", "-h")
	for _, want := range []string{"-tls-cert file", "-tls-key file", "-handshake-timeout", "1ms to 1h", "-max-handshakes", "1 to 1048576"} {
		if !strings.Contains(usage, want) {
			t.Errorf("tcpoll serve -h lacks %q:\n%s", want, usage)
		}
	}
	for _, cmd := range []string{"send", "check", "load"} {
		_, usage, _ := tcpoll(t, "", cmd, "-h")
		for _, want := range []string{"-tls\n", "-tls-ca file", "-tls-insecure"} {
			if !strings.Contains(usage, want) {
				t.Errorf("tcpoll %s -h lacks %q:\n%s", cmd, want, usage)
			}
		}
	}
}

// exitCode returns a command's exit status: 0 for nil, -1 if it did not
// exit by itself.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestTLSOpenSSL talks to the server with OpenSSL's client, TLS 1.3 and
// 1.2, verifying the certificate: two lines, two answers. CI installs
// Debian's openssl package; without it the test fails.
func TestTLSOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl not found (%v): install Debian's openssl package", err)
	}
	p, cert := startTLSServer(t)
	for _, version := range []string{"-tls1_3", "-tls1_2"} {
		t.Run(version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// -quiet: the answers alone on stdout, and stdin's end does not
			// end the session; -verify_return_error: a bad certificate
			// fails the handshake.
			cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", p.addr, version,
				"-CAfile", cert, "-verify_return_error", "-quiet")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				stdin.Close()
				cmd.Process.Kill()
				cmd.Wait()
			}()
			if _, err := io.WriteString(stdin, "hello\nworld\n"); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(stdout)
			for i := range 2 {
				line, err := r.ReadString('\n')
				if line != server.Answer {
					t.Fatalf("answer %d: got %q (%v), want %q; openssl said:\n%s", i+1, line, err, server.Answer, stderr.String())
				}
			}
		})
	}
}
