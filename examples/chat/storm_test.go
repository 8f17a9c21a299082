//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/proctest"
	"github.com/tcpoll/poll/internal/storm"
)

// stormLines are the complete lines internal/storm's clients send: its
// messages, "close" and what follows it, and its polite clients' "hi".
// To the chat they are lines like any other, fanned out to the room.
var stormLines = map[string]bool{"m\n": true, "m\r\n": true, "close\n": true, "ignored\n": true, "hi\n": true}

// TestStorm runs internal/storm's close-and-reset storm against the chat
// on two loops for 2 s, while 3 of 6 clients in the room publish lines all
// along and all 6 read and check every line: each storm line fans out to
// every member, so every loop writes to connections of the other, and
// connections of both end under it, by a reset mostly, while lines are
// on their way to them. Then the process is alive, and reports no race
// and no panic; the readers get every line of the publishers, in order,
// up to their last; with them idle, the process uses next to no CPU in the
// second that starts a second after the storm (a loop stuck spinning would
// use all of one); and fresh clients, on either loop, exchange lines within
// a second (a loop stuck blocked would serve none of its own).
func TestStorm(t *testing.T) {
	const (
		steady     = 6
		publishers = 3
		run        = 2 * time.Second
	)
	// Under the race detector the readers fall behind the storm's lines
	// for a while (see TestOrderPerSender): the bound is raised so that
	// they are not cut off, and this test is about the ends of
	// connections, not backpressure.
	p := startChat(t, "-loops", "2", "-max-pending", "16777216", "-shutdown-timeout", "5s")
	cs := dialN(t, p.Addr, steady)
	ids := make([]int, publishers)
	for i := range ids {
		ids[i] = i
	}

	// The readers get every line of the publishers and any number of
	// storm lines, within 10 s of the storm's end.
	readDeadline := time.Now().Add(run + 10*time.Second)
	var readers, writers sync.WaitGroup
	var stormRead atomic.Int64
	for _, c := range cs {
		readers.Go(func() {
			k := newTally(c.id, publishers)
			n, err := readStorm(c, k, ids, readDeadline)
			stormRead.Add(int64(n))
			if err != nil {
				t.Error(err)
			}
		})
	}
	stop := make(chan struct{})
	var published atomic.Int64
	for _, c := range cs[:publishers] {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c.id), 4))
			seq := 0
			for {
				select {
				case <-stop:
					if err := sendLines(c, c.id, seq, seq, rng); err != nil {
						t.Errorf("client %d: %v", c.id, err)
					}
					return
				case <-time.After(time.Duration(rng.IntN(3)) * time.Millisecond):
				}
				n := 1 + rng.IntN(8)
				if err := sendBurst(c, c.id, seq, seq+n, rng); err != nil {
					t.Errorf("client %d: %v", c.id, err)
					return
				}
				seq += n
				published.Add(int64(n))
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), run+30*time.Second)
	defer cancel()
	res, err := storm.Run(ctx, chatStorm(p.Addr, run))
	end := time.Now()
	close(stop)
	writers.Wait()
	if err != nil {
		t.Fatalf("storm: %v (%v)", err, res)
	}
	t.Logf("storm: %v", res)
	if res.Storm == 0 || res.StormDialErrors > 0 || res.StormFailures > 0 {
		var first string
		if err := errors.Join(res.StormErrors...); err != nil {
			first = "; the first few:\n" + err.Error()
		}
		t.Errorf("%d storm connections, %d dials failed, %d failed before their reset%s",
			res.Storm, res.StormDialErrors, res.StormFailures, first)
	}
	readers.Wait()
	t.Logf("%d lines published to %d readers, who read %d storm lines besides", published.Load(), steady, stormRead.Load())
	alive(t, p, "the storm")

	// Idle: the second that starts a second after the storm, as in
	// cmd/tcpoll's TestResetStorm. The race-built process may take a
	// few hundred ms to catch up with the storm's last connections (the
	// accept queues, their resets) once the clients are done.
	//
	// The stdnet engine, a goroutine per connection, lets the room grow
	// to thousands of the storm's connections, whose leaves then wait in
	// turn for the hub's lock, each copying the room (hub.leave): under
	// the race detector that takes seconds after the storm. There the
	// idle second may start up to 20 s after it; one that never comes
	// is still a loop spinning.
	settle := time.Second
	if stdnetBuild() {
		settle = 20 * time.Second
	}
	time.Sleep(time.Until(end.Add(time.Second)))
	for {
		c0 := procCPU(t, p)
		time.Sleep(time.Second)
		cpu := procCPU(t, p) - c0
		after := time.Since(end) - time.Second
		if cpu < 50*time.Millisecond {
			t.Logf("CPU in the second that started %v after the storm: %v", after.Round(100*time.Millisecond), cpu)
			break
		}
		if after >= settle {
			t.Errorf("the chat used %v of CPU in the second that started %v after the storm, want < 50ms",
				cpu, after.Round(100*time.Millisecond))
			break
		}
	}
	alive(t, p, "the second after the storm")

	exchange(t, p.Addr, 8, time.Second)
	alive(t, p, "the fresh clients' exchange")
}

