package main

// These tests run the chat command as a process (built once by TestMain,
// with -race when the tests have it) and talk to it over loopback, as its
// clients do. hub_test.go runs the hub in this process.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test lines: "L FROM SEQ PAYLOAD\n", where the payload follows from
// FROM and SEQ so that a reader can check the line whole, and "E FROM
// N\n", which ends FROM's N lines.

// testLine is line seq of client from.
func testLine(from, seq int) []byte {
	n := (from*131 + seq*31) % 97
	return fmt.Appendf(nil, "L %d %d %s\n", from, seq, bytes.Repeat([]byte{byte('a' + (from*7+seq)%26)}, n))
}

// tally checks what one client reads: every line whole, none its own,
// each sender's in order and with no gap, and with "E" lines, complete.
type tally struct {
	self int
	// fromStart: the lines of senders with a lower id must begin at seq 0
	// (they started sending once this client was in the room).
	fromStart int
	next      map[int]int // the seq expected next from each sender seen
	ended     map[int]bool
	lines     int
}

func newTally(self, fromStart int) *tally {
	return &tally{self: self, fromStart: fromStart, next: map[int]int{}, ended: map[int]bool{}}
}

// add checks one line read.
func (k *tally) add(line []byte) error {
	f := strings.Fields(string(line))
	if len(f) < 3 || line[len(line)-1] != '\n' {
		return fmt.Errorf("client %d read a broken line %q", k.self, line)
	}
	from, err1 := strconv.Atoi(f[1])
	seq, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("client %d read a broken line %q", k.self, line)
	}
	if from == k.self {
		return fmt.Errorf("client %d read its own line %q", k.self, line)
	}
	if k.ended[from] {
		return fmt.Errorf("client %d read %q after the end of %d's lines", k.self, line, from)
	}
	next, seen := k.next[from]
	if !seen && from < k.fromStart {
		seen = true // from 0
	}
	switch f[0] {
	case "L":
		if want := testLine(from, seq); !bytes.Equal(line, want) {
			return fmt.Errorf("client %d read %q, want %q", k.self, line, want)
		}
		if seen && seq != next {
			return fmt.Errorf("client %d read line %d of client %d after line %d", k.self, seq, from, next-1)
		}
		k.next[from] = seq + 1
		k.lines++
	case "E":
		if len(f) != 3 || (seen && next != seq) {
			return fmt.Errorf("client %d read %q after line %d of client %d", k.self, line, next-1, from)
		}
		k.ended[from] = true
	default:
		return fmt.Errorf("client %d read a broken line %q", k.self, line)
	}
	return nil
}

