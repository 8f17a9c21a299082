//go:build linux

// The tests in this file run the real tcpoll binary, built once by TestMain,
// as a separate process, and push it to its limits over loopback: resets,
// descriptor exhaustion, MaxConns, clients that never read, slowloris,
// shutdown under load, signal storms, churn and a soak. They watch the
// server from outside, as an operator would: its descriptors, CPU time and
// RSS in /proc, its expvar counters and its log.
//
// Every scenario runs at a small size by default; TCPOLL_LONG=1 runs the
// full sizes (scripts/soak). TCPOLL_TAGS=stdnet or evio builds the binary
// on another engine.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
	"golang.org/x/sys/unix"
)

// tcpollBin is the binary under test.
var tcpollBin string

// long reports whether the long versions of the load tests run.
func long() bool { return os.Getenv("TCPOLL_LONG") == "1" }

// size picks a scenario's size: def in the default suite, full with
// TCPOLL_LONG=1.
func size(def, full int) int {
	if long() {
		return full
	}
	return def
}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	// Thousands of sockets at once: take the whole hard limit. Setting it
	// explicitly also makes child processes inherit it.
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
	dir, err := os.MkdirTemp("", "tcpoll-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The binary is built without -race whatever the test run uses: the
	// load tests measure it, and it is what operators run.
	tcpollBin = filepath.Join(dir, "tcpoll")
	build := exec.Command("go", "build", "-tags", binTags(), "-o", tcpollBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building tcpoll: %v\n", err)
		return 1
	}
	return m.Run()
}

// proc is a running `tcpoll serve`.
type proc struct {
	pid   int
	addr  string // where it serves
	debug string // where its expvar counters are
	log   *logSink

	exited  chan struct{} // closed once the process has exited
	werr    error         // how it exited, once it has
	logDone chan struct{} // closed once its output, and its successors', is read to the end
}

// startServer runs `tcpoll serve` on 127.0.0.1 with expvar on, more flags
// after, and its RLIMIT_NOFILE set to nofile (0 keeps the test's). The
// process is killed when the test ends.
func startServer(t *testing.T, nofile int, flags ...string) *proc {
	t.Helper()
	return startServerEnv(t, nil, nofile, flags...)
}

// startServerEnv is startServer with more environment variables.
func startServerEnv(t *testing.T, env []string, nofile int, flags ...string) *proc {
	t.Helper()
	return startServerBin(t, tcpollBin, env, nofile, flags...)
}

// startServerBin is startServerEnv with another tcpoll binary.
func startServerBin(t *testing.T, bin string, env []string, nofile int, flags ...string) *proc {
	t.Helper()
	args := []string{"-c", `ulimit -n "$1" || exit 111; shift; exec "$0" serve "$@"`,
		bin, strconv.Itoa(nofile)}
	if nofile == 0 {
		args = []string{"-c", `shift; exec "$0" serve "$@"`, bin, "-"}
	}
	args = append(args, "-addr", "127.0.0.1:0", "-debug-addr", "127.0.0.1:0")
	args = append(args, flags...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = append(os.Environ(), env...)
	return launch(t, cmd)
}

// launch starts cmd, a `tcpoll serve` with "-debug-addr 127.0.0.1:0", with
// its output read into the proc's log, and waits until it listens. It is
// killed when the test ends.
func launch(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Should the test binary die before its cleanups run (a -timeout
	// panic), the server dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	p := &proc{
		pid:     cmd.Process.Pid,
		log:     newLogSink(),
		exited:  make(chan struct{}),
		logDone: make(chan struct{}),
	}
	logDone := p.logDone
	go func() {
		p.log.read(r)
		r.Close()
		close(logDone)
	}()
	go func() {
		p.werr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			// The shell execs the server, so this pid is the server's.
			cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("server pid %d did not die", p.pid)
				return
			}
		}
		select {
		case <-logDone:
		case <-time.After(5 * time.Second):
		}
		if t.Failed() {
			t.Logf("server log, last lines:\n%s", p.log.tail())
		}
	})
	select {
	case a := <-p.log.listening:
		p.addr, p.debug = a[0], a[1]
	case <-p.exited:
		<-logDone
		t.Fatalf("server exited at start (%v):\n%s", p.werr, p.log.tail())
	case <-time.After(15 * time.Second):
		t.Fatalf("server did not log its address:\n%s", p.log.tail())
	}
	return p
}

// alive fails the test if the server has exited.
func (p *proc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("server exited (%v):\n%s", p.werr, p.log.tail())
	default:
	}
}

