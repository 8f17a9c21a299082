// Command httpload measures an HTTP server the way TechEmpower's
// plaintext test does: Debian's wrk with a pipelining script
// (bench/http/pipeline.lua), -c connections each writing -depth requests
// for GET /plaintext at once and waiting for their responses, with the
// request fields TechEmpower's harness sends. A warm-up run of wrk comes
// first (-warmup; its connections are closed), then the measured one.
//
// The server's CPU time (utime+stime of -pid, from /proc) is read just
// before the measured wrk starts and just after it exits, so it covers the
// whole run, connections opened and closed included, and is divided by
// the responses wrk counted.
//
// Latency is wrk's, per batch, with its correction for coordinated
// omission, and percentiles that count every sample (see pipeline.lua).
//
// It prints one JSON line, and exits non-zero if wrk saw an error (a
// socket error, a timeout, or a status other than 2xx or 3xx).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/tcpoll/poll/bench/internal/proc"
)

// wrkResult is the line pipeline.lua's done() prints.
type wrkResult struct {
	Requests      int64   `json:"requests"`
	DurationUS    int64   `json:"duration_us"`
	Bytes         int64   `json:"bytes"`
	ConnectErrors int64   `json:"connect_errors"`
	ReadErrors    int64   `json:"read_errors"`
	WriteErrors   int64   `json:"write_errors"`
	StatusErrors  int64   `json:"status_errors"`
	Timeouts      int64   `json:"timeouts"`
	P50           float64 `json:"p50_us"`
	P75           float64 `json:"p75_us"`
	P90           float64 `json:"p90_us"`
	P99           float64 `json:"p99_us"`
	Max           float64 `json:"max_us"`
	// LatencyUnseenPct is the share of wrk's latency samples (those its
	// coordinated-omission correction added) that lie below the least it
	// recorded, where its own percentiles do not look: pipeline.lua's
	// percentiles count them.
	LatencyUnseenPct float64 `json:"latency_unseen_pct"`
}

// Result is what httpload prints.
type Result struct {
	Conns   int `json:"conns"`
	Depth   int `json:"depth"`
	Threads int `json:"threads"`
	wrkResult
	Seconds          float64 `json:"seconds"`
	ReqsPerSec       float64 `json:"reqs_per_sec"`
	Errors           int64   `json:"errors"`
	ServerCPU        float64 `json:"server_cpu_s"`
	ServerCPUPerReq  float64 `json:"server_cpu_us_per_req"`
	ServerAliveAfter bool    `json:"server_alive_after"`
}

// The fields TechEmpower's harness sends with each plaintext request
// (wrk adds Host from the URL).
var fields = []string{
	"Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7",
	"Connection: keep-alive",
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server `address`")
	pid := flag.Int("pid", 0, "server process `id` (required): its CPU time is read over the run")
	conns := flag.Int("c", 256, "connections")
	depth := flag.Int("depth", 16, "requests pipelined per write")
	threads := flag.Int("t", 2, "wrk threads")
	d := flag.Duration("d", 3*time.Second, "measured `duration`, rounded to whole seconds (wrk's unit)")
	warmup := flag.Duration("warmup", time.Second, "warm-up run before the measured one, at least 1s (0: none)")
	script := flag.String("script", "http/pipeline.lua", "the pipelining `script`")
	wrk := flag.String("wrk", "wrk", "the wrk `binary`")
	flag.Parse()
	if *pid <= 0 || *conns < 1 || *depth < 1 || *threads < 1 || *d < time.Second {
		flag.Usage()
		os.Exit(2)
	}
	url := "http://" + *addr + "/plaintext"
	run := func(d time.Duration) (*wrkResult, error) {
		args := []string{"-t", strconv.Itoa(*threads), "-c", strconv.Itoa(*conns),
			"-d", fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds())), "--latency", "-s", *script}
		for _, f := range fields {
			args = append(args, "-H", f)
		}
		args = append(args, url, "--", strconv.Itoa(*depth))
		cmd := exec.Command(*wrk, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		// done() prints the last line; wrk's own summary comes before.
		lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
		last := lines[len(lines)-1]
		var r wrkResult
		if jerr := json.Unmarshal(last, &r); jerr != nil {
			return nil, fmt.Errorf("wrk: %v: %s%s", errors.Join(err, jerr), out.Bytes(), errOut.Bytes())
		}
		return &r, err
	}
	if *warmup > 0 {
		w := max(*warmup, time.Second)
		if _, err := run(w); err != nil {
			fmt.Fprintln(os.Stderr, "httpload: warm-up:", err)
			os.Exit(1)
		}
	}
	before, err := proc.CPU(*pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpload:", err)
		os.Exit(1)
	}
	w, err := run(*d)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpload:", err)
		os.Exit(1)
	}
	after, err := proc.CPU(*pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpload: the server is gone:", err)
		os.Exit(1)
	}
	r := Result{Conns: *conns, Depth: *depth, Threads: *threads, wrkResult: *w}
	r.Seconds = float64(w.DurationUS) / 1e6
	if r.Seconds > 0 {
		r.ReqsPerSec = float64(w.Requests) / r.Seconds
	}
	r.Errors = w.ConnectErrors + w.ReadErrors + w.WriteErrors + w.StatusErrors + w.Timeouts
	r.ServerCPU = (after - before).Seconds()
	if w.Requests > 0 {
		r.ServerCPUPerReq = r.ServerCPU * 1e6 / float64(w.Requests)
	}
	r.ServerAliveAfter = proc.Alive(*pid)
	b, _ := json.Marshal(r)
	fmt.Printf("%s\n", b)
	if r.Errors > 0 || w.Requests == 0 || !r.ServerAliveAfter {
		os.Exit(1)
	}
}
