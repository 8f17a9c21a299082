// Command tlsload is `tcpoll load -tls` (the same internal/load, a
// goroutine pair per connection) for a server made of several processes:
// HAProxy terminating TLS in front of a plaintext tcpoll. The CPU time of
// the first process of -pid is read over the measured window by the load
// itself, as `tcpoll load -server-pid` reads it; that of the others is
// read from /proc every 10 ms and taken at the window's edges, which the
// load's once-a-second progress marks: its first line comes a second
// after the warm-up begins. The server CPU reported, per message too, is
// their sum; server_cpu_each_s gives each process's.
//
// It prints the JSON line of `tcpoll load -json` with those figures, and
// exits non-zero if a message failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/tcpoll/poll/bench/internal/client"
	"github.com/tcpoll/poll/bench/internal/proc"
	"github.com/tcpoll/poll/internal/load"
)

func main() {
	var cfg load.Config
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:3137", "server `address`")
	ca := flag.String("tls-ca", "", "trust the CA certificates in this PEM `file` (required)")
	pidList := flag.String("pid", "", "server `pids`, a comma list (required): their CPU times are added up")
	flag.IntVar(&cfg.Conns, "c", 50, "connections")
	flag.IntVar(&cfg.Depth, "p", 16, "messages in flight per connection")
	flag.IntVar(&cfg.Size, "size", 16, "message size in `bytes`, LF included")
	flag.DurationVar(&cfg.Duration, "d", 3*time.Second, "measured `duration`")
	flag.DurationVar(&cfg.Warmup, "warmup", time.Second, "warm-up before the measured window")
	flag.Parse()
	pids, err := proc.ParsePIDs(*pidList)
	// The progress marks the window only if its first line comes before
	// the end.
	if err != nil || *ca == "" || len(pids) > 1 && cfg.Warmup+cfg.Duration < 1200*time.Millisecond {
		flag.Usage()
		os.Exit(2)
	}
	if cfg.TLS, err = client.TLSConfig(*ca, cfg.Addr); err != nil {
		fmt.Fprintln(os.Stderr, "tlsload: -tls-ca:", err)
		os.Exit(2)
	}
	if err := client.RaiseFileLimit(cfg.Conns, 64); err != nil {
		fmt.Fprintln(os.Stderr, "tlsload:", err)
		os.Exit(1)
	}
	out, ok, err := run(cfg, pids)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsload:", err)
		os.Exit(1)
	}
	fmt.Printf("%s\n", out)
	if !ok {
		os.Exit(1)
	}
}

// sample is the CPU time of the processes after the first, added up, at
// a time.
type sample struct {
	at  time.Time
	cpu time.Duration
}

func run(cfg load.Config, pids []int) (out []byte, ok bool, err error) {
	cfg.ServerPID = pids[0]
	others := pids[1:]
	var marks progressMarks
	cfg.Progress = &marks
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if len(others) > 0 {
		wg.Go(func() {
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				d, err := proc.CPUSum(others)
				if err == nil {
					samples = append(samples, sample{time.Now(), d})
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		})
	}
	res, err := load.Run(context.Background(), cfg)
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, false, err
	}
	each := []float64{res.ServerCPU.Seconds()}
	if len(others) > 0 {
		first, ok := marks.first()
		if !ok {
			return nil, false, errors.New("the load printed no progress: warm-up and window together must last over a second")
		}
		start := first.Add(-time.Second + cfg.Warmup)
		end := start.Add(res.Duration)
		c0, ok0 := at(samples, start)
		c1, ok1 := at(samples, end)
		if !ok0 || !ok1 {
			return nil, false, errors.New("the other processes' CPU time was not sampled over the window")
		}
		res.ServerCPU += c1 - c0
		each = append(each, (c1 - c0).Seconds())
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, false, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, false, err
	}
	for i := range each {
		each[i] = math.Round(each[i]*1e3) / 1e3
	}
	m["server_cpu_each_s"] = each
	out, err = json.Marshal(m)
	return out, res.OK(), err
}

// at returns the last sample taken at or before t.
func at(samples []sample, t time.Time) (time.Duration, bool) {
	var d time.Duration
	found := false
	for _, s := range samples {
		if s.at.After(t) {
			break
		}
		d, found = s.cpu, true
	}
	return d, found
}

// progressMarks notes when the load first wrote its progress.
type progressMarks struct {
	mu sync.Mutex
	t  time.Time
}

func (p *progressMarks) Write(b []byte) (int, error) {
	now := time.Now()
	p.mu.Lock()
	if p.t.IsZero() {
		p.t = now
	}
	p.mu.Unlock()
	return len(b), nil
}

func (p *progressMarks) first() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.t, !p.t.IsZero()
}
