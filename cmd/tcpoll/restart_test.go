//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/restart"
)

// readPid reads a pid file; 0 if it is missing or not complete.
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// waitPid waits until the pid file names a process other than old.
func waitPid(t *testing.T, path string, old int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if pid := readPid(path); pid != 0 && pid != old {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pid file still names %d after %v", old, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gone reports whether pid has exited: no such process, or a zombie
// waiting for its parent.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// killLater kills pid when the test ends unless it has exited: a process
// started by an upgrade is not the test's child, so launch's cleanup does
// not know it.
func killLater(t *testing.T, pid int) {
	t.Cleanup(func() {
		if !gone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// waitGone waits until pid has exited.
func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fdsOf counts a process's open descriptors.
func fdsOf(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fdTarget is what descriptor fd of process pid is ("" if none).
func fdTarget(pid, fd int) string {
	target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	return target
}

// ownFDs counts process pid's descriptors but those of foreign (see
// inheritedFDs) it still holds.
func ownFDs(t *testing.T, pid int, foreign map[int]string) int {
	n := fdsOf(t, pid)
	for fd, target := range foreign {
		if fdTarget(pid, fd) == target {
			n--
		}
	}
	return n
}

// inheritedFDs is the descriptors above 2 that process pid shares with
// this one: the same number naming the same pipe or socket. (A path names
// a file, not one opening of it: the runtimes of both processes hold the
// cgroup files open at the same numbers.)
func inheritedFDs(pid int) map[int]string {
	ents, _ := os.ReadDir("/proc/self/fd")
	same := make(map[int]string)
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		mine := fdTarget(os.Getpid(), fd)
		anon := strings.HasPrefix(mine, "pipe:") || strings.HasPrefix(mine, "socket:")
		if anon && mine == fdTarget(pid, fd) {
			same[fd] = mine
		}
	}
	return same
}

// fdList names what a process's descriptors are, for a failure report.
func fdList(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var list []string
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		list = append(list, e.Name()+"="+fdTarget(pid, fd))
	}
	return strings.Join(list, " ")
}

// TestUpgradeUnderLoad is the restart test: under churn and 200 pipelining
// clients, ten SIGHUPs, each sent once the previous upgrade is ready (the
// pid file names the new process). No client may see them: no refused
// dial, no reset, no lost answer; a pipelining connection the old process
// ends ends with a FIN after the answers to everything it sent. Then one
// server process remains, holding as many descriptors as a fresh one.
func TestUpgradeUnderLoad(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "tcpoll.pid")
	p := startServer(t, 0, "-pid-file", pidFile)
	if got := readPid(pidFile); got != p.pid {
		t.Fatalf("pid file names %d, want %d", got, p.pid)
	}
	// Descriptors the first server inherited from this test (leaked to it
	// by whatever started the test, not marked close-on-exec) are not the
	// server's, and its successors need not get them: os/exec passes the
	// files it is given, and in the child moves its own error pipe to the
	// number just above the highest of them (forkAndExecInChild1 in
	// syscall/exec_linux.go), whatever was there (seen under strace: a
	// leaked 251 overwritten when the readiness pipe was 250).
	foreign := inheritedFDs(p.pid)
	fresh := p.steadyFDs(t) - len(foreign)
	freshList := fdList(p.pid)

	run, err := restart.Start(context.Background(), restart.Config{Addr: p.addr, Churners: 32, LongLived: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Stop()
	time.Sleep(500 * time.Millisecond)

	const upgrades = 10
	pids := []int{p.pid}
	start := time.Now()
	for range upgrades {
		cur := pids[len(pids)-1]
		if err := syscall.Kill(cur, syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP to %d: %v", cur, err)
		}
		next := waitPid(t, pidFile, cur, 20*time.Second)
		killLater(t, next)
		pids = append(pids, next)
		// Traffic flows to the new process before the next upgrade.
		time.Sleep(300 * time.Millisecond)
	}
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	res := run.Stop()
	t.Logf("%d upgrades in %v: %v", upgrades, took.Round(time.Millisecond), res)
	for _, f := range res.Failures() {
		t.Error(f)
	}
	for _, e := range res.Errors {
		t.Log(e)
	}
	if res.LongCrossed > 0 {
		t.Errorf("%d bursts crossed a FIN: the old process closed before answering a burst on its way", res.LongCrossed)
	}
	if res.ChurnAnswered == 0 || res.LongMessages == 0 {
		t.Fatalf("no traffic: %v", res)
	}
	// Each upgrade ends the long-lived connections of the old process.
	if res.LongEnded < 200 {
		t.Errorf("long-lived connections ended by the old processes: %d, want at least 200", res.LongEnded)
	}

	select {
	case <-p.exited:
		if p.werr != nil {
			t.Errorf("the first server exited with %v", p.werr)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the first server did not exit")
	}
	last := pids[len(pids)-1]
	for _, pid := range pids[1 : len(pids)-1] {
		waitGone(t, pid, 15*time.Second)
	}
	if gone(last) {
		t.Fatalf("the last server, %d, is gone:\n%s", last, p.log.tail())
	}
	if n := p.log.count("handed over"); n != upgrades {
		t.Errorf("%d hand-overs logged, want %d", n, upgrades)
	}
	if n := p.log.count("upgrade failed; still serving"); n != 0 {
		t.Errorf("%d failed upgrades logged", n)
	}
	// The clients' last connections may still linger for a moment.
	deadline := time.Now().Add(5 * time.Second)
	for ownFDs(t, last, foreign) != fresh && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := ownFDs(t, last, foreign); got != fresh {
		t.Errorf("the last server holds %d descriptors of its own, a fresh one %d:\nlast:  %s\nfresh: %s",
			got, fresh, fdList(last), freshList)
	}
	syscall.Kill(last, syscall.SIGTERM)
	waitGone(t, last, 15*time.Second)
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("the pid file outlives the last server: %v", err)
	}
}

// waitLog waits until the server has logged msg n times.
func waitLog(t *testing.T, p *proc, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.log.count(msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q logged %d times, want %d:\n%s", msg, p.log.count(msg), n, p.log.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replaceBinary puts content at path the way an install does: a new file
// renamed over the old, so the running process keeps its own.
func replaceBinary(t *testing.T, path string, content []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeBrokenBinary: a SIGHUP whose new binary fails (exits, is not
// an executable, or never becomes ready) leaves the old process serving,
// and its clients see nothing; a later SIGHUP with a good binary upgrades.
func TestUpgradeBrokenBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tcpoll")
	good, err := os.ReadFile(tcpollBin)
	if err != nil {
		t.Fatal(err)
	}
	replaceBinary(t, bin, good, 0o755)
	pidFile := filepath.Join(dir, "tcpoll.pid")
	p := startServerBin(t, bin, nil, 0, "-pid-file", pidFile, "-upgrade-timeout", "2s")

	run, err := restart.Start(context.Background(), restart.Config{Addr: p.addr, Churners: 8, LongLived: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Stop()

	broken := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"exits at once", "#!/bin/sh\nexit 3\n", 0o755},
		{"not an executable", "\x7fELF garbage", 0o755},
		{"not executable at all", "#!/bin/sh\nexit 0\n", 0o644},
		{"never ready", "#!/bin/sh\nexec sleep 30\n", 0o755},
	}
	for i, b := range broken {
		replaceBinary(t, bin, []byte(b.content), b.mode)
		started := p.log.count("upgrading")
		syscall.Kill(p.pid, syscall.SIGHUP)
		if b.name == "never ready" {
			// A second SIGHUP while the first upgrade waits is ignored.
			waitLog(t, p, "upgrading", started+1)
			syscall.Kill(p.pid, syscall.SIGHUP)
			waitLog(t, p, "SIGHUP ignored: an upgrade is in progress", 1)
		}
		waitLog(t, p, "upgrade failed; still serving", i+1)
		p.alive(t)
		if got := readPid(pidFile); got != p.pid {
			t.Errorf("%s: pid file names %d, want %d", b.name, got, p.pid)
		}
	}
	if lines := p.log.matching("killed it"); len(lines) != 1 {
		t.Errorf("the child that never became ready: want one line saying it was killed, got %q", lines)
	}

	replaceBinary(t, bin, good, 0o755)
	syscall.Kill(p.pid, syscall.SIGHUP)
	next := waitPid(t, pidFile, p.pid, 20*time.Second)
	killLater(t, next)
	time.Sleep(300 * time.Millisecond)
	res := run.Stop()
	t.Logf("%v", res)
	for _, f := range res.Failures() {
		t.Error(f)
	}
	if res.LongCrossed > 0 {
		t.Errorf("%d bursts crossed a FIN", res.LongCrossed)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the old server did not exit after the good upgrade")
	}
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, next, 15*time.Second)
}

// successorPid is the process ID of the last successor the server logged
// starting ("upgrading").
func successorPid(t *testing.T, p *proc) int {
	t.Helper()
	lines := p.log.matching(" msg=upgrading ")
	if len(lines) == 0 {
		t.Fatalf("no upgrading line:\n%s", p.log.tail())
	}
	_, rest, _ := strings.Cut(lines[len(lines)-1], " new_pid=")
	pid, err := strconv.Atoi(strings.Fields(rest + " ")[0])
	if err != nil {
		t.Fatalf("no new_pid in %q", lines[len(lines)-1])
	}
	return pid
}

// waitComm waits until process pid runs the program named comm, as
// /proc/pid/comm names it.
func waitComm(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(b)) == comm {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d runs %q, want %q", pid, strings.TrimSpace(string(b)), comm)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUpgradeStopWhilePending: SIGTERM while a SIGHUP waits for a successor
// that never becomes ready starts the old process's graceful shutdown at
// once (a client's last message is answered, then it gets a FIN) and stops
// the successor beside it. The old process exits within -shutdown-timeout
// and not before the successor is gone: killed at that deadline if it
// ignores SIGTERM. A second SIGTERM ends both waits at once: for the
// successor, and for the client, which here does not close its end, so
// the old process would otherwise linger on it. (The old process used to
// keep serving while it gave the successor 15 s, longer than systemd's
// TimeoutStopSec, and ignored a second signal meanwhile.)
func TestUpgradeStopWhilePending(t *testing.T) {
	const grace = 5 * time.Second
	// The FIN comes well before the deadline, and so does the second signal.
	const prompt = 3 * time.Second
	good, err := os.ReadFile(tcpollBin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		successor  string        // a script; it never says it is ready
		second     bool          // SIGTERM again once the client has its FIN, and keep it open
		exitWithin time.Duration // of the last signal
		kills      int           // lines saying the successor was killed
	}{
		{name: "successor stops", successor: "#!/bin/sh\nexec sleep 30\n", exitWithin: prompt},
		// An ignored signal stays ignored across exec: sleep ignores SIGTERM.
		{name: "successor ignores SIGTERM", successor: "#!/bin/sh\ntrap '' TERM\nexec sleep 30\n",
			exitWithin: grace + 2*time.Second, kills: 1},
		{name: "second signal", successor: "#!/bin/sh\ntrap '' TERM\nexec sleep 30\n",
			second: true, exitWithin: time.Second, kills: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "tcpoll")
			replaceBinary(t, bin, good, 0o755)
			p := startServerBin(t, bin, nil, 0, "-shutdown-timeout", grace.String(), "-upgrade-timeout", "20s")
			c := dial(t, p.addr)
			if _, err := roundTrip(c, "before the upgrade"); err != nil {
				t.Fatal(err)
			}

			replaceBinary(t, bin, []byte(tc.successor), 0o755)
			syscall.Kill(p.pid, syscall.SIGHUP)
			waitLog(t, p, "upgrading", 1)
			child := successorPid(t, p)
			killLater(t, child)
			// Past the trap: a SIGTERM before it would end the shell.
			waitComm(t, child, "sleep")

			if _, err := io.WriteString(c, "just before the signal\n"); err != nil {
				t.Fatal(err)
			}
			syscall.Kill(p.pid, syscall.SIGTERM)
			last := time.Now()
			c.SetDeadline(last.Add(prompt))
			if err := readAnswers(c, 1); err != nil {
				t.Fatalf("the message sent just before SIGTERM: %v", err)
			}
			var b [64]byte
			if n, err := c.Read(b[:]); n > 0 || err != io.EOF {
				t.Fatalf("after the answer: %q, %v; want EOF within %v of SIGTERM", b[:n], err, prompt)
			}
			t.Logf("answer and FIN %v after SIGTERM", time.Since(last).Round(time.Millisecond))
			if tc.second {
				syscall.Kill(p.pid, syscall.SIGTERM)
				last = time.Now()
			} else {
				c.Close()
			}
			select {
			case <-p.exited:
			case <-time.After(tc.exitWithin):
				t.Fatalf("the old process still runs %v after the last signal", tc.exitWithin)
			}
			t.Logf("the old process exited %v after the last signal: %v", time.Since(last).Round(time.Millisecond), p.werr)
			// A shutdown cut short fails, so only an uncut one is checked.
			if !tc.second && p.werr != nil {
				t.Errorf("the old process exited with %v, want exit status 0", p.werr)
			}
			if !gone(child) {
				t.Errorf("the successor, %d, outlives the old process", child)
			}
			// The process has exited, but its last lines may still be in
			// the pipe.
			select {
			case <-p.logDone:
			case <-time.After(5 * time.Second):
				t.Fatal("the old process's output did not end")
			}
			if got := len(p.log.matching("killed it")); got != tc.kills {
				t.Errorf("%d lines saying the successor was killed, want %d", got, tc.kills)
			}
		})
	}
}

// notifySocket listens on a unix datagram socket for systemd's notify
// protocol, as systemd does for a Type=notify service.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

func expectNotify(t *testing.T, ch <-chan string, want func(string) bool, what string) string {
	t.Helper()
	select {
	case got := <-ch:
		if !want(got) {
			t.Fatalf("notification %q, want %s", got, what)
		}
		return got
	case <-time.After(15 * time.Second):
		t.Fatalf("no notification, want %s", what)
	}
	return ""
}

// TestSocketActivation: the server serves on the socket systemd passes
// (LISTEN_FDS, LISTEN_PID), connections made before it started included,
// and tells systemd its state over NOTIFY_SOCKET: READY=1 once serving;
// RELOADING=1, then MAINPID= and READY=1 for an upgrade; STOPPING=1.
func TestSocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // f holds the socket
	defer f.Close()

	// Connected and written before the server exists: the handshake is
	// done by the kernel, the connection waits in the accept queue.
	early, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if _, err := early.Write([]byte("before the server\n")); err != nil {
		t.Fatal(err)
	}

	sock, notes := notifySocket(t)
	pidFile := filepath.Join(t.TempDir(), "tcpoll.pid")
	// LISTEN_PID names the process that reads it; $$ is the shell's, and
	// exec keeps it.
	cmd := exec.Command("/bin/sh", "-c",
		`LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=tcpoll exec "$0" serve -debug-addr 127.0.0.1:0 -pid-file "$1"`,
		tcpollBin, pidFile)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.ExtraFiles = []*os.File{f}
	p := launch(t, cmd)
	f.Close()
	if p.addr != addr {
		t.Errorf("serves on %s, want the inherited %s", p.addr, addr)
	}
	if lines := p.log.matching("from=systemd"); len(lines) != 1 {
		t.Errorf("want one listening line saying from=systemd, got %q", lines)
	}
	early.SetDeadline(time.Now().Add(ioTimeout))
	if err := readAnswers(early, 1); err != nil {
		t.Fatalf("the connection queued before the server started: %v", err)
	}
	expectNotify(t, notes, func(s string) bool { return s == "READY=1" }, "READY=1")
	if _, err := roundTrip(dial(t, addr), "hi"); err != nil {
		t.Fatal(err)
	}

	syscall.Kill(p.pid, syscall.SIGHUP)
	expectNotify(t, notes, func(s string) bool {
		return strings.HasPrefix(s, "RELOADING=1\nMONOTONIC_USEC=")
	}, "RELOADING=1 and MONOTONIC_USEC=")
	next := waitPid(t, pidFile, p.pid, 20*time.Second)
	killLater(t, next)
	want := fmt.Sprintf("MAINPID=%d\nREADY=1", next)
	expectNotify(t, notes, func(s string) bool { return s == want }, strconv.Quote(want))
	if _, err := roundTrip(dial(t, addr), "after the upgrade"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the old server did not exit after the upgrade")
	}
	syscall.Kill(next, syscall.SIGTERM)
	expectNotify(t, notes, func(s string) bool { return s == "STOPPING=1" }, "STOPPING=1")
	waitGone(t, next, 15*time.Second)
}

// TestUpgradeFixedDebugAddr: the new process cannot bind the -debug-addr
// its predecessor holds until that one exits, which it does only after
// the new one serves; the upgrade must not fail on it, and the counters
// come back on the same address.
func TestUpgradeFixedDebugAddr(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := free.Addr().String()
	free.Close()
	pidFile := filepath.Join(t.TempDir(), "tcpoll.pid")
	// The later -debug-addr overrides startServer's.
	p := startServer(t, 0, "-pid-file", pidFile, "-debug-addr", debugAddr)
	syscall.Kill(p.pid, syscall.SIGHUP)
	next := waitPid(t, pidFile, p.pid, 20*time.Second)
	killLater(t, next)
	// Until the old process exits, the address is its own.
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the old process did not exit after the upgrade")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", debugAddr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new process serves no debug address after 10 s:\n%s", p.log.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(next, syscall.SIGTERM)
	waitGone(t, next, 15*time.Second)
}
