package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/proctest"
)

// chatBin is the chat command, built once by TestMain.
var chatBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	bin, remove, err := proctest.Build("chat")
	if err != nil {
		fmt.Fprintf(os.Stderr, "building chat: %v\n", err)
		return 1
	}
	defer remove()
	chatBin = bin
	return m.Run()
}

// startChat runs the chat command on 127.0.0.1, a free port, with
// args, and waits for its "listening on" line (see proctest.Start).
func startChat(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, "chat", chatBin, args...)
}

// client is a connection to the chat.
type client struct {
	t  *testing.T
	c  *net.TCPConn
	r  *bufio.Reader
	id int
}

// dial connects to addr; the test's cleanup closes the connection.
func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c.(*net.TCPConn), r: bufio.NewReaderSize(c, 64<<10)}
}

// dialN connects n clients and settles them.
func dialN(t *testing.T, addr string, n int) []*client {
	t.Helper()
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = dial(t, addr)
		cs[i].id = i
	}
	settle(t, cs)
	return cs
}

// send writes s, failing the test if it cannot.
func (c *client) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("client %d: write: %v", c.id, err)
	}
}

// line reads a line, failing the test after d.
func (c *client) line(d time.Duration) string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("client %d: read: %v (after %q)", c.id, err, s)
	}
	return s
}

// until reads lines up to and including want, and returns the ones
// before it.
func (c *client) until(want string) []string {
	c.t.Helper()
	var got []string
	for {
		s := c.line(10 * time.Second)
		if s == want {
			return got
		}
		got = append(got, s)
	}
}

// disconnected reads until the server ends the connection, and fails the
// test if it does not within d. What it reads meanwhile is returned.
func (c *client) disconnected(d time.Duration) []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("client %d: still connected after %v (read %d bytes)", c.id, d, len(b))
	}
	return b
}

// settle makes sure every client is in the room: cs[0], then cs[1], sends
// probes until every other client has read one, then "sync\n", which
// every other client reads up to. What the probes prove is that the
// server had opened the connection when it processed one, so the clients
// are all in the room once both rounds are over, and have nothing unread.
func settle(t *testing.T, cs []*client) {
	t.Helper()
	if len(cs) < 2 {
		return
	}
	for _, from := range cs[:2] {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				if _, err := io.WriteString(from.c, "probe\n"); err != nil {
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
			if c != from {
				c.until("probe\n")
			}
		}
		close(stop)
		<-done
		from.send("sync\n")
		for _, c := range cs {
			if c != from {
				for _, s := range c.until("sync\n") {
					if s != "probe\n" {
						t.Fatalf("client %d read %q while settling", c.id, s)
					}
				}
			}
		}
	}
}

// quiet checks, with a "sync\n" from the client from, that the clients
// cs have nothing to read but what the server processed after from sent
// it. The caller makes sure the server is done with what they must not
// get first.
func quiet(t *testing.T, from *client, cs ...*client) {
	t.Helper()
	from.send("sync\n")
	for _, c := range cs {
		if got := c.until("sync\n"); len(got) > 0 {
			t.Errorf("client %d read %q", c.id, got)
		}
	}
}
