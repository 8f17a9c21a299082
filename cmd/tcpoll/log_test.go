//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stuckLogPipe is the capacity the tests give the server's stderr pipe:
// one page, the least Linux allows, so a few dozen records fill it.
const stuckLogPipe = 4096

// stuckProc is a `tcpoll serve` whose stdout and stderr are a pipe that the
// test stops reading once the server has logged its address: a terminal
// nobody scrolls, or `tcpoll serve 2>&1 | less` left alone.
type stuckProc struct {
	pid  int
	addr string
	r    *os.File      // the pipe's read end
	br   *bufio.Reader // holds what was read past the "listening" line

	exited chan struct{}
	werr   error
}

func startStuck(t *testing.T, flags ...string) *stuckProc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	raw, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Control(func(fd uintptr) { _, serr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, stuckLogPipe) })
	if serr != nil {
		t.Fatalf("F_SETPIPE_SZ: %v", serr)
	}
	args := append([]string{"serve", "-addr", "127.0.0.1:0"}, flags...)
	cmd := exec.Command(tcpollBin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	p := &stuckProc{pid: cmd.Process.Pid, r: r, br: bufio.NewReader(r), exited: make(chan struct{})}
	go func() {
		p.werr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	r.SetReadDeadline(time.Now().Add(15 * time.Second))
	for p.addr == "" {
		line, err := p.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the server's log for its address: %v", err)
		}
		if m := msgRE.FindStringSubmatch(line); m != nil && m[1] == "listening" {
			if a := addrRE.FindStringSubmatch(line); a != nil {
				p.addr = a[1]
			}
		}
	}
	r.SetReadDeadline(time.Time{})
	return p
}

// pending is how many bytes of log wait in the pipe (FIONREAD, which x/sys
// names TIOCINQ on Linux).
func (p *stuckProc) pending(t *testing.T) int {
	t.Helper()
	raw, err := p.r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	if ierr != nil {
		t.Fatalf("FIONREAD: %v", ierr)
	}
	return n
}

// drain reads the rest of the log in the background; lines returns what
// it read so far, and done is closed at EOF.
func (p *stuckProc) drain() (lines func() []string, done <-chan struct{}) {
	var mu sync.Mutex
	var got []string
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		for {
			line, err := p.br.ReadString('\n')
			if line != "" {
				mu.Lock()
				got = append(got, strings.TrimSuffix(line, "\n"))
				mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}, eof
}

// stop sends SIGTERM and waits, at most within, for the server to exit 0.
func (p *stuckProc) stop(t *testing.T, within time.Duration) {
	t.Helper()
	start := time.Now()
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		t.Logf("exited %v after SIGTERM: %v", time.Since(start).Round(time.Millisecond), p.werr)
		if p.werr != nil {
			t.Errorf("server exited with %v, want status 0", p.werr)
		}
	case <-time.After(within):
		t.Fatalf("server still running %v after SIGTERM", within)
	}
}

// stuckTimeout bounds each client call against a server whose log is
// stuck: far more than an answer takes, far less than the tests' own
// timeouts, so a loop stuck in a log call fails the test quickly.
const stuckTimeout = 2 * time.Second

