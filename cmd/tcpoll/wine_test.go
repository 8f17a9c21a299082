//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/storm"
)

// The tests in this file run tcpoll.exe, the Windows build of tcpoll (the
// stdnet engine on Go's net and Winsock), under Wine, and attack it from
// Linux as the other tests attack the Linux binary: every case of `tcpoll
// check`, in the clear and inside TLS, the reset storm and a client that
// never reads. TCPOLL_WINE names the runner of Windows programs
// (scripts/wine-exec, once scripts/wine-setup has made its prefix); without
// it they skip. The server's CPU and RSS are wine64's, in /proc: Wine runs
// the Windows process in it. Its sockets live in the wineserver, so its
// descriptors are not counted here.

var wineBuild struct {
	once sync.Once
	exe  string
	err  error
}

// startWineServer runs `tcpoll.exe serve` under TCPOLL_WINE on 127.0.0.1
// with expvar on and more flags after. It is killed when the test ends.
func startWineServer(t *testing.T, flags ...string) *proc {
	t.Helper()
	runner := os.Getenv("TCPOLL_WINE")
	if runner == "" {
		t.Skip("TCPOLL_WINE unset: the runner of Windows programs under Wine (scripts/wine-exec, after scripts/wine-setup)")
	}
	wineBuild.once.Do(func() {
		exe := filepath.Join(filepath.Dir(tcpollBin), "tcpoll.exe")
		build := exec.Command("go", "build", "-o", exe, ".")
		build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64")
		if out, err := build.CombinedOutput(); err != nil {
			wineBuild.err = fmt.Errorf("building tcpoll.exe: %v\n%s", err, out)
			return
		}
		wineBuild.exe = exe
	})
	if wineBuild.err != nil {
		t.Fatal(wineBuild.err)
	}
	args := append([]string{wineBuild.exe, "serve", "-addr", "127.0.0.1:0", "-debug-addr", "127.0.0.1:0"}, flags...)
	p := launch(t, exec.Command(runner, args...))
	if lines := p.log.matching("listening"); len(lines) != 1 || !strings.Contains(lines[0], " engine=stdnet") {
		t.Fatalf("listening lines %q, want one saying engine=stdnet", lines)
	}
	return p
}

// TestWineCheck plays every case of `tcpoll check` against tcpoll.exe:
// with the default -max-message and with 16, and inside TLS.
func TestWineCheck(t *testing.T) {
	cert, key := certFiles(t)
	for _, c := range []struct {
		name  string
		serve []string
		check []string
	}{
		{"plain", nil, nil},
		{"max-message=16", []string{"-max-message", "16"}, []string{"-max-message", "16"}},
		{"tls", []string{"-tls-cert", cert, "-tls-key", key}, []string{"-tls", "-tls-ca", cert}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startWineServer(t, c.serve...)
			out, errOut, err := tcpoll(t, "", append(append([]string{"check"}, c.check...), p.addr)...)
			if err != nil || !strings.Contains(out, "cases ok") {
				t.Fatalf("tcpoll check: %v\n%s%s", err, out, errOut)
			}
			t.Logf("%s", out[strings.LastIndexByte(strings.TrimSuffix(out, "\n"), '\n')+1:])
			p.alive(t)
		})
	}
}

// TestWineResetStorm storms tcpoll.exe as TestResetStorm storms the Linux
// binary, for 4 s (20 s with TCPOLL_LONG=1). Under Wine an AcceptEx that
// takes a connection its client reset fails with WSAENOTCONN: the server
// must take the next at once, count no accept error, and stay open to
// others. Every polite client is answered, no storm connection fails, the
// server is idle a second after, and a new client is served.
func TestWineResetStorm(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags []string
	}{
		{"default", nil},
		{"max-pending-output 1024", []string{"-max-pending-output", "1024"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startWineServer(t, c.flags...)
			dur := time.Duration(size(4, 20)) * time.Second
			res, err := storm.Run(context.Background(), stormConfig(p.addr, dur))
			if err != nil {
				t.Fatal(err)
			}
			end := time.Now()
			t.Logf("storm: %v", res)
			checkStormResult(t, res, "polite clients", false)

			time.Sleep(time.Until(end.Add(time.Second)))
			p.alive(t)
			checkIdle(t, p)
			if _, err := roundTrip(dial(t, p.addr), "after the storm"); err != nil {
				t.Fatalf("a new client after the storm: %v", err)
			}
			if n := p.vars(t).Tcpoll["accept_errors"]; n != 0 {
				t.Errorf("accept_errors = %d after the storm, want 0: a client's reset is not the listener's failure", n)
			}
			if got := p.log.count("accept failed"); got > 0 {
				t.Errorf(`%d "accept failed" lines logged, want none; the last: %q`, got, p.log.matching("accept failed"))
			}
		})
	}
}

// TestWineNonReadingClient is TestNonReadingClient against tcpoll.exe: a
// client pipelines 20 MB of empty messages and reads nothing; the server
// stops reading it instead of buffering the answers, a healthy client is
// answered meanwhile, and once the slow one reads, every answer arrives,
// then the FIN. The stdnet engine's pause is inside Write, so no
// backpressure is counted, and without TCP_NOTSENT_LOWAT the kernel holds
// a send buffer's worth more than on Linux.
func TestWineNonReadingClient(t *testing.T) { testNonReadingClient(t, startWineServer(t), false) }
