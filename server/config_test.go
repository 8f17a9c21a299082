package server_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// edgeInts are the values every numeric field is tried with: the edges of
// its range, and where an int meets 32-bit and 64-bit representations.
var edgeInts = []int64{
	0, 1, 2, -1, 15, 16, 23, 24, 1023, 1024, 1025, 1 << 20,
	1<<31 - 1, 1 << 31, 1<<31 + 1, 1<<32 - 1, 1 << 32, 1<<32 + 1,
	math.MaxInt64, math.MinInt64,
}

// edgeDurations adds the idle timeouts a reviewer found mishandled: 200µs
// (rounded to "never") and 597h or a month (wrapped to "at once").
var edgeDurations = []time.Duration{
	200 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 150 * time.Millisecond,
	596 * time.Hour, 597 * time.Hour, 720 * time.Hour, server.MaxIdleTimeout, server.MaxIdleTimeout + 1,
}

// configField sets one numeric Config field to v.
type configField struct {
	name string
	set  func(c *server.Config, v int64)
}

var configFields = []configField{
	{"MaxMessage", func(c *server.Config, v int64) { c.MaxMessage = int(v) }},
	{"Framing", func(c *server.Config, v int64) { c.Framing = server.Framing(v) }},
	{"Loops", func(c *server.Config, v int64) { c.Loops = int(v) }},
	{"MaxConns", func(c *server.Config, v int64) { c.MaxConns = int(v) }},
	{"MaxPendingOutput", func(c *server.Config, v int64) { c.MaxPendingOutput = int(v) }},
	{"IdleTimeout", func(c *server.Config, v int64) { c.IdleTimeout = time.Duration(v) }},
	{"MaxConnsPerIP", func(c *server.Config, v int64) { c.MaxConnsPerIP = int(v) }},
}

// TestConfigSpace tries every numeric Config field at its edges, one at a
// time, then random combinations: New either refuses the Config with an
// error naming the field, or the server answers a client and its idle
// timeout, if any, closes an idle connection no sooner than asked (and,
// when it is short enough to wait for, does close it).
func TestConfigSpace(t *testing.T) {
	type trial struct {
		name   string
		cfg    server.Config
		fields []string // the fields set, for the error check
	}
	var trials []trial
	for _, f := range configFields {
		vals := edgeInts
		if f.name == "IdleTimeout" {
			for _, d := range edgeDurations {
				vals = append(vals[:len(vals):len(vals)], int64(d))
			}
		}
		for _, v := range vals {
			var c server.Config
			f.set(&c, v)
			name := fmt.Sprintf("%s=%d", f.name, v)
			if f.name == "IdleTimeout" {
				name = fmt.Sprintf("%s=%v", f.name, time.Duration(v))
			}
			trials = append(trials, trial{name, c, []string{f.name}})
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random combinations from seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range 40 {
		var c server.Config
		var names []string
		for _, f := range configFields {
			if rng.IntN(2) == 0 {
				continue
			}
			v := edgeInts[rng.IntN(len(edgeInts))]
			switch {
			case f.name == "IdleTimeout" && rng.IntN(2) == 0:
				v = int64(edgeDurations[rng.IntN(len(edgeDurations))])
			case rng.IntN(3) == 0:
				v = rng.Int64N(1<<16) - 8
			}
			f.set(&c, v)
			names = append(names, f.name)
		}
		trials = append(trials, trial{fmt.Sprintf("random%d", i), c, names})
	}
	for _, tr := range trials {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			checkConfig(t, tr.cfg, tr.fields)
		})
	}
}

// checkConfig is TestConfigSpace's property for one Config.
func checkConfig(t *testing.T, cfg server.Config, fields []string) {
	cfg.Addr = "127.0.0.1:0"
	if os.Getenv("TCPOLL_DIRECT_SEND") == "1" {
		cfg.DirectSend = true
	}
	s, err := server.New(cfg)
	if err != nil {
		named := false
		for _, f := range fields {
			named = named || strings.Contains(err.Error(), f)
		}
		if !named || !strings.Contains(err.Error(), "range") && !strings.Contains(err.Error(), "evio") {
			t.Fatalf("New(%+v): %v; want an error naming one of %v and its range", cfg, err, fields)
		}
		return
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	dialed := time.Now()
	c, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// With FramingRaw every read is a message, and a small
	// MaxPendingOutput makes reads as small as a byte: one byte is one
	// message however it is read.
	msg := "hello\n"
	if cfg.Framing == server.FramingRaw {
		msg = "x"
	}
	sent := time.Now()
	c.SetDeadline(sent.Add(ioTimeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("%+v: write: %v", cfg, err)
	}
	var b [len(server.Answer)]byte
	if n, err := c.Read(b[:]); err != nil || string(b[:n]) != server.Answer {
		// A timeout of a few milliseconds may rightly end a connection
		// whose first message took longer to come; never sooner.
		if d := time.Since(dialed); n == 0 && err != nil && cfg.IdleTimeout > 0 && cfg.IdleTimeout < 20*time.Millisecond && d >= cfg.IdleTimeout {
			t.Logf("%+v: closed after %v, before its first message arrived", cfg, d)
			return
		}
		t.Fatalf("%+v: read %q, %v; want %q (stats %+v)", cfg, b[:n], err, server.Answer, s.Stats().Snapshot())
	}
	// The connection is idle from here. A timeout the test can wait for
	// must close it, no sooner than asked; any other must leave it open.
	idle := cfg.IdleTimeout
	wait := 200 * time.Millisecond
	if idle > 0 && idle <= time.Second {
		wait = idle + 2*time.Second
	}
	c.SetReadDeadline(sent.Add(wait))
	n, err := c.Read(b[:])
	after := time.Since(sent)
	switch {
	case idle > 0 && idle <= time.Second:
		if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%+v: idle connection: read %q, %v after %v; want it closed", cfg, b[:n], err, after)
		}
		if after < idle {
			t.Fatalf("%+v: idle connection closed after %v; want no sooner than %v", cfg, after, idle)
		}
	default:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%+v: idle connection: read %q, %v after %v; want it left open (IdleTimeout %v; stats %+v)",
				cfg, b[:n], err, after, idle, s.Stats().Snapshot())
		}
	}
}