// converse runs conns connections from 16 clients at once, each sending
// msgs messages one at a time, and returns every round trip, sorted.
func converse(t *testing.T, addr string, conns, msgs int) []time.Duration {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	var rtts []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			var mine []time.Duration
			defer func() {
				mu.Lock()
				rtts = append(rtts, mine...)
				mu.Unlock()
			}()
			for i := int(next.Add(1)); i <= conns; i = int(next.Add(1)) {
				c, err := net.DialTimeout("tcp", addr, stuckTimeout)
				if err != nil {
					errs <- err
					return
				}
				for j := range msgs {
					start := time.Now()
					c.SetDeadline(start.Add(stuckTimeout))
					if _, err := fmt.Fprintf(c, "connection %d message %d\n", i, j); err != nil {
						errs <- err
						c.Close()
						return
					}
					if err := readAnswers(c, 1); err != nil {
						errs <- fmt.Errorf("connection %d, message %d: %w", i, j, err)
						c.Close()
						return
					}
					mine = append(mine, time.Since(start))
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(rtts)
	return rtts
}

// TestLogStuck runs `tcpoll serve -v`, which logs every connection and
// every message, with its stderr on a pipe nobody reads: every answer still
// comes at once, the records that find the log's queue full are dropped,
// and once the pipe is read again the log says how many.
func TestLogStuck(t *testing.T) {
	conns, msgs := size(400, 4000), 5
	p := startStuck(t, "-v")
	rtts := converse(t, p.addr, conns, msgs)
	n := len(rtts)
	t.Logf("%d round trips with the log stuck: median %v, p99 %v, max %v", n,
		rtts[n/2], rtts[n*99/100], rtts[n-1])
	if n != conns*msgs {
		t.Fatalf("%d round trips, want %d", n, conns*msgs)
	}
	if got := rtts[n*99/100]; got >= healthyRTT {
		t.Errorf("99th percentile round trip took %v with the log stuck, want < %v", got, healthyRTT)
	}
	if got := rtts[n-1]; got >= slowestRTT {
		t.Errorf("slowest round trip took %v with the log stuck, want < %v", got, slowestRTT)
	}
	// The log was stuck indeed: the pipe is full, but for less than a
	// record.
	if got := p.pending(t); got < stuckLogPipe-512 {
		t.Fatalf("%d bytes of log wait in the pipe, want it full (%d)", got, stuckLogPipe)
	}

	// Read the log again; the next records say how many were dropped.
	lines, eof := p.drain()
	dropped := func() (n int64, recs int) {
		for _, l := range lines() {
			if m := droppedRE.FindStringSubmatch(l); m != nil {
				k, _ := strconv.ParseInt(m[1], 10, 64)
				n += k
				recs++
			}
		}
		return n, recs
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		converse(t, p.addr, 1, 1) // records to carry the count
		if n, _ := dropped(); n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop(t, 5*time.Second)
	select {
	case <-eof:
	case <-time.After(5 * time.Second):
		t.Fatal("the log did not end after the server exited")
	}

	all := lines()
	total, recs := dropped()
	// Each connection logs opened, closed and its messages.
	logged := int64(conns * (msgs + 2))
	t.Logf("%d log lines read after the stall; %d records dropped, counted in %d of them", len(all), total, recs)
	if total <= 0 || total >= logged {
		t.Errorf("%d records counted as dropped, want some of the %d logged:\n%s", total, logged, tailLines(all, 20))
	}
	var stopped bool
	for _, l := range all {
		m := levelRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("stray line in the log: %q", l)
			continue
		}
		if m[1] == "ERROR" {
			t.Errorf("error logged: %q", l)
		}
		if msg := msgRE.FindStringSubmatch(l); msg != nil && msg[1] == "stopped" {
			stopped = true
		}
	}
	if !stopped {
		t.Errorf(`no "stopped" record: the log was not flushed at exit:\n%s`, tailLines(all, 20))
	}
}

// TestLogStuckShutdown: SIGTERM ends a server whose stderr nobody reads,
// in about the second each flush of the log may wait.
func TestLogStuckShutdown(t *testing.T) {
	p := startStuck(t, "-v", "-shutdown-timeout", "10s")
	converse(t, p.addr, 100, 5)
	if got := p.pending(t); got < stuckLogPipe-512 {
		t.Fatalf("%d bytes of log wait in the pipe, want it full (%d)", got, stuckLogPipe)
	}
	p.stop(t, 5*time.Second)
}

var droppedRE = regexp.MustCompile(`(?:^| )dropped=(\d+)`)

func tailLines(lines []string, n int) string {
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