// stdnetBuild reports whether the chat runs on the stdnet engine: built,
// like the tests, with -tags stdnet.
func stdnetBuild() bool {
	for _, f := range proctest.BuildFlags() {
		if slices.Contains(strings.FieldsFunc(f, func(r rune) bool { return r == ',' || r == ' ' }), "stdnet") {
			return true
		}
	}
	return false
}

// chatStorm is the storm of TestStorm: package storm's 48 storm clients for
// dur, sending up to 20 messages ("m\n") before "close\n" or half one, or
// nothing, half-closing or not, and resetting at once or within 200 µs.
// They do not read to the end (storm.Drain): the chat never closes a
// connection for its input, so a Drain waits out its Timeout. The one
// polite client, the fewest storm.Config allows, expects the
// acknowledgement protocol's answer and fails: it adds a connection that
// sends "hi\n", reads another's line and closes with input unread.
func chatStorm(addr string, dur time.Duration) storm.Config {
	return storm.Config{
		Addr:        addr,
		Duration:    dur,
		Polite:      1,
		MaxMessages: 20,
		Ends:        []storm.End{storm.Now, storm.Wait},
		Seed:        23,
		Timeout:     2 * time.Second,
	}
}

// readStorm is readAll, for a room with storm clients in it: it reads
// until k has the ends of every sender in want, checking every test line
// and counting the storm's lines, which it returns.
func readStorm(c *client, k *tally, want []int, deadline time.Time) (int, error) {
	c.c.SetReadDeadline(deadline)
	n := 0
	for {
		done := true
		for _, from := range want {
			if from != k.self && !k.ended[from] {
				done = false
				break
			}
		}
		if done {
			return n, nil
		}
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return n, fmt.Errorf("client %d: read: %v, after %d lines and %d of the storm's; the senders ended: %v",
				k.self, err, k.lines, n, k.ended)
		}
		if stormLines[string(line)] {
			n++
			continue
		}
		if err := k.add(line); err != nil {
			return n, err
		}
	}
}

// exchange connects n fresh clients and has the first two, in turn, send
// lines until each of the others has read one, all within d. Connections
// are spread over the loops by the kernel (SO_REUSEPORT): with 8, all are
// on one of two loops once in 128 runs.
func exchange(t *testing.T, addr string, n int, d time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	cs := make([]*client, n)
	for i := range cs {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err != nil {
			t.Fatalf("fresh client %d: %v", 100+i, err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = &client{t: t, c: c.(*net.TCPConn), r: bufio.NewReader(c), id: 100 + i}
	}
	for _, from := range cs[:2] {
		line := fmt.Sprintf("hello from %d\n", from.id)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			from.c.SetWriteDeadline(deadline)
			for {
				if _, err := from.c.Write([]byte(line)); err != nil {
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
			if c == from {
				continue
			}
			c.c.SetReadDeadline(deadline)
			for {
				s, err := c.r.ReadString('\n')
				if err != nil {
					close(stop)
					<-done
					t.Fatalf("fresh client %d: no line of client %d within %v of dialing: %v (read %q)", c.id, from.id, d, err, s)
				}
				if s == line {
					break
				}
				if !strings.HasPrefix(s, "hello from ") {
					t.Fatalf("fresh client %d read %q", c.id, s)
				}
			}
		}
		close(stop)
		<-done
	}
	t.Logf("%d fresh clients exchanged lines in %v", n, time.Since(start).Round(time.Millisecond))
}

// alive fails the test now if the process has exited, or has reported a
// data race or a panic on its standard error.
func alive(t *testing.T, p *proctest.Proc, during string) {
	t.Helper()
	select {
	case <-p.Exited:
		t.Fatalf("chat exited during %s: %v\n%s", during, p.Err(), p.Stderr())
	default:
	}
	if s := p.Stderr(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
		t.Fatalf("chat's standard error after %s:\n%s", during, s)
	}
}

// cpu is the process's CPU time so far, user and system: fields 14 and 15
// of /proc/PID/stat, in ticks of 10 ms (USER_HZ).
func procCPU(t *testing.T, p *proctest.Proc) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command's name may hold spaces: count fields from its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