// readAll reads test lines from c into k until k has the ends of every
// sender in want, or the connection fails. It reads under one deadline.
func readAll(c *client, k *tally, want []int, deadline time.Time) error {
	c.c.SetReadDeadline(deadline)
	for {
		done := true
		for _, from := range want {
			if from != k.self && !k.ended[from] {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("client %d: read: %v, after %d lines", k.self, err, k.lines)
		}
		if err := k.add(line); err != nil {
			return err
		}
	}
}

// sendLines writes lines first to last-1 of from, in writes of random
// sizes that cut lines anywhere, then "E from last".
func sendLines(c *client, from, first, last int, rng *rand.Rand) error {
	var buf []byte
	for seq := first; seq < last; seq++ {
		buf = append(buf, testLine(from, seq)...)
	}
	buf = fmt.Appendf(buf, "E %d %d\n", from, last)
	c.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for len(buf) > 0 {
		n := min(len(buf), 1+rng.IntN(4096))
		if _, err := c.c.Write(buf[:n]); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

func TestFanOut(t *testing.T) {
	p := startChat(t)
	cs := dialN(t, p.Addr, 5)
	for _, c := range cs {
		c.send(fmt.Sprintf("%s%s%s", testLine(c.id, 0), testLine(c.id, 1), testLine(c.id, 2)))
	}
	for _, c := range cs {
		k := newTally(c.id, len(cs))
		for range 3 * (len(cs) - 1) {
			if err := k.add([]byte(c.line(10 * time.Second))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Every line has reached every other client, so the server is done
	// with them: nothing more is coming, and no line back to its sender.
	quietAll(t, cs)
}

// quietAll checks that no client has anything more to read: see quiet.
func quietAll(t *testing.T, cs []*client) {
	t.Helper()
	quiet(t, cs[0], cs[1:]...)
	quiet(t, cs[1], append([]*client{cs[0]}, cs[2:]...)...)
}

func TestEmptyLines(t *testing.T) {
	p := startChat(t)
	cs := dialN(t, p.Addr, 3)
	// Pieces a server reads one at a time, the pauses allowing.
	pieces := []string{"\n", "\n", "a", "b", "c\n\n", "\r\n", "\x00\xff", "\n", "\n\n\n"}
	for _, s := range pieces {
		cs[0].send(s)
		time.Sleep(20 * time.Millisecond)
	}
	want := strings.Join(pieces, "")
	for _, c := range cs[1:] {
		got := make([]byte, len(want))
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c.r, got); err != nil {
			t.Fatalf("client %d: %v after %q", c.id, err, got)
		}
		if string(got) != want {
			t.Errorf("client %d read %q, want %q", c.id, got, want)
		}
	}
	quietAll(t, cs)
}

// TestOrderPerSender: 4 senders of 5,000 lines each, cut at random, and
// 3 more readers: every client gets every other sender's lines in order.
// The senders do not wait for the readers, which under the race detector
// fall behind by more than the default -max-pending: the bound is raised
// above all the lines sent, and this test is about order alone.
func TestOrderPerSender(t *testing.T) {
	const senders, readers, n = 4, 3, 5000
	p := startChat(t, "-max-pending", "16777216")
	cs := dialN(t, p.Addr, senders+readers)
	ids := []int{0, 1, 2, 3}
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			if err := readAll(c, newTally(c.id, senders), ids, deadline); err != nil {
				t.Error(err)
			}
		})
	}
	for _, c := range cs[:senders] {
		wg.Go(func() {
			if err := sendLines(c, c.id, 0, n, rand.New(rand.NewPCG(uint64(c.id), 1))); err != nil {
				t.Errorf("client %d: write: %v", c.id, err)
			}
		})
	}
	wg.Wait()
	if !t.Failed() {
		quietAll(t, cs)
	}
}

func TestMaxLine(t *testing.T) {
	const max = 64
	p := startChat(t, "-max-line", strconv.Itoa(max))
	x := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name   string
		pieces []string // sent 50ms apart
		want   string   // what the others get
		gone   bool     // the sender is disconnected
	}{
		{name: "exactly max", pieces: []string{x(max-1) + "\n"}, want: x(max-1) + "\n"},
		{name: "exactly max in pieces", pieces: []string{x(30), x(max - 31), "\n"}, want: x(max-1) + "\n"},
		{name: "max-1 then newline", pieces: []string{x(max - 1), "\n"}, want: x(max-1) + "\n"},
		{name: "empty then max", pieces: []string{"\n" + x(max-1) + "\n"}, want: "\n" + x(max-1) + "\n"},
		{name: "one over", pieces: []string{x(max) + "\n"}, gone: true},
		{name: "one over, no newline", pieces: []string{x(max)}, gone: true},
		{name: "one over in pieces, no newline", pieces: []string{x(40), x(max - 40)}, gone: true},
		{name: "one over in pieces", pieces: []string{x(40), x(max-40) + "\n"}, gone: true},
		{name: "far over", pieces: []string{x(100 * max)}, gone: true},
		{name: "lines before", pieces: []string{"ok\n\n" + x(max)}, want: "ok\n\n", gone: true},
		{name: "lines before in pieces", pieces: []string{"ok\nx", x(max - 1)}, want: "ok\n", gone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := dialN(t, p.Addr, 4)
			sender, witness := cs[0], cs[3]
			for i, s := range tc.pieces {
				if i > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				sender.send(s)
			}
			for _, c := range cs[1:3] {
				got := make([]byte, len(tc.want))
				c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadFull(c.r, got); err != nil {
					t.Fatalf("client %d: %v after %q", c.id, err, got)
				}
				if string(got) != tc.want {
					t.Fatalf("client %d read %q, want %q", c.id, got, tc.want)
				}
			}
			if tc.gone {
				// With no '\n' sent, or one more byte to come.
				sender.disconnected(10 * time.Second)
				quiet(t, witness, cs[1:3]...)
			} else {
				quiet(t, witness, cs[:3]...)
			}
		})
	}
}

