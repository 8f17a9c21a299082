//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/storm"
	"golang.org/x/sys/unix"
)

// The storm tests run tcpoll built with -race: the bugs they look for are
// a connection freed twice, or used by one loop while another frees it,
// and the race detector names those at the first occurrence, where the
// symptoms (a loop spinning, a client never answered) come later or not at
// all. That binary is slower and is built only when a storm test runs;
// the other tests keep the plain one, which is what operators run.
var raceBuild struct {
	once sync.Once
	bin  string
	err  error
}

// raceBinary builds tcpoll with -race once, next to the plain binary.
func raceBinary(t *testing.T) string {
	t.Helper()
	raceBuild.once.Do(func() {
		bin := filepath.Join(filepath.Dir(tcpollBin), "tcpoll-race")
		build := exec.Command("go", "build", "-race", "-tags", binTags(), "-o", bin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			raceBuild.err = fmt.Errorf("building tcpoll -race: %v\n%s", err, out)
			return
		}
		raceBuild.bin = bin
	})
	if raceBuild.err != nil {
		t.Fatal(raceBuild.err)
	}
	return raceBuild.bin
}

// raceServer is a `tcpoll serve` built with -race, whose race reports go
// to files of their own.
type raceServer struct {
	*proc
	reports string // GORACE log_path: reports go to reports.PID
}

// startRaceServer starts the -race tcpoll with flags. The race detector
// goes on after a report (halt_on_error=0), so that every report is
// counted, and exits at once (atexit_sleep_ms=0) with status 66 if it
// reported any.
func startRaceServer(t *testing.T, flags ...string) *raceServer {
	t.Helper()
	bin := raceBinary(t)
	reports := filepath.Join(t.TempDir(), "race")
	env := []string{"GORACE=halt_on_error=0 atexit_sleep_ms=0 log_path=" + reports}
	return &raceServer{startServerBin(t, bin, env, 0, flags...), reports}
}

// races returns how many data races the server has reported, and the
// first report.
func (s *raceServer) races(t *testing.T) (int, string) {
	t.Helper()
	files, err := filepath.Glob(s.reports + ".*")
	if err != nil {
		t.Fatal(err)
	}
	const warning = "WARNING: DATA RACE"
	n, first := 0, ""
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(b, []byte(warning))
		if i := bytes.Index(b, []byte(warning)); i >= 0 && first == "" {
			report, _, _ := strings.Cut(string(b[i:]), "\n==================")
			first = report
		}
	}
	return n, first
}

// crashes returns the lines of the server's log that tell of a fatal error
// or a panic, and how many lines were not log records at all: with race
// reports in their own files, any such line is the runtime's.
func (s *raceServer) crashes() ([]string, int) {
	var lines []string
	for _, sub := range []string{"fatal error", "panic"} {
		lines = append(lines, s.log.matching(sub)...)
	}
	return lines, s.log.level("")
}

// aliveAfter fails the test now if the server has exited, with its race
// reports and crash lines.
func (s *raceServer) aliveAfter(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.exited:
		races, first := s.races(t)
		crashes, _ := s.crashes()
		t.Fatalf("server exited during %s (%v) with %d race reports and these lines:\n%s\nthe first race report:\n%s",
			what, s.werr, races, strings.Join(crashes, "\n"), first)
	default:
	}
}

// terminate sends SIGTERM and waits up to limit for the server to exit; it
// returns how long that took, or false if it did not.
func (s *raceServer) terminate(t *testing.T, limit time.Duration) (time.Duration, bool) {
	t.Helper()
	sigAt := time.Now()
	if err := unix.Kill(s.pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
		return time.Since(sigAt), true
	case <-time.After(limit):
		return limit, false
	}
}

// checkClean fails the test if the server reported a data race, crashed,
// or did not exit 0 in time after SIGTERM (took, exited from terminate).
func (s *raceServer) checkClean(t *testing.T, took time.Duration, exited bool, grace time.Duration) {
	t.Helper()
	races, first := s.races(t)
	crashes, stray := s.crashes()
	switch {
	case !exited:
		t.Errorf("server still running %v after SIGTERM (-shutdown-timeout %v)", took, grace)
	case s.werr != nil:
		t.Errorf("server exited %v after SIGTERM with %v, want exit status 0 (66 is the race detector's)", took.Round(time.Millisecond), s.werr)
	case took > grace:
		t.Errorf("server took %v to stop, want < %v (-shutdown-timeout)", took, grace)
	}
	if races > 0 {
		t.Errorf("server reported %d data races; the first:\n%s", races, first)
	}
	if len(crashes) > 0 || stray > 0 {
		t.Errorf("server printed %d lines that are not log records; fatal errors and panics among the last:\n%s",
			stray, strings.Join(crashes, "\n"))
	}
}

// stormConfig is the storm of the tests: the defaults of package storm
// (48 storm clients, 16 polite ones, up to 200 messages before "close")
// for dur, a fixed seed, and I/O that may take 2 s at most: a server
// that takes longer to answer a polite client is broken anyway.
func stormConfig(addr string, dur time.Duration) storm.Config {
	return storm.Config{Addr: addr, Duration: dur, Seed: 12, Timeout: 2 * time.Second}
}