// fds counts the server's open descriptors.
func (p *proc) fds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// cpu is the server's user plus system CPU time so far, from the utime and
// stime fields of /proc/PID/stat, in USER_HZ ticks (100 per second on
// every Linux).
func (p *proc) cpu(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces: count fields from its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] { // fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// rss is the server's resident set size, VmRSS in /proc/PID/status.
func (p *proc) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// debugVars is what the server publishes on /debug/vars that tests read.
type debugVars struct {
	Tcpoll     map[string]int64 `json:"tcpoll"`
	Goroutines int              `json:"goroutines"`
	Memstats   struct {
		HeapAlloc uint64
	} `json:"memstats"`
}

// The debug client keeps no connection open, so the server's goroutine
// count is not inflated by the tests' own requests.
var debugClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// vars fetches the server's expvar counters.
func (p *proc) vars(t *testing.T) debugVars {
	t.Helper()
	resp, err := debugClient.Get("http://" + p.debug + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v debugVars
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.Tcpoll == nil {
		t.Fatal(`/debug/vars has no "tcpoll" object`)
	}
	return v
}

// waitVars polls the counters until cond holds and returns them; past
// timeout it fails the test with what it saw.
func (p *proc) waitVars(t *testing.T, timeout time.Duration, what string, cond func(debugVars) bool) debugVars {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := p.vars(t)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, want %s; counters %v, goroutines %d", timeout, what, v.Tcpoll, v.Goroutines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// steadyFDs counts the server's descriptors once the count holds still:
// the debug server may still be closing the connection of the last
// /debug/vars request.
func (p *proc) steadyFDs(t *testing.T) int {
	t.Helper()
	n, same := p.fds(t), 0
	for deadline := time.Now().Add(3 * time.Second); same < 5 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if m := p.fds(t); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// waitFDs waits until the server holds want descriptors.
func (p *proc) waitFDs(t *testing.T, timeout time.Duration, want int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := p.fds(t)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the server holds %d descriptors, want %d", timeout, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logSink reads the server's log: it counts records by message and level
// and keeps the last lines for failure reports.
type logSink struct {
	listening chan [2]string // the listening and debug addresses

	mu     sync.Mutex
	counts map[string]int // records by msg
	levels map[string]int // records by level; "" for lines that are not records
	last   []string       // ring of the last lines
	next   int
	lines  int
}

func newLogSink() *logSink {
	return &logSink{
		listening: make(chan [2]string, 1),
		counts:    make(map[string]int),
		levels:    make(map[string]int),
		last:      make([]string, 0, 60),
	}
}

var (
	levelRE = regexp.MustCompile(`(?:^| )level=(\S+)`)
	msgRE   = regexp.MustCompile(`(?:^| )msg=("(?:[^"\\]|\\.)*"|\S+)`)
	addrRE  = regexp.MustCompile(`(?:^| )addr=(\S+)`)
)

func (s *logSink) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var debug string
	for sc.Scan() {
		line := sc.Text()
		var level, msg string
		if m := levelRE.FindStringSubmatch(line); m != nil {
			level = m[1]
		}
		if m := msgRE.FindStringSubmatch(line); m != nil {
			msg = m[1]
			if u, err := strconv.Unquote(msg); err == nil {
				msg = u
			}
		}
		// The line is recorded before the listening address is sent, so a
		// test woken by that address finds the line in matching.
		s.mu.Lock()
		s.counts[msg]++
		s.levels[level]++
		s.lines++
		if len(s.last) < cap(s.last) {
			s.last = append(s.last, line)
		} else {
			s.last[s.next] = line
			s.next = (s.next + 1) % len(s.last)
		}
		s.mu.Unlock()
		switch msg {
		case "debug server":
			if m := addrRE.FindStringSubmatch(line); m != nil {
				debug = m[1]
			}
		case "listening":
			if m := addrRE.FindStringSubmatch(line); m != nil {
				select {
				case s.listening <- [2]string{m[1], debug}:
				default:
				}
			}
		}
	}
}

// count returns how many records had the message msg.
func (s *logSink) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[msg]
}

// level returns how many records had the level, "" for lines that were not
// log records (a panic, say).
func (s *logSink) level(l string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.levels[l]
}

// matching returns the last lines that contain sub.
func (s *logSink) matching(sub string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.last {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

func (s *logSink) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := append(slices.Clone(s.last[s.next:]), s.last[:s.next]...)
	return fmt.Sprintf("(%d lines in all)\n%s", s.lines, strings.Join(lines, "\n"))
}

// Client side.

const ioTimeout = 10 * time.Second

var answer = []byte(server.Answer)

// answers is the answer repeated, a multiple of its length: a stream of
// answers is checked by comparing it with a window of this.
var answers = bytes.Repeat(answer, 4096)

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip sends one message and waits for its answer.
func roundTrip(c net.Conn, msg string) (time.Duration, error) {
	start := time.Now()
	c.SetDeadline(start.Add(ioTimeout))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return 0, err
	}
	if err := readAnswers(c, 1); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// readAnswers reads exactly n answers.
func readAnswers(c net.Conn, n int) error {
	var buf [64 * len(server.Answer)]byte
	for n > 0 {
		k := min(n, 64)
		if _, err := io.ReadFull(c, buf[:k*len(answer)]); err != nil {
			return fmt.Errorf("reading %d more answers: %w", n, err)
		}
		if !bytes.Equal(buf[:k*len(answer)], answers[:k*len(answer)]) {
			return fmt.Errorf("got %q, want answers", buf[:k*len(answer)])
		}
		n -= k
	}
	return nil
}

// expectEOF reads until the server's FIN; anything else is an error.
func expectEOF(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	var b [64]byte
	n, err := c.Read(b[:])
	if n > 0 {
		return fmt.Errorf("got %q, want EOF", b[:n])
	}
	if err != io.EOF {
		return fmt.Errorf("got %v, want EOF", err)
	}
	return nil
}

// reset closes c with a reset (SO_LINGER 0) instead of a FIN.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// prober is a healthy client measuring round trips while a test attacks
// the server.
type prober struct {
	stop chan struct{}
	done chan struct{}
	rtts []time.Duration
	err  error
}

func startProber(t *testing.T, addr string, every time.Duration) *prober {
	t.Helper()
	c := dial(t, addr)
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

// finish stops the prober and returns its round trips, sorted.
func (pr *prober) finish() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.done
	slices.Sort(pr.rtts)
}

// check stops the prober and fails the test if a round trip failed, if the
// slowest percent took p99 or longer, or the slowest max or longer.
func (pr *prober) check(t *testing.T, p99, max time.Duration) {
	t.Helper()
	pr.finish()
	if pr.err != nil {
		t.Fatalf("healthy client: %v", pr.err)
	}
	if len(pr.rtts) < 10 {
		t.Fatalf("healthy client made %d round trips, want 10 or more", len(pr.rtts))
	}
	n := len(pr.rtts)
	t.Logf("healthy client: %d round trips, median %v, p99 %v, max %v", n,
		pr.rtts[n/2], pr.rtts[n*99/100], pr.rtts[n-1])
	if got := pr.rtts[n*99/100]; got >= p99 {
		t.Errorf("healthy client's 99th percentile round trip took %v, want < %v", got, p99)
	}
	if got := pr.rtts[n-1]; got >= max {
		t.Errorf("healthy client's slowest round trip took %v, want < %v", got, max)
	}
}

// A healthy client's round trips while another client misbehaves: 99% of
// them under healthyRTT, every one under slowestRTT. Unloaded a round trip
// takes tens of microseconds; the bounds leave room for a noisy shared
// machine (a stall of the test process itself counts too) and are still
// far below the protocol's "well under a second".
const (
	healthyRTT = 100 * time.Millisecond
	slowestRTT = 500 * time.Millisecond
)

// TestDebugVars checks the expvar counters an operator reads.
func TestDebugVars(t *testing.T) {
	p := startServer(t, 0)
	v := p.vars(t)
	for _, k := range []string{"accepted", "rejected", "open", "messages", "bytes_in", "bytes_out",
		"backpressure", "idle_closed", "resets", "accept_errors"} {
		if _, ok := v.Tcpoll[k]; !ok {
			t.Errorf("tcpoll.%s missing from /debug/vars", k)
		}
	}
	if v.Goroutines <= 0 {
		t.Errorf("goroutines = %d, want > 0", v.Goroutines)
	}

	c := dial(t, p.addr)
	if _, err := roundTrip(c, "hello"); err != nil {
		t.Fatal(err)
	}
	p.waitVars(t, 5*time.Second, "accepted 1, open 1, messages 1, bytes_in 6, bytes_out 24", func(v debugVars) bool {
		s := v.Tcpoll
		return s["accepted"] == 1 && s["open"] == 1 && s["messages"] == 1 && s["bytes_in"] == 6 && s["bytes_out"] == 24
	})
	io.WriteString(c, "close\n")
	var b [len(server.Closing)]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != server.Closing {
		t.Fatalf("got %q, %v; want %q", b, err, server.Closing)
	}
	if err := expectEOF(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p.waitVars(t, 5*time.Second, "open 0, messages 2, bytes_in 12, bytes_out 31", func(v debugVars) bool {
		s := v.Tcpoll
		return s["open"] == 0 && s["accepted"] == 1 && s["messages"] == 2 && s["bytes_in"] == 12 && s["bytes_out"] == 31 &&
			s["resets"] == 0 && s["rejected"] == 0
	})
}

// TestClientResets resets connections while the server holds their unread
// answers, half a message, or output it is still writing: the server lives
// on, the other clients do not notice, and each connection's descriptor and
// slot are freed.
func TestClientResets(t *testing.T) {
	p := startServer(t, 0)
	pr := startProber(t, p.addr, 5*time.Millisecond)
	p.waitVars(t, 5*time.Second, "the healthy client open", func(v debugVars) bool { return v.Tcpoll["open"] == 1 })
	fds0 := p.steadyFDs(t)
	start := time.Now()

	kinds := []struct {
		name string
		run  func(c *net.TCPConn) error
	}{
		{"nothing sent", func(c *net.TCPConn) error { return nil }},
		{"unread answers", func(c *net.TCPConn) error {
			// 1000 answers wait in the kernel; the client reads one.
			c.Write(bytes.Repeat([]byte("x\n"), 1000))
			return readAnswers(c, 1)
		}},
		{"mid-message", func(c *net.TCPConn) error {
			io.WriteString(c, "hello\nunfinish")
			if err := readAnswers(c, 1); err != nil {
				return err
			}
			_, err := io.WriteString(c, "ed message, still no LF")
			time.Sleep(time.Millisecond) // let the server read it
			return err
		}},
		{"mid-write", func(c *net.TCPConn) error {
			// 4.8 MB of answers to 200,000 empty messages: the socket
			// buffers fill and the server holds MaxPendingOutput and
			// waits for the socket to be writable.
			c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			c.Write(bytes.Repeat([]byte("\n"), 200_000)) // times out: fine
			return readAnswers(c, 100)
		}},
	}
	const each = 25
	var wg sync.WaitGroup
	errs := make(chan error, len(kinds)*each)
	for _, k := range kinds {
		wg.Go(func() {
			for range each {
				c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(ioTimeout))
				if err := k.run(c.(*net.TCPConn)); err != nil {
					errs <- fmt.Errorf("%s: %w", k.name, err)
				}
				reset(c.(*net.TCPConn))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := int64(len(kinds) * each)

	// Every reset connection is closed and counted, its descriptor freed.
	v := p.waitVars(t, 5*time.Second, "only the healthy client open", func(v debugVars) bool {
		return v.Tcpoll["open"] == 1 && v.Tcpoll["accepted"] == total+1
	})
	t.Logf("%d connections reset by their clients, %d counted as resets", total, v.Tcpoll["resets"])
	if got := v.Tcpoll["resets"]; got < total-each || got > total {
		// "nothing sent" may end with a reset or a plain EOF.
		t.Errorf("resets = %d, want %d to %d", got, total-each, total)
	}
	p.waitFDs(t, 5*time.Second, fds0)
	p.alive(t)
	pr.check(t, healthyRTT, slowestRTT)
	// Connection errors are logged a few a second, not one per reset.
	secs := int(time.Since(start)/time.Second) + 1
	if got := p.log.count("connection error"); got > 10*(secs+1) {
		t.Errorf(`%d "connection error" lines for %d resets in %ds, want at most %d`, got, total, secs, 10*(secs+1))
	}
	if n := p.log.level("ERROR") + p.log.level(""); n > 0 {
		t.Errorf("server logged %d errors or stray lines", n)
	}
}

// TestDescriptorExhaustion runs the server with 64 descriptors and 200
// clients: it must not spin on the listener it cannot accept from, must
// keep serving the connections it has, and must take new ones as soon as
// descriptors free up.
func TestDescriptorExhaustion(t *testing.T) {
	const nofile, clients, freed = 64, 200, 20
	p := startServer(t, nofile, "-loops", "2")
	cpu0 := p.cpu(t)

	type result struct {
		i   int
		err error
	}
	conns := make([]*net.TCPConn, clients)
	results := make(chan result, clients)
	for i := range conns {
		// The kernel completes the handshake from the listen backlog
		// whether or not the server can accept.
		conns[i] = dial(t, p.addr)
		if _, err := io.WriteString(conns[i], "hi\n"); err != nil {
			t.Fatal(err)
		}
		go func() {
			conns[i].SetReadDeadline(time.Now().Add(60 * time.Second))
			results <- result{i, readAnswers(conns[i], 1)}
		}()
	}
	// collect gathers answers until none came for quiet, and returns when
	// the want-th came.
	served := make(map[int]bool)
	collect := func(quiet, limit time.Duration, want int) (reached time.Time) {
		t.Helper()
		end := time.After(limit)
		for {
			select {
			case r := <-results:
				if r.err != nil {
					t.Fatalf("client %d: %v", r.i, r.err)
				}
				served[r.i] = true
				if len(served) == want {
					reached = time.Now()
				}
				continue
			case <-time.After(quiet):
				if len(served) >= want {
					return reached
				}
			case <-end:
				return reached
			}
		}
	}
	collect(time.Second, 15*time.Second, 1)
	first := len(served)
	t.Logf("%d of %d clients served with %d descriptors", first, clients, nofile)
	if first == 0 || first >= clients-freed {
		t.Fatalf("%d of %d clients served, want some but not all: is RLIMIT_NOFILE %d in force?", first, clients, nofile)
	}

	// Saturated: every descriptor in use, the listener readable.
	c0 := p.cpu(t)
	const window = 2 * time.Second
	time.Sleep(window)
	used := p.cpu(t) - c0
	t.Logf("CPU while out of descriptors: %v in %v (%.1f%% of a core); %v since start",
		used, window, 100*used.Seconds()/window.Seconds(), p.cpu(t)-cpu0)
	if used > window/5 {
		t.Errorf("server used %v of CPU in %v while out of descriptors, want < 20%% of a core", used, window)
	}
	p.alive(t)

	// The connections it has are still served.
	for i := range served {
		if _, err := roundTrip(conns[i], "again"); err != nil {
			t.Fatalf("served client %d: %v", i, err)
		}
	}
	if got := p.log.count("accept failed"); got == 0 {
		t.Errorf(`no "accept failed" logged while out of descriptors`)
	}

	// Free some descriptors: as many waiting clients get served, promptly.
	closed := 0
	for i := range served {
		if closed == freed {
			break
		}
		conns[i].Close()
		closed++
	}
	start := time.Now()
	reached := collect(500*time.Millisecond, 10*time.Second, first+freed)
	if got := len(served) - first; got < freed {
		t.Fatalf("%d waiting clients served after %d connections closed, want %d", got, freed, freed)
	}
	took := reached.Sub(start)
	t.Logf("%d waiting clients served within %v after %d closed", len(served)-first, took, freed)
	// A loop whose connection closed accepts again at once; the other
	// retries after its back-off, at most a second.
	if took > 1500*time.Millisecond {
		t.Errorf("waiting clients were served %v after descriptors freed, want < 1.5s", took)
	}

	// Once every client is gone, the server is whole again.
	for _, c := range conns {
		c.Close()
	}
	v := p.waitVars(t, 10*time.Second, "no connection open", func(v debugVars) bool { return v.Tcpoll["open"] == 0 })
	if v.Tcpoll["accept_errors"] == 0 {
		t.Errorf("accept_errors = 0 after EMFILE, want > 0")
	}
	if _, err := roundTrip(dial(t, p.addr), "new"); err != nil {
		t.Fatal(err)
	}
	p.alive(t)
}

// TestMaxConns floods a server limited to 10 connections: the excess is
// closed at once without an answer and counted, the 10 keep being served,
// new clients get in when some leave, and the rejections cannot flood the
// log.
func TestMaxConns(t *testing.T) {
	const max, clients, flood = 10, 50, 1000
	p := startServer(t, 0, "-max-conns", strconv.Itoa(max))
	start := time.Now()

	type result struct {
		c       *net.TCPConn
		err     error // nil: answered
		elapsed time.Duration
	}
	results := make(chan result, clients)
	for range clients {
		go func() {
			t0 := time.Now()
			c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
			if err != nil {
				results <- result{err: err}
				return
			}
			tc := c.(*net.TCPConn)
			if _, err := io.WriteString(c, "hi\n"); err != nil {
				results <- result{tc, err, time.Since(t0)}
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			results <- result{tc, readAnswers(c, 1), time.Since(t0)}
		}()
	}
	var served []*net.TCPConn
	for range clients {
		r := <-results
		if r.c == nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		switch {
		case r.err == nil:
			served = append(served, r.c)
		case errors.Is(r.err, io.EOF), errors.Is(r.err, unix.ECONNRESET), errors.Is(r.err, io.ErrUnexpectedEOF):
			// Rejected: closed, with no answer.
			if r.elapsed > time.Second {
				t.Errorf("rejected client waited %v for the close, want < 1s", r.elapsed)
			}
		default:
			t.Errorf("client: %v, want an answer or the connection closed", r.err)
		}
	}
	if len(served) != max {
		t.Fatalf("%d of %d clients served, want %d", len(served), clients, max)
	}
	p.waitVars(t, 5*time.Second, "accepted 10, rejected 40, open 10", func(v debugVars) bool {
		s := v.Tcpoll
		return s["accepted"] == max && s["rejected"] == clients-max && s["open"] == max
	})
	for _, c := range served {
		if _, err := roundTrip(c, "still here"); err != nil {
			t.Fatal(err)
		}
	}

	// A flood of connections that are rejected: the log gets a few lines a
	// second, not one per connection.
	var wg sync.WaitGroup
	var next atomic.Int32
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= flood {
				c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	floodEnd := time.Now()
	p.waitVars(t, 10*time.Second, "every flood connection rejected", func(v debugVars) bool {
		return v.Tcpoll["rejected"] == clients-max+flood
	})
	time.Sleep(50 * time.Millisecond) // the last log line
	secs := int(time.Since(start)/time.Second) + 1
	lines := p.log.count("connection rejected")
	t.Logf(`%d rejections in %ds logged in %d lines`, clients-max+flood, secs, lines)
	if lines > 10*(secs+1) || lines == 0 {
		t.Errorf(`%d "connection rejected" lines for %d rejections in %ds, want 1 to %d`, lines, clients-max+flood, secs, 10*(secs+1))
	}

	// When some leave, new clients get in, and the limit holds again.
	for _, c := range served[:3] {
		c.Close()
	}
	p.waitVars(t, 5*time.Second, "open 7", func(v debugVars) bool { return v.Tcpoll["open"] == max-3 })
	for range 3 {
		if _, err := roundTrip(dial(t, p.addr), "new"); err != nil {
			t.Fatal(err)
		}
	}
	// The first rejection logged in a new second says how many were not.
	time.Sleep(time.Until(floodEnd.Add(1100 * time.Millisecond)))
	c := dial(t, p.addr)
	if _, err := roundTrip(c, "one too many"); err == nil {
		t.Errorf("client past MaxConns was answered")
	}
	time.Sleep(50 * time.Millisecond)
	if len(p.log.matching("suppressed=")) == 0 {
		t.Errorf(`no "suppressed=" count logged after a flood of rejections`)
	}
	for _, c := range served[3:] {
		if _, err := roundTrip(c, "still here"); err != nil {
			t.Fatal(err)
		}
	}
	p.alive(t)
}

// TestNonReadingClient pipelines megabytes of empty messages to the server
// and reads nothing: the server stops reading it instead of buffering the
// answers, others are answered promptly meanwhile, and once the client
// reads, every answer arrives.
func TestNonReadingClient(t *testing.T) { testNonReadingClient(t, startServer(t, 0), true) }

// testNonReadingClient is TestNonReadingClient against p; backpressure
// says whether p's engine counts the pause it makes (the stdnet engine
// pauses inside a blocking Write, which counts nothing).
func testNonReadingClient(t *testing.T, p *proc, backpressure bool) {
	total := size(20<<20, 50<<20) // bytes of "\n", one message each
	pr := startProber(t, p.addr, 10*time.Millisecond)
	slow := dial(t, p.addr)
	if _, err := roundTrip(slow, "warm up"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	rss0 := p.rss(t)

	nr := startNonReader(slow, total, slow.CloseWrite)
	nr.stall(t, p, rss0)
	if backpressure && p.vars(t).Tcpoll["backpressure"] == 0 {
		t.Errorf("backpressure = 0 while a client reads nothing, want > 0")
	}
	pr.check(t, healthyRTT, slowestRTT)

	// Reading the answers as fast as it can, the slow client competes with
	// the healthy one for the two cores of the machine, the server's loop
	// and the test's: answers stay under a second.
	pr = startProber(t, p.addr, 10*time.Millisecond)

	// Now read: every answer arrives, then the server's FIN.
	slow.SetReadDeadline(time.Now().Add(120 * time.Second))
	if err := nr.drain(t, slow); err != io.EOF {
		t.Errorf("reading the answers ended with %v, want EOF", err)
	}
	pr.check(t, 500*time.Millisecond, time.Second)
	p.alive(t)
}

// srcAddr spreads connections over the source addresses 127.0.0.2 to
// 127.0.0.50, so that tens of thousands of them never run out of ephemeral
// ports, TIME_WAIT included.
func srcAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%49))}
}

// dialMany opens n connections from several goroutines, closed when the
// test ends.
func dialMany(t *testing.T, addr string, n int) []*net.TCPConn {
	t.Helper()
	conns := make([]*net.TCPConn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range min(n, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				d := net.Dialer{Timeout: ioTimeout, LocalAddr: srcAddr(i)}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c.(*net.TCPConn)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("dialing %d connections: %v", n, err)
	}
	return conns
}

// TestSlowloris holds many connections that send one byte a second, and a
// few that send one and then nothing: a healthy client's answers are not
// slowed, the trickling ones stay open, and the idle ones are closed when
// the idle timeout says.
func TestSlowloris(t *testing.T) {
	n := size(1000, 5000)
	const idle = 100
	const timeout = 2 * time.Second
	p := startServer(t, n+idle+100, "-idle-timeout", timeout.String())

	// Dialed a few hundred at a time, each sending its first byte at once:
	// none may sit idle while the others are dialed.
	start := time.Now()
	var slow []*net.TCPConn
	var due []time.Time
	for len(slow) < n {
		for _, c := range dialMany(t, p.addr, min(n-len(slow), 250)) {
			c.Write([]byte{'a'})
			slow = append(slow, c)
			due = append(due, time.Now().Add(time.Second))
		}
	}
	t.Logf("%d trickling connections open in %v", n, time.Since(start))
	var sendErrs atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				for i, c := range slow {
					if now.After(due[i]) {
						c.SetWriteDeadline(now.Add(time.Second))
						if _, err := c.Write([]byte{'a'}); err != nil {
							sendErrs.Add(1)
						}
						due[i] = due[i].Add(time.Second)
					}
				}
			}
		}
	}()
	pr := startProber(t, p.addr, 10*time.Millisecond)

	// The idle ones send a byte, then wait for the server to close them.
	type closed struct {
		after time.Duration
		err   error
	}
	results := make(chan closed, idle)
	for _, c := range dialMany(t, p.addr, idle) {
		c.Write([]byte{'z'})
		sent := time.Now()
		go func() {
			err := expectEOF(c)
			results <- closed{time.Since(sent), err}
		}()
	}
	var afters []time.Duration
	for range idle {
		r := <-results
		if r.err != nil {
			t.Errorf("idle connection: %v", r.err)
		}
		afters = append(afters, r.after)
	}
	slices.Sort(afters)
	t.Logf("idle connections closed %v to %v after their last byte (timeout %v)", afters[0], afters[len(afters)-1], timeout)
	if afters[0] < timeout-50*time.Millisecond {
		t.Errorf("an idle connection was closed %v after its last byte, before the timeout %v", afters[0], timeout)
	}
	if got := afters[len(afters)-1]; got > timeout+1500*time.Millisecond {
		t.Errorf("an idle connection was closed %v after its last byte, want within 1.5s of the timeout %v", got, timeout)
	}

	// A second more of trickling, then the healthy client's verdict.
	time.Sleep(time.Second)
	pr.check(t, healthyRTT, slowestRTT)
	close(stop)
	<-stopped
	if n := sendErrs.Load(); n > 0 {
		t.Errorf("%d one-byte writes failed: trickling connections were closed", n)
	}
	v := p.vars(t)
	if got, want := v.Tcpoll["idle_closed"], int64(idle); got != want {
		t.Errorf("idle_closed = %d, want %d", got, want)
	}
	if got, want := v.Tcpoll["open"], int64(n+1); got != want {
		t.Errorf("open = %d, want %d (the trickling connections and the healthy one)", got, want)
	}
	// The trickling connections are still served: their LF ends a message.
	for _, c := range slow[:20] {
		if _, err := roundTrip(c, ""); err != nil {
			t.Fatalf("trickling connection: %v", err)
		}
	}
	p.alive(t)
}

// TestShutdownUnderLoad sends SIGTERM while 500 clients pipeline: every
// message that reached the server before the signal is answered, every
// connection gets whole answers and then a FIN, and the process exits 0
// within its shutdown timeout.
func TestShutdownUnderLoad(t *testing.T) {
	const clients, streamers, burst = 500, 20, 32
	const grace = 5 * time.Second
	p := startServer(t, clients+streamers+100, "-shutdown-timeout", grace.String())
	conns := dialMany(t, p.addr, clients+streamers)

	var signaled atomic.Bool
	type result struct {
		kind            string
		sent, owed, got int // messages sent, sent before the signal, answered
		err             error
	}
	results := make(chan result, clients+streamers)
	var ready sync.WaitGroup
	ready.Add(clients + streamers)

	// readAll reads answers until the server's FIN, checking that they are
	// whole and intact; it stops early once want bytes arrived.
	readAll := func(c net.Conn, got *int, want int) error {
		buf := make([]byte, 4096)
		for want < 0 || *got < want {
			n, err := c.Read(buf[:min(len(buf), len(answers)-len(answer))])
			off := *got % len(answer)
			if !bytes.Equal(buf[:n], answers[off:off+n]) {
				return fmt.Errorf("got %q after %d bytes, want answers", buf[:n], *got)
			}
			*got += n
			if err == io.EOF {
				if *got%len(answer) != 0 {
					return fmt.Errorf("connection ended %d bytes into an answer", *got%len(answer))
				}
				return io.EOF
			}
			if err != nil {
				return err
			}
		}
		return nil
	}

	// Pipelining clients: two bursts of messages in flight; each write of
	// a burst is followed by reading the answers to the one before. A burst
	// written before the signal is in the server's receive queue when the
	// server gets it (loopback delivers at once, and two bursts are far
	// below the window), so it must be answered.
	msgs := bytes.Repeat([]byte("pipelined message\n"), burst)
	for _, c := range conns[:clients] {
		go func() {
			r := result{kind: "pipelining"}
			isReady := sync.OnceFunc(ready.Done)
			defer isReady()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			gotBytes := 0
			for i := 0; ; i++ {
				if i == 2 {
					isReady()
				}
				if _, err := c.Write(msgs); err != nil {
					// Writing after the server closed: its FIN must still
					// be read below.
					break
				}
				r.sent += burst
				if !signaled.Load() {
					r.owed += burst
				}
				if err := readAll(c, &gotBytes, (r.sent-burst)*len(answer)); err != nil {
					r.err = err
					break
				}
			}
			if r.err == nil {
				r.err = readAll(c, &gotBytes, -1)
			}
			if r.err == io.EOF {
				r.err = nil
			}
			r.got = gotBytes / len(answer)
			c.Close()
			results <- r
		}()
	}
	// Streaming clients write without waiting for answers and read them
	// concurrently; they must not keep the server from stopping.
	for _, c := range conns[clients:] {
		go func() {
			r := result{kind: "streaming"}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var sent atomic.Int64
			go func() {
				chunk := bytes.Repeat([]byte("streamed\n"), 1000)
				for {
					// Counted before: part of a failed write may be answered.
					sent.Add(1000)
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
			gotBytes := 0
			r.err = readAll(c, &gotBytes, len(answer))
			ready.Done()
			if r.err == nil {
				r.err = readAll(c, &gotBytes, -1)
			}
			if r.err == io.EOF {
				r.err = nil
			}
			r.got = gotBytes / len(answer)
			c.Close()
			r.sent = int(sent.Load())
			results <- r
		}()
	}
	ready.Wait()
	time.Sleep(300 * time.Millisecond) // under load

	// The server is usually faster than these clients and has read all
	// they sent. Stopped for a moment, it falls behind: when SIGTERM
	// comes, every client's last burst waits unread in its socket.
	if err := unix.Kill(p.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	signaled.Store(true)
	sigAt := time.Now()
	if err := unix.Kill(p.pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(p.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("server still running %v after SIGTERM", grace+5*time.Second)
	}
	took := time.Since(sigAt)
	t.Logf("server exited %v after SIGTERM: %v", took, p.werr)
	if p.werr != nil {
		t.Errorf("server exited with %v, want exit status 0", p.werr)
	}
	if took > grace {
		t.Errorf("server took %v to stop, want < %v (-shutdown-timeout)", took, grace)
	}

	var sent, owed, got int
	for i := range clients + streamers {
		r := <-results
		if r.err != nil {
			t.Errorf("%s client %d (%d sent, %d answered): %v", r.kind, i, r.sent, r.got, r.err)
		}
		if r.got < r.owed || r.got > r.sent {
			t.Errorf("%s client %d: %d answers, want %d to %d (sent before the signal, sent in all)", r.kind, i, r.got, r.owed, r.sent)
		}
		sent += r.sent
		owed += r.owed
		got += r.got
	}
	t.Logf("%d messages sent, %d of them before the signal, %d answered", sent, owed, got)
}

// TestSignalStorm sends SIGURG and SIGWINCH to every thread of the server,
// in a tight loop, while clients exchange messages: the signals interrupt
// epoll_wait and any other blocking call, and not one answer may be lost.
func TestSignalStorm(t *testing.T) {
	const clients = 50
	dur := time.Duration(size(2, 20)) * time.Second
	p := startServer(t, 0)
	conns := dialMany(t, p.addr, clients)

	stop := make(chan struct{})
	var signals atomic.Int64
	var sigErr error
	sigDone := make(chan struct{})
	go func() {
		defer close(sigDone)
		task := fmt.Sprintf("/proc/%d/task", p.pid)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ents, err := os.ReadDir(task)
			if err != nil {
				sigErr = err
				return
			}
			for _, e := range ents {
				tid, _ := strconv.Atoi(e.Name())
				for _, sig := range []unix.Signal{unix.SIGURG, unix.SIGWINCH} {
					// ESRCH: the thread just exited.
					if err := unix.Tgkill(p.pid, tid, sig); err != nil && err != unix.ESRCH {
						sigErr = err
						return
					}
					signals.Add(1)
				}
			}
		}
	}()

	type result struct {
		sent, answered int
		err            error
	}
	results := make(chan result, clients)
	end := time.Now().Add(dur)
	for i, c := range conns {
		go func() {
			var r result
			defer func() { results <- r }()
			var msgs bytes.Buffer
			for round := 0; time.Now().Before(end); round++ {
				// Bursts of 1 to 16 messages, and pauses, so that the
				// loops are sometimes busy and sometimes in epoll_wait.
				k := 1 + (i+round)%16
				msgs.Reset()
				for j := range k {
					fmt.Fprintf(&msgs, "client %d round %d message %d\r\n", i, round, j)
				}
				c.SetDeadline(time.Now().Add(ioTimeout))
				if _, r.err = c.Write(msgs.Bytes()); r.err != nil {
					return
				}
				r.sent += k
				if r.err = readAnswers(c, k); r.err != nil {
					return
				}
				r.answered += k
				if round%4 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	var sent, answered int
	for range clients {
		r := <-results
		if r.err != nil {
			t.Errorf("client: %v", r.err)
		}
		sent += r.sent
		answered += r.answered
	}
	close(stop)
	<-sigDone
	if sigErr != nil {
		t.Fatal(sigErr)
	}
	t.Logf("%d signals during %d messages, %d answered", signals.Load(), sent, answered)
	if sent != answered {
		t.Errorf("%d messages sent, %d answered, want all", sent, answered)
	}
	if signals.Load() < 1000 {
		t.Errorf("only %d signals sent, want a storm", signals.Load())
	}
	p.alive(t)
	v := p.vars(t)
	if v.Tcpoll["resets"] != 0 || v.Tcpoll["accept_errors"] != 0 || v.Tcpoll["open"] != clients {
		t.Errorf("counters %v, want no resets, no accept errors, %d open", v.Tcpoll, clients)
	}
	if n := p.log.level("WARN") + p.log.level("ERROR") + p.log.level(""); n > 0 {
		t.Errorf("server logged %d warnings, errors or stray lines", n)
	}
}