func TestMaxLineDefault(t *testing.T) {
	p := startChat(t)
	cs := dialN(t, p.Addr, 3)
	line := strings.Repeat("y", defaultMaxLine-1) + "\n"
	cs[0].send(line)
	if got := cs[1].line(10 * time.Second); got != line {
		t.Fatalf("read %d bytes, want %d", len(got), len(line))
	}
	cs[0].send(line[:defaultMaxLine-1])
	cs[0].send("y")
	cs[0].disconnected(10 * time.Second)
	quiet(t, cs[2], cs[1])
}

func TestEOFDiscardsUnfinished(t *testing.T) {
	p := startChat(t)
	for _, how := range []string{"half-close", "close", "reset"} {
		t.Run(how, func(t *testing.T) {
			cs := dialN(t, p.Addr, 3)
			sender, receiver, witness := cs[0], cs[1], cs[2]
			sender.send("whole\nunfinished")
			if got := receiver.line(10 * time.Second); got != "whole\n" {
				t.Fatalf("read %q", got)
			}
			switch how {
			case "half-close":
				// The server closes a connection at its EOF.
				sender.c.CloseWrite()
				sender.disconnected(10 * time.Second)
			case "close":
				sender.c.Close()
			case "reset":
				sender.c.SetLinger(0)
				sender.c.Close()
			}
			// Time for the server to take in the end, were it to send
			// the unfinished line then.
			time.Sleep(200 * time.Millisecond)
			quiet(t, witness, receiver)
		})
	}
}

// TestSlowReader: a client that never reads while another publishes 20 MB
// is disconnected, and three readers that keep up meanwhile get every line.
func TestSlowReader(t *testing.T) {
	const (
		total = 20 << 20
		chunk = 64 << 10 // published at once; readers are at most two behind
	)
	p := startChat(t)
	cs := dialN(t, p.Addr, 5)
	pub, readers, stalled := cs[0], cs[1:4], cs[4]
	var lines [][]byte // chunks of whole lines
	var buf []byte
	n := 0
	for size := 0; size < total; n++ {
		l := testLine(pub.id, n)
		if len(buf)+len(l) > chunk {
			lines, buf = append(lines, buf), nil
		}
		buf = append(buf, l...)
		size += len(l)
	}
	lines = append(lines, fmt.Appendf(buf, "E %d %d\n", pub.id, n))

	got := make([]atomic.Int64, len(readers)) // chunks read, roughly: bytes
	var wg sync.WaitGroup
	deadline := time.Now().Add(120 * time.Second)
	for i, c := range readers {
		wg.Go(func() {
			k := newTally(c.id, 1)
			c.c.SetReadDeadline(deadline)
			for !k.ended[pub.id] {
				line, err := c.r.ReadSlice('\n')
				if err != nil {
					t.Errorf("reader %d: %v after %d lines", c.id, err, k.lines)
					return
				}
				if err := k.add(line); err != nil {
					t.Error(err)
					return
				}
				got[i].Add(int64(len(line)))
			}
		})
	}
	start := time.Now()
	sent := int64(0)
	pub.c.SetWriteDeadline(deadline)
	for _, b := range lines {
		// Pace the publisher by the readers, so that they keep up: each
		// is at most two chunks behind.
		for i := range got {
			for got[i].Load() < sent-chunk && !t.Failed() && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
		}
		if _, err := pub.c.Write(b); err != nil {
			t.Fatalf("publisher: %v", err)
		}
		sent += int64(len(b))
	}
	wg.Wait()
	t.Logf("published %d MB in %v", sent>>20, time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		return
	}
	// The stalled client was cut off: what it reads now ends, a prefix of
	// the lines, well short of them all.
	b := stalled.disconnected(10 * time.Second)
	if int64(len(b)) >= sent {
		t.Errorf("the stalled client read all %d bytes", len(b))
	}
	k := newTally(stalled.id, 1)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // cut by the disconnection
		}
		if err := k.add(b[:i+1]); err != nil {
			t.Fatal(err)
		}
		b = b[i+1:]
	}
	t.Logf("the stalled client read %d lines of %d before it was disconnected", k.lines, n)
	log := p.Stop(t)
	if !strings.Contains(log, "disconnected a client that does not read") || !strings.Contains(log, "dropped=1 ") {
		t.Errorf("the log does not tell of one client dropped:\n%s", log)
	}
}

