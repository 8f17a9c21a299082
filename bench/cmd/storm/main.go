// Command storm checks that a server survives a storm of clients that
// close and reset with answers owed, and is left as it should be: it runs
// internal/storm against it for -d (its storm clients send messages and
// "close" in every pattern and reset the connection; its polite clients
// check they are still served), then checks that the server process is
// alive, that it uses under -max-idle of a CPU over the next -idle (a loop
// left spinning on a dead connection would not be), and that a
// well-behaved client is answered: one message, its answer, then "close",
// "closing" and the end. A polite client that failed fails it too.
//
// Storm connections on which the server broke the protocol (a write
// reset because the server closed with input unread instead of lingering,
// wrong or missing answers on a connection that drained) are counted and
// shown, but do not fail the cell: every peer breaks it that way, and the
// cell asks whether a server survives the storm and keeps serving others.
//
// It prints one JSON line (or text without -json) whose "pass" is the
// verdict, and exits non-zero if the server failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/tcpoll/poll/bench/internal/client"
	"github.com/tcpoll/poll/bench/internal/proc"
	"github.com/tcpoll/poll/internal/storm"
)

const closing = "closing"

// Result is what storm reports.
type Result struct {
	Pass bool `json:"pass"`
	// Failed lists what failed, for a server that did not pass.
	Failed []string `json:"failed,omitempty"`

	// What the storm made and saw: see storm.Result.
	Seconds         float64  `json:"storm_s"`
	Storm           int      `json:"storm_conns"`
	StormDialErrors int      `json:"storm_dial_errors"`
	Drained         int      `json:"drained"`
	StormFailures   int      `json:"storm_failures"`
	StormErrors     []string `json:"storm_errors,omitempty"`
	Polite          int      `json:"polite"`
	PoliteAnswers   int      `json:"polite_answers"`
	PoliteFailures  int      `json:"polite_failures"`
	PoliteErrors    []string `json:"polite_errors,omitempty"`
	StormCPU        float64  `json:"storm_cpu_s"`

	Alive bool `json:"alive"`
	// IdleCPU is the share of one CPU the server used over IdleSeconds
	// after the storm.
	IdleCPU     float64 `json:"idle_cpu"`
	IdleTicks   int64   `json:"idle_ticks"`
	IdleSeconds float64 `json:"idle_s"`
	Answered    bool    `json:"answered"`
	AnswerError string  `json:"answer_error,omitempty"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "server `address`")
	pid := flag.Int("pid", 0, "server `pid` (required): its /proc entries are read")
	d := flag.Duration("d", 3*time.Second, "how long the storm lasts")
	stormers := flag.Int("stormers", storm.DefaultStormers, "storm clients")
	polite := flag.Int("polite", storm.DefaultPolite, "well-behaved clients during the storm")
	seed := flag.Uint64("seed", 0, "seed of the storm clients' choices")
	settle := flag.Duration("settle", 100*time.Millisecond, "pause after the storm, before the idle window")
	idle := flag.Duration("idle", time.Second, "idle window after the storm")
	maxIdle := flag.Float64("max-idle", 0.05, "most CPU the server may use in the idle window, as a share of one CPU")
	timeout := flag.Duration("timeout", 5*time.Second, "longest wait for a connect or an answer")
	asJSON := flag.Bool("json", false, "print one JSON line")
	flag.Parse()
	if *pid <= 0 || *d <= 0 || *idle <= 0 || *stormers < 0 || *polite < 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg := storm.Config{Addr: *addr, Duration: *d, Stormers: *stormers, Polite: *polite, Seed: *seed, Timeout: *timeout}
	res, err := run(cfg, *pid, *settle, *idle, *maxIdle)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Printf("%s\n", b)
	} else {
		fmt.Printf("storm %.1fs: %d storm connections (%d dial errors, %d failed), %d polite (%d failed); server CPU %.2fs\n",
			res.Seconds, res.Storm, res.StormDialErrors, res.StormFailures, res.Polite, res.PoliteFailures, res.StormCPU)
		fmt.Printf("after: alive %v, %.1f%% of a CPU over %.1fs, answered %v\n", res.Alive, 100*res.IdleCPU, res.IdleSeconds, res.Answered)
		verdict := "pass"
		if !res.Pass {
			verdict = "FAIL: " + strings.Join(res.Failed, "; ")
		}
		fmt.Println(verdict)
	}
	if !res.Pass {
		os.Exit(1)
	}
}

func run(cfg storm.Config, pid int, settle, idle time.Duration, maxIdle float64) (*Result, error) {
	res := &Result{}
	cpu0, err := proc.CPU(pid)
	if err != nil {
		return nil, err
	}
	sr, err := storm.Run(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	if cpu1, err := proc.CPU(pid); err == nil {
		res.StormCPU = math.Round((cpu1-cpu0).Seconds()*1e3) / 1e3
	}
	res.Seconds = math.Round(sr.Elapsed.Seconds()*1e3) / 1e3
	res.Storm, res.StormDialErrors, res.Drained, res.StormFailures = sr.Storm, sr.StormDialErrors, sr.Drained, sr.StormFailures
	res.Polite, res.PoliteAnswers, res.PoliteFailures = sr.Polite, sr.PoliteAnswers, sr.PoliteFailures
	res.StormErrors, res.PoliteErrors = texts(sr.StormErrors), texts(sr.PoliteErrors)
	if sr.PoliteFailures > 0 {
		res.Failed = append(res.Failed, fmt.Sprintf("%d polite connections failed during the storm, first: %s", sr.PoliteFailures, first(res.PoliteErrors)))
	}
	if sr.Storm == 0 {
		res.Failed = append(res.Failed, fmt.Sprintf("no storm connection was made (%d dial errors)", sr.StormDialErrors))
	}

	time.Sleep(settle)
	t0, err0 := proc.Ticks(pid)
	start := time.Now()
	time.Sleep(idle)
	t1, err1 := proc.Ticks(pid)
	elapsed := time.Since(start)
	res.IdleSeconds = math.Round(elapsed.Seconds()*1e3) / 1e3
	if err0 == nil && err1 == nil {
		res.IdleTicks = t1 - t0
		res.IdleCPU = math.Round(float64(time.Duration(res.IdleTicks)*proc.TickDuration)/float64(elapsed)*1e4) / 1e4
		if res.IdleCPU >= maxIdle {
			res.Failed = append(res.Failed, fmt.Sprintf("busy after the storm: %.0f%% of a CPU", 100*res.IdleCPU))
		}
	}

	if err := wellBehaved(cfg.Addr, cfg.Timeout); err != nil {
		res.AnswerError = err.Error()
		res.Failed = append(res.Failed, "a well-behaved client was not answered: "+err.Error())
	} else {
		res.Answered = true
	}
	if res.Alive = proc.Alive(pid); !res.Alive {
		res.Failed = append(res.Failed, "the server died")
	}
	res.Pass = len(res.Failed) == 0
	return res, nil
}

// wellBehaved sends one message, reads its answer, then sends "close" and
// expects "closing" and the end of the stream.
func wellBehaved(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "hello\nclose\n"); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if want := client.Answer + closing; string(got) != want {
		return fmt.Errorf("read %q then %v, want %q then the end", got, err, want)
	}
	return err
}

func texts(errs []error) []string {
	var s []string
	for _, err := range errs {
		s = append(s, err.Error())
	}
	return s
}

func first(s []string) string {
	if len(s) == 0 {
		return "(none kept)"
	}
	return s[0]
}
