//go:build linux && !evio && !stdnet

package server_test

import (
	"context"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/storm"
	"github.com/tcpoll/poll/server"
)

// TestForkDuringStorm runs subprocesses while clients connect and reset.
// A child between fork and exec holds a copy of every descriptor, so a
// socket the server closes then lives on, and so does its epoll
// registration: its events can still arrive after the number went to a new
// connection, in this loop or another. The engine must tell them apart
// (the generation in the token); without that, loops touched each other's
// connections, lost answers and spun at a full CPU through a forced
// shutdown.
func TestForkDuringStorm(t *testing.T) {
	s := startServer(t, server.Config{Loops: 2, IdleTimeout: 3 * time.Second})
	var stop atomic.Bool
	var forks atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				exec.Command("/bin/true").Run()
				forks.Add(1)
			}
		})
	}
	res, err := storm.Run(context.Background(), storm.Config{
		Addr: s.Addr().String(), Duration: 4 * time.Second, Stormers: 32, Polite: 8,
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("%d forks; %v", forks.Load(), res)
	if err != nil {
		t.Fatal(err)
	}
	if res.PoliteFailures > 0 {
		t.Errorf("%d of %d polite connections failed: %v", res.PoliteFailures, res.Polite, res.PoliteErrors)
	}
	// Every connection of the storm ends: idle ones by the 3 s timeout.
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.Stats().Open.Load(); n != 0 {
		t.Errorf("%d connections still open 10 s after the storm", n)
	}
}
