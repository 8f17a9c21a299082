package storm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// TestPlan draws many connections: the same seed gives the same ones, every
// kind and end is drawn, and what a Drain expects follows from the input.
func TestPlan(t *testing.T) {
	cfg, err := Config{Addr: "x:1"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	a := rand.New(rand.NewPCG(7, 3))
	b := rand.New(rand.NewPCG(7, 3))
	var kinds [numKinds]int
	var ends [numEnds]int
	for i := range 3000 {
		p, q := newPlan(a, &cfg), newPlan(b, &cfg)
		if p.kind != q.kind || p.end != q.end || p.wait != q.wait || !bytes.Equal(p.want, q.want) ||
			!bytes.Equal(bytes.Join(p.writes, nil), bytes.Join(q.writes, nil)) {
			t.Fatalf("plan %d differs with the same seed: %+v, %+v", i, p, q)
		}
		kinds[p.kind]++
		ends[p.end]++
		in := bytes.Join(p.writes, nil)
		if p.msgs > cfg.MaxMessages || p.wait > cfg.MaxWait {
			t.Fatalf("plan %d: %d messages, wait %v; want at most %d, %v", i, p.msgs, p.wait, cfg.MaxMessages, cfg.MaxWait)
		}
		if got, want := reference(in, p.kind == HalfClose), p.want; !bytes.Equal(got, want) {
			t.Fatalf("plan %d (%v): input %q is answered %q, want %q", i, p.kind, in, got, want)
		}
		for _, w := range p.writes {
			if len(w) == 0 {
				t.Fatalf("plan %d (%v): an empty write", i, p.kind)
			}
		}
		if p.kind == Pipelined && len(p.writes) < 2 {
			t.Fatalf("plan %d: pipelined in %d write", i, len(p.writes))
		}
		if p.kind == Silent && (len(in) > 0 || p.end != Now) {
			t.Fatalf("plan %d: silent, but sends %q and ends %v", i, in, p.end)
		}
	}
	for k, n := range kinds {
		if n < 300 {
			t.Errorf("%v drawn %d times in 3000", Kind(k), n)
		}
	}
	for e, n := range ends {
		if n < 500 {
			t.Errorf("%v drawn %d times in 3000", End(e), n)
		}
	}
}

// reference answers input as PROTOCOL.md says (short messages only), with
// EOF after it if eof.
func reference(in []byte, eof bool) []byte {
	var out []byte
	for {
		line, rest, found := bytes.Cut(in, []byte("\n"))
		if !found && !(eof && len(line) > 0) {
			return out
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if string(line) == "close" {
			return append(out, closing...)
		}
		out = append(out, answer...)
		if !found {
			return out
		}
		in = rest
	}
}

// serveReference serves the protocol on ln, a goroutine a connection, the
// simple way: answer each complete message, on "close" send "closing" and a
// FIN and read until the client is gone.
func serveReference(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			c := nc.(*net.TCPConn)
			defer c.Close()
			var pending []byte
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				pending = append(pending, buf[:n]...)
				eof := err == io.EOF
				out := reference(pending, eof)
				closed := bytes.HasSuffix(out, []byte(closing))
				if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
					pending = pending[i+1:]
				}
				if _, werr := c.Write(out); werr != nil {
					return
				}
				if closed || eof {
					c.CloseWrite()
					io.Copy(io.Discard, c)
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// TestRun storms a reference server: every kind and end is made, no
// connection fails, and the polite clients are answered.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveReference(ln)

	start := time.Now()
	res, err := Run(context.Background(), Config{
		Addr:     ln.Addr().String(),
		Duration: 500 * time.Millisecond,
		Stormers: 8,
		Polite:   2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Run took %v for a 500ms storm", took)
	}
	if res.StormFailures > 0 || res.PoliteFailures > 0 || res.StormDialErrors > 0 {
		t.Errorf("failures: storm %v, polite %v", res.StormErrors, res.PoliteErrors)
	}
	if res.Polite == 0 || res.PoliteAnswers != res.Polite {
		t.Errorf("%d polite connections, %d answers", res.Polite, res.PoliteAnswers)
	}
	for k := range Kind(numKinds) {
		if res.Kinds[k] == 0 {
			t.Errorf("no %v connection made", k)
		}
	}
	for e := range End(numEnds) {
		if res.Ends[e] == 0 {
			t.Errorf("no connection ended %v", e)
		}
	}
	if res.Drained == 0 {
		t.Errorf("no connection drained")
	}
}

// TestRunNoServer storms a port nobody listens on: every dial fails, the
// clients do not spin, and Run stops on time. A canceled context stops it
// early, with ctx's error.
func TestRunNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	res, err := Run(context.Background(), Config{Addr: addr, Duration: 200 * time.Millisecond, Stormers: 4, Polite: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Storm != 0 || res.StormDialErrors == 0 || res.PoliteFailures == 0 {
		t.Errorf("got %v, want dial errors only", res)
	}
	// Each client pauses after a failed dial.
	if max := 6 * int(200*time.Millisecond/pauseAfterDialError); res.StormDialErrors+res.PoliteFailures > max {
		t.Errorf("%d failed dials in 200ms, want at most %d", res.StormDialErrors+res.PoliteFailures, max)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := Run(ctx, Config{Addr: addr, Duration: time.Hour, Stormers: 2, Polite: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled run: %v, want %v", err, context.Canceled)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("canceled run took %v", took)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{},
		{Addr: "x:1", Duration: -1},
		{Addr: "x:1", Stormers: -1},
		{Addr: "x:1", Kinds: []Kind{}},
		{Addr: "x:1", Kinds: []Kind{numKinds}},
		{Addr: "x:1", Ends: []End{numEnds}},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v) = nil error", c)
		}
	}
}
