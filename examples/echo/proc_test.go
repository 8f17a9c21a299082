package main

import (
	"bufio"
	"bytes"
	"fmt"
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

// echoBin is the echo command, built once by TestMain.
var echoBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "echo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	echoBin = filepath.Join(dir, "echo")
	if runtime.GOOS == "windows" {
		echoBin += ".exe"
	}
	args := append(append([]string{"build"}, buildFlags()...), "-o", echoBin, ".")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building echo: %v\n", err)
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

// proc is a running echo process.
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

// startEcho runs the echo command on 127.0.0.1, a free port, with args,
// and waits for its "listening on" line. The test's cleanup stops it.
func startEcho(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(echoBin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
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
		t.Fatalf("echo exited at start: %v\n%s", p.werr, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("echo printed no address in 30s\n%s", p.stderr.String())
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
			t.Errorf("echo still ran 20s after SIGTERM; killed")
		}
		if ok := p.exitOK; (ok == nil && p.werr != nil) || (ok != nil && !ok(p.werr)) {
			t.Errorf("echo exited: %v", p.werr)
		}
		if s := p.stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
			t.Errorf("echo's standard error:\n%s", s)
		} else if t.Failed() {
			t.Logf("echo's standard error:\n%s", s)
		}
	})
	return p.stderr.String()
}