// TestShutdown: SIGTERM ends the process at once, and every client reads
// the end of its connection.
func TestShutdown(t *testing.T) {
	p := startChat(t)
	cs := dialN(t, p.Addr, 3)
	cs[0].send("before\n")
	for _, c := range cs[1:] {
		if got := c.line(10 * time.Second); got != "before\n" {
			t.Fatalf("read %q", got)
		}
	}
	start := time.Now()
	log := p.Stop(t)
	for _, c := range cs {
		if b := c.disconnected(10 * time.Second); len(b) > 0 {
			t.Errorf("client %d read %q at the end", c.id, b)
		}
	}
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(log, "msg=stopped dropped=0 too_long=0") {
		t.Errorf("no stop record in the log:\n%s", log)
	}
}

// TestChurn: 100 clients in the room from the start, 64 of which send
// bursts of lines cut at random for a few seconds, while 16 goroutines
// keep about 100 more clients joining, sending, closing and resetting at
// random. Every client reads all along, and checks every line it gets:
// whole, in order per sender, with no gap and none its own; the first
// 100 also get every line of the 64, and none of them is disconnected.
func TestChurn(t *testing.T) {
	const (
		stable   = 100
		senders  = 64
		churners = 16
		pool     = 6 // connections per churner goroutine
		run      = 3 * time.Second
		burstGap = 1000 // ms, the most a sender waits between bursts
	)
	p := startChat(t)
	cs := dialN(t, p.Addr, stable)
	deadline := time.Now().Add(run + 60*time.Second)
	ids := make([]int, senders)
	for i := range ids {
		ids[i] = i
	}

	var readers, writers sync.WaitGroup
	tallies := make([]*tally, len(cs))
	for i, c := range cs {
		tallies[i] = newTally(c.id, senders)
		readers.Go(func() {
			if err := readAll(c, tallies[i], ids, deadline); err != nil {
				t.Error(err)
			}
		})
	}
	stop := make(chan struct{})
	var sentLines atomic.Int64
	for _, c := range cs[:senders] {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c.id), 2))
			seq := 0
			for {
				select {
				case <-stop:
					if err := sendLines(c, c.id, seq, seq, rng); err != nil {
						t.Errorf("client %d: %v", c.id, err)
					}
					return
				case <-time.After(time.Duration(rng.IntN(burstGap)) * time.Millisecond):
				}
				n := 1 + rng.IntN(16)
				if err := sendBurst(c, c.id, seq, seq+n, rng); err != nil {
					t.Errorf("client %d: %v", c.id, err)
					return
				}
				seq += n
				sentLines.Add(int64(n))
			}
		})
	}
	var churned, resets, nextID atomic.Int64
	nextID.Store(1000) // ids of clients that come and go; readers take no line of theirs as from the start
	for g := range churners {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			var conns [pool]*churnConn
			defer func() {
				for _, cc := range conns {
					if cc != nil {
						cc.end(false)
					}
				}
			}()
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(rng.IntN(20)) * time.Millisecond):
				}
				i := rng.IntN(pool)
				cc := conns[i]
				switch r := rng.IntN(10); {
				case cc == nil:
					cc, err := dialChurn(t, p.Addr, int(nextID.Add(1)), deadline)
					if err != nil {
						t.Error(err)
						return
					}
					conns[i] = cc
				case r < 6:
					n := 1 + rng.IntN(8)
					if err := sendBurst(cc.client, cc.id, cc.seq, cc.seq+n, rng); err != nil {
						t.Errorf("churning client %d: %v", cc.id, err)
						return
					}
					cc.seq += n
				default:
					reset := r == 9
					if r == 8 {
						// Half a line, then the end: the half is lost.
						cc.c.Write([]byte("L 0 0 half"))
					}
					cc.end(reset)
					conns[i] = nil
					churned.Add(1)
					if reset {
						resets.Add(1)
					}
				}
			}
		})
	}
	time.Sleep(run)
	close(stop)
	writers.Wait()
	readers.Wait()
	t.Logf("%d lines from the 64 senders to ~%d clients; %d clients came and went (%d reset)",
		sentLines.Load(), stable+churners*pool, churned.Load(), resets.Load())
	if t.Failed() {
		return
	}
	// What the clients gone sent last may still come: it is read, and
	// checked, up to a sync line from each of two clients. Then none of
	// the 100 has anything more to read.
	for _, from := range cs[:2] {
		from.send("sync\n")
		for i, c := range cs {
			if c == from {
				continue
			}
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				line, err := c.r.ReadSlice('\n')
				if err != nil {
					t.Fatalf("client %d: read: %v", c.id, err)
				}
				if string(line) == "sync\n" {
					break
				}
				if err := tallies[i].add(line); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	log := p.Stop(t)
	if !strings.Contains(log, "dropped=0 ") {
		t.Errorf("clients were dropped:\n%s", log)
	}
}

// sendBurst writes lines first to last-1 of from at once, in one to three
// writes cut anywhere.
func sendBurst(c *client, from, first, last int, rng *rand.Rand) error {
	var buf []byte
	for seq := first; seq < last; seq++ {
		buf = append(buf, testLine(from, seq)...)
	}
	c.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for parts := 1 + rng.IntN(3); len(buf) > 0; parts-- {
		n := len(buf)
		if parts > 1 {
			n = rng.IntN(len(buf) + 1)
		}
		if _, err := c.c.Write(buf[:n]); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// churnConn is a client of TestChurn that comes and goes, reading all it
// is sent while it is there.
type churnConn struct {
	*client
	seq    int
	ending atomic.Bool   // set before its goroutine closes it
	done   chan struct{} // closed when its reader has returned
}

func dialChurn(t *testing.T, addr string, id int, deadline time.Time) (*churnConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	cc := &churnConn{client: &client{t: t, c: c.(*net.TCPConn), r: bufio.NewReaderSize(c, 64<<10), id: id}, done: make(chan struct{})}
	go func() {
		defer close(cc.done)
		k := newTally(id, 0)
		cc.c.SetReadDeadline(deadline)
		for {
			line, err := cc.r.ReadSlice('\n')
			if err != nil {
				if !cc.ending.Load() {
					// A client that reads is never disconnected.
					t.Errorf("churning client %d: read: %v, after %d lines", id, err, k.lines)
				}
				return
			}
			if err := k.add(line); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	return cc, nil
}

// end closes the connection, or resets it, and waits for its reader.
func (cc *churnConn) end(reset bool) {
	cc.ending.Store(true)
	if reset {
		cc.c.SetLinger(0)
	}
	cc.c.Close()
	<-cc.done
}
