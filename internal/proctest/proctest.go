// Package proctest runs a command built from the package under test as a
// process of its own, for the examples' tests: built like the test binary
// (its -race and -tags), started on a free loopback port, stopped with
// SIGTERM, and failed if it does not stop at once, cleanly, with no race
// report or panic on its standard error.
package proctest

import (
	"bufio"
	"bytes"
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

// BuildFlags are this test binary's -race and -tags, so that the process
// under test is built like the test: with the race detector when the
// tests run with it, and on the engine the tags select (-tags stdnet).
func BuildFlags() []string {
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

// Build builds the main package in the working directory (the package
// under test) as name, in a new temporary directory that remove deletes.
func Build(name string) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", name+"-test-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, name)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.Command("go", append(append([]string{"build"}, BuildFlags()...), "-o", bin, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// Proc is a running process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Addr is where it listens, from its "listening on ADDR" line.
	Addr string
	// ExitOK says whether the process may end with Err; nil means only
	// cleanly.
	ExitOK func(err error) bool
	// Exited is closed once the process has exited.
	Exited chan struct{}

	stderr   lockedBuffer
	werr     error
	stopOnce sync.Once
	// lifeline is the writing end of the process's standard input: it
	// reads EOF once Stop begins, or once the test process is gone.
	lifeline *os.File
}

// Err is how the process exited, once Exited is closed.
func (p *Proc) Err() error { return p.werr }

// Stderr is what the process wrote to its standard error so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

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

// Start runs bin on 127.0.0.1, a free port, with args, and waits for its
// "listening on" line. The test's cleanup stops it. On an engine that
// serves no Handler (-tags evio) the test is skipped. The process's
// standard input is a pipe that reaches EOF when Stop begins or the test
// process ends, however it ends: a process that takes that EOF as its
// end cannot outlive the test, and can be stopped where there are no
// signals.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	in, lifeline, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.lifeline = lifeline
	p.Cmd.Stdin, p.Cmd.Stdout, p.Cmd.Stderr = in, w, &p.stderr
	err = p.Cmd.Start()
	w.Close()
	in.Close()
	if err != nil {
		lifeline.Close()
		t.Fatal(err)
	}
	go func() {
		p.werr = p.Cmd.Wait()
		close(p.Exited)
	}()
	t.Cleanup(func() { p.Stop(t) })
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
	case p.Addr = <-addr:
	case <-p.Exited:
		if s := p.Stderr(); strings.Contains(s, "has no Handler") {
			p.ExitOK = func(error) bool { return true }
			t.Skip(strings.TrimSpace(s))
		}
		t.Fatalf("%s exited at start: %v\n%s", name, p.werr, p.Stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s printed no address in 30s\n%s", name, p.Stderr())
	}
	return p
}

// Stop ends the process with EOF on its standard input and SIGTERM, and
// fails the test unless it exits at once, cleanly, with no race report or
// panic. Where there are no signals, a process that does not take the
// EOF as its end is killed after 5s. It returns the process's standard
// error. Later calls only return it.
func (p *Proc) Stop(t testing.TB) string {
	t.Helper()
	p.stopOnce.Do(func() {
		p.lifeline.Close()
		wait := 20 * time.Second
		if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			wait = 5 * time.Second
		}
		select {
		case <-p.Exited:
		case <-time.After(wait):
			p.Cmd.Process.Kill()
			<-p.Exited
			t.Errorf("%s still ran %v after its stop; killed", p.Name, wait)
		}
		if ok := p.ExitOK; (ok == nil && p.werr != nil) || (ok != nil && !ok(p.werr)) {
			t.Errorf("%s exited: %v", p.Name, p.werr)
		}
		if s := p.Stderr(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
			t.Errorf("%s's standard error:\n%s", p.Name, s)
		} else if t.Failed() {
			t.Logf("%s's standard error:\n%s", p.Name, s)
		}
	})
	return p.Stderr()
}
