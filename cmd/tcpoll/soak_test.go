//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// churnCycle is one short connection: connect from a spread source address,
// send messages, check every answer, and end in one of four ways. The
// answers being exactly right each time also shows that no event for a
// closed connection reached the connection that reused its descriptor.
func churnCycle(addr string, i int) error {
	d := net.Dialer{Timeout: ioTimeout, LocalAddr: srcAddr(i)}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	k := 1 + i%7
	var msgs strings.Builder
	for j := range k {
		fmt.Fprintf(&msgs, "cycle %d message %d\n", i, j)
	}
	switch i % 4 {
	case 0: // answers, then the client closes
		if _, err := io.WriteString(c, msgs.String()); err != nil {
			return err
		}
		return readAnswers(c, k)
	case 1: // "close": the server closes
		if _, err := io.WriteString(c, msgs.String()+"close\nignored\n"); err != nil {
			return err
		}
		if err := readAnswers(c, k); err != nil {
			return err
		}
		var b [len(server.Closing)]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != server.Closing {
			return fmt.Errorf("got %q, %v; want %q", b, err, server.Closing)
		}
		return expectEOF(c)
	case 2: // half-close: the answers, then the server's FIN
		if _, err := io.WriteString(c, msgs.String()); err != nil {
			return err
		}
		if err := c.CloseWrite(); err != nil {
			return err
		}
		if err := readAnswers(c, k); err != nil {
			return err
		}
		return expectEOF(c)
	default: // the client resets
		if _, err := io.WriteString(c, msgs.String()); err != nil {
			return err
		}
		err := readAnswers(c, k)
		reset(c)
		return err
	}
}

// runCycles runs cycles from to to-1 from several goroutines.
func runCycles(t *testing.T, addr string, from, to int) {
	t.Helper()
	var next atomic.Int64
	next.Store(int64(from))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to || failed.Load() > 10 {
					return
				}
				if err := churnCycle(addr, i); err != nil {
					failed.Add(1)
					t.Errorf("cycle %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
}

// TestChurn opens, uses and closes connections by the thousand: afterwards
// the server holds the descriptors, goroutines and memory it held before.
func TestChurn(t *testing.T) {
	cycles := size(5000, 50000)
	const warmup = 400
	// GOGC=10 keeps the server's heap, and so its RSS, close to what it
	// holds live: a leak shows instead of hiding below the next GC.
	p := startServerEnv(t, []string{"GOGC=10"}, 0)

	// The first few hundred cycles grow the server to its working size.
	runCycles(t, p.addr, 0, warmup)
	v0 := p.waitVars(t, 5*time.Second, "no connection open", func(v debugVars) bool { return v.Tcpoll["open"] == 0 })
	fds0, rss0 := p.steadyFDs(t), p.rss(t)

	start := time.Now()
	runCycles(t, p.addr, warmup, warmup+cycles)
	took := time.Since(start)

	// Connections the server closed linger until the client's FIN, at most
	// two seconds.
	v := p.waitVars(t, 5*time.Second, "no connection open, goroutines as before", func(v debugVars) bool {
		return v.Tcpoll["open"] == 0 && v.Goroutines <= v0.Goroutines
	})
	p.waitFDs(t, 5*time.Second, fds0)
	rss := p.rss(t)
	t.Logf("%d cycles in %v (%.0f/s): descriptors %d before, %d after; goroutines %d, %d; RSS %d KiB, %d KiB",
		cycles, took.Round(time.Millisecond), float64(cycles)/took.Seconds(), fds0, p.fds(t),
		v0.Goroutines, v.Goroutines, rss0>>10, rss>>10)
	if got, want := v.Tcpoll["accepted"], int64(warmup+cycles); got != want {
		t.Errorf("accepted = %d, want %d", got, want)
	}
	// A leak of a kilobyte a connection would show as 5 MB here (50 MB in
	// the long run); the heap's own growth and the allocator's caching
	// stay far below.
	if grew := rss - rss0; grew > 3<<20 {
		t.Errorf("RSS grew by %d KiB over %d connections, want < 3 MiB", grew>>10, cycles)
	}
	p.alive(t)
}

// TestSoak holds many connections at once, each exchanging pipelined
// messages for a while, every answer checked, and prints the totals.
func TestSoak(t *testing.T) {
	conns := size(1000, 10000)
	dur := time.Duration(size(2, 60)) * time.Second
	p := startServer(t, conns+100)
	cs := dialMany(t, p.addr, conns)

	// Workers, not a goroutine per connection: the race detector allows
	// 8128 goroutines. Each worker sends a batch on each of its
	// connections, then reads each one's answers.
	workers := min(conns, 200)
	var sent, answered, bytesSent atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(dur)
	for w := range workers {
		wg.Go(func() {
			var mine []*net.TCPConn
			var pending []int
			for i := w; i < conns; i += workers {
				mine = append(mine, cs[i])
				pending = append(pending, 0)
			}
			fail := func(err error) {
				if failed.Add(1) <= 10 {
					t.Error(err)
				}
			}
			var batch bytes.Buffer
			for round := 0; time.Now().Before(end); round++ {
				for j, c := range mine {
					// 1 to 8 messages of 0 to 200 bytes, some with CRLF.
					k := 1 + (w+j+round)%8
					batch.Reset()
					for m := range k {
						n := (w*7 + j*13 + round*31 + m*17) % 201
						batch.WriteString(strings.Repeat("x", n))
						if m%3 == 0 {
							batch.WriteByte('\r')
						}
						batch.WriteByte('\n')
					}
					c.SetDeadline(time.Now().Add(ioTimeout))
					if _, err := c.Write(batch.Bytes()); err != nil {
						fail(err)
						return
					}
					sent.Add(int64(k))
					bytesSent.Add(int64(batch.Len()))
					pending[j] = k
				}
				for j, c := range mine {
					if err := readAnswers(c, pending[j]); err != nil {
						fail(err)
						return
					}
					answered.Add(int64(pending[j]))
				}
			}
			for _, c := range mine {
				if _, err := io.WriteString(c, "close\n"); err != nil {
					fail(err)
					return
				}
				var b [len(server.Closing)]byte
				if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != server.Closing {
					fail(fmt.Errorf("got %q, %v; want %q", b, err, server.Closing))
					return
				}
				if err := expectEOF(c); err != nil {
					fail(err)
					return
				}
				bytesSent.Add(6)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	s, a := sent.Load(), answered.Load()
	t.Logf("soak: %d connections for %v: %d messages sent, %d answered, %d lost (%.0f messages/s)",
		conns, took.Round(time.Millisecond), s, a, s-a, float64(a)/took.Seconds())
	if s != a || failed.Load() > 0 {
		t.Fatalf("%d messages lost, %d connections failed", s-a, failed.Load())
	}
	v := p.waitVars(t, 10*time.Second, "no connection open", func(v debugVars) bool { return v.Tcpoll["open"] == 0 })
	if got, want := v.Tcpoll["accepted"], int64(conns); got != want {
		t.Errorf("accepted = %d, want %d", got, want)
	}
	if got, want := v.Tcpoll["bytes_in"], bytesSent.Load(); got != want {
		t.Errorf("bytes_in = %d, want %d", got, want)
	}
	if got := v.Tcpoll["resets"]; got != 0 {
		t.Errorf("resets = %d, want 0", got)
	}
	p.alive(t)
}