// TestResetStorm storms the -race server for 4 s (20 s with TCPOLL_LONG=1),
// as in issue 12: 48 clients connect, send up to 200 messages and "close"
// or half a message, half-close or not, pipelined or not, and reset the
// connection at once, after up to 200µs, or after reading to the server's
// FIN; 16 polite clients send "hi" and read the answer meanwhile. Every polite client is answered, no race is
// reported, the server's CPU is idle within a second of the storm's end,
// no descriptor is leaked, and SIGTERM stops it with exit status 0. With
// a small -max-pending-output, answers queue and reading pauses on the
// connections being reset.
func TestResetStorm(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags []string
	}{
		{"default", nil},
		{"max-pending-output 1024", []string{"-max-pending-output", "1024"}},
	} {
		t.Run(c.name, func(t *testing.T) { testStorm(t, c.flags...) })
	}
}

// checkStormResult fails t unless every polite client (what names them)
// was answered whole and every dial of the storm's succeeded; and, unless
// drainFails, no storm connection failed before its reset.
func checkStormResult(t *testing.T, res storm.Result, what string, drainFails bool) {
	t.Helper()
	if res.PoliteFailures > 0 || res.Polite == 0 || res.PoliteAnswers != res.Polite {
		t.Errorf("%d of %d %s failed (%d answers checked); the first few:\n%v",
			res.PoliteFailures, res.Polite, what, res.PoliteAnswers, errors.Join(res.PoliteErrors...))
	}
	if (res.StormFailures > 0 && !drainFails) || res.StormDialErrors > 0 {
		t.Errorf("%d storm connections failed before their reset, %d dials failed; the first few:\n%v",
			res.StormFailures, res.StormDialErrors, errors.Join(res.StormErrors...))
	}
}

// checkIdle fails t if p uses 50 ms of CPU or more in the next second,
// and returns what it used: called a second after a storm, the server
// must be idle again.
func checkIdle(t *testing.T, p *proc) time.Duration {
	t.Helper()
	c0 := p.cpu(t)
	time.Sleep(time.Second)
	cpu := p.cpu(t) - c0
	if cpu >= 50*time.Millisecond {
		t.Errorf("server used %v of CPU in the second that started 1 s after the storm, want < 50ms", cpu)
	}
	return cpu
}

func testStorm(t *testing.T, flags ...string) {
	dur := time.Duration(size(4, 20)) * time.Second
	const grace = 3 * time.Second
	s := startRaceServer(t, append([]string{"-shutdown-timeout", grace.String()}, flags...)...)
	fds0 := s.steadyFDs(t)

	res, err := storm.Run(context.Background(), stormConfig(s.addr, dur))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	t.Logf("storm: %v", res)
	// The evio engine answers nothing at EOF and resets instead of
	// lingering after "close" (server/engine_evio.go): its storm
	// connections that drain fail by design.
	checkStormResult(t, res, "polite clients", strings.Contains(os.Getenv("TCPOLL_TAGS"), "evio"))

	// Idle again: the second that starts a second after the storm.
	time.Sleep(time.Until(end.Add(time.Second)))
	s.aliveAfter(t, "the storm")
	cpu := checkIdle(t, s.proc)

	// Every descriptor back: by now a connection the server closed has
	// had its client's reset, or its 2 s linger is over.
	fds := s.fds(t)
	for deadline := time.Now().Add(2 * time.Second); fds != fds0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		fds = s.fds(t)
	}
	if fds != fds0 {
		t.Errorf("server holds %d descriptors after the storm, %d before", fds, fds0)
	}

	took, exited := s.terminate(t, grace+2*time.Second)
	races, _ := s.races(t)
	t.Logf("after the storm: %d race reports, CPU %v in a second, %d polite failures, descriptors %d (%d before); "+
		"SIGTERM: exited %v after %v (%v)",
		races, cpu, res.PoliteFailures, fds, fds0, exited, took.Round(time.Millisecond), s.werr)
	s.checkClean(t, took, exited, grace)
}

// TestResetStormShutdown sends SIGTERM in the middle of the storm: the -race
// server stops accepting, ends every connection (lingering, half-closed,
// paused, reset) and exits 0 within its shutdown timeout, with no race
// reported.
func TestResetStormShutdown(t *testing.T) {
	const grace = 5 * time.Second
	s := startRaceServer(t, "-shutdown-timeout", grace.String())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan storm.Result, 1)
	go func() {
		// Until canceled once the server is gone: the last
		// connections are refused, and that is not checked.
		res, _ := storm.Run(ctx, stormConfig(s.addr, time.Minute))
		done <- res
	}()
	time.Sleep(time.Duration(size(2, 10)) * time.Second)
	s.aliveAfter(t, "the storm")
	took, exited := s.terminate(t, grace+2*time.Second)
	cancel()
	res := <-done
	races, _ := s.races(t)
	t.Logf("storm: %v", res)
	t.Logf("%d race reports; SIGTERM during the storm: exited %v after %v (%v)",
		races, exited, took.Round(time.Millisecond), s.werr)
	s.checkClean(t, took, exited, grace)
}
