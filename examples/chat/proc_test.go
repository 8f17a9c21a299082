package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chatBin is the chat command, built once by TestMain.
var chatBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chat-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	chatBin = filepath.Join(dir, "chat")
	if runtime.GOOS == "windows" {
		chatBin += ".exe"
	}
	args := append(append([]string{"build"}, buildFlags()...), "-o", chatBin, ".")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building chat: %v\n", err)
		return 1
	}
	return m.Run()
}

// buildFlags are this test binary's -race and -tags, so that the process
// under test is built like the test: with the race detector when the
// tests run with it, and on the engine the tags select (-tags stdnet).
func buildFlags() []string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	var flags []string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "-race" && s.Value == "true":
			flags = append(flags, "-race")
		case s.Key == "-tags" && s.Value != "":
			flags = append(flags, "-tags", s.Value)
		}
	}
	return flags
}

// proc is a running chat process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr lockedBuffer
	// exitOK says whether the process may end with Wait's err; nil
	// means only cleanly.
	exitOK func(err error) bool

	stopOnce sync.Once
	exited   chan struct{} // closed once the process has exited
	werr     error         // Wait's answer, once exited is closed
}

// lockedBuffer is a bytes.Buffer for a process's output, read while the
// process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startChat runs the chat command on 127.0.0.1, a free port, with args,
// and waits for its "listening on" line. The test's cleanup stops it.
func startChat(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(chatBin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		p.werr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	addr := make(chan string, 1)
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case p.addr = <-addr:
	case <-p.exited:
		if s := p.stderr.String(); strings.Contains(s, "has no Handler") {
			// The evio engine (-tags evio) serves no Handler.
			p.exitOK = func(error) bool { return true }
			t.Skip(strings.TrimSpace(s))
		}
		t.Fatalf("chat exited at start: %v\n%s", p.werr, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("chat printed no address in 30s\n%s", p.stderr.String())
	}
	return p
}

// stop ends the process with SIGTERM (a kill where there are no signals),
// and fails the test unless it exits at once, cleanly, with no race
// report. It returns the process's standard error. Later calls only
// return it.
func (p *proc) stop(t *testing.T) string {
	t.Helper()
	p.stopOnce.Do(func() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			p.cmd.Process.Kill()
		}
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("chat still ran 20s after SIGTERM; killed")
		}
		if ok := p.exitOK; (ok == nil && p.werr != nil) || (ok != nil && !ok(p.werr)) {
			t.Errorf("chat exited: %v", p.werr)
		}
		if s := p.stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
			t.Errorf("chat's standard error:\n%s", s)
		} else if t.Failed() {
			t.Logf("chat's standard error:\n%s", s)
		}
	})
	return p.stderr.String()
}

// client is a connection to the chat.
type client struct {
	t  *testing.T
	c  *net.TCPConn
	r  *bufio.Reader
	id int
}

// dial connects to addr; the test's cleanup closes the connection.
func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c.(*net.TCPConn), r: bufio.NewReaderSize(c, 64<<10)}
}

// dialN connects n clients and settles them.
func dialN(t *testing.T, addr string, n int) []*client {
	t.Helper()
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = dial(t, addr)
		cs[i].id = i
	}
	settle(t, cs)
	return cs
}

// send writes s, failing the test if it cannot.
func (c *client) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("client %d: write: %v", c.id, err)
	}
}

// line reads a line, failing the test after d.
func (c *client) line(d time.Duration) string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("client %d: read: %v (after %q)", c.id, err, s)
	}
	return s
}

// until reads lines up to and including want, and returns the ones
// before it.
func (c *client) until(want string) []string {
	c.t.Helper()
	var got []string
	for {
		s := c.line(10 * time.Second)
		if s == want {
			return got
		}
		got = append(got, s)
	}
}

// disconnected reads until the server ends the connection, and fails the
// test if it does not within d. What it reads meanwhile is returned.
func (c *client) disconnected(d time.Duration) []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("client %d: still connected after %v (read %d bytes)", c.id, d, len(b))
	}
	return b
}

// settle makes sure every client is in the room: cs[0], then cs[1], sends
// probes until every other client has read one, then "sync\n", which
// every other client reads up to. What the probes prove is that the
// server had opened the connection when it processed one, so the clients
// are all in the room once both rounds are over, and have nothing unread.
func settle(t *testing.T, cs []*client) {
	t.Helper()
	if len(cs) < 2 {
		return
	}
	for _, from := range cs[:2] {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				if _, err := io.WriteString(from.c, "probe\n"); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		for _, c := range cs {
			if c != from {
				c.until("probe\n")
			}
		}
		close(stop)
		<-done
		from.send("sync\n")
		for _, c := range cs {
			if c != from {
				for _, s := range c.until("sync\n") {
					if s != "probe\n" {
						t.Fatalf("client %d read %q while settling", c.id, s)
					}
				}
			}
		}
	}
}

// quiet checks, with a "sync\n" from the client from, that the clients
// cs have nothing to read but what the server processed after from sent
// it. The caller makes sure the server is done with what they must not
// get first.
func quiet(t *testing.T, from *client, cs ...*client) {
	t.Helper()
	from.send("sync\n")
	for _, c := range cs {
		if got := c.until("sync\n"); len(got) > 0 {
			t.Errorf("client %d read %q", c.id, got)
		}
	}
}
