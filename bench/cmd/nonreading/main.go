// Command nonreading measures what clients that write and never read cost
// a server, and whether the others still get answers meanwhile.
//
// It connects one healthy client and takes the server's VmRSS, then
// connects -n writers (from 127.0.2.1 to 127.0.2.<-sources>) which all at
// once write -bytes each of "m\n" messages and never read an answer.
// The writers' socket buffers are fixed (-sndbuf, -rcvbuf) rather than
// left to grow to megabytes: what a server holds is the same either way,
// but 2,000 autotuned connections would reach the kernel's limit on TCP
// memory (tcp_mem), where it drops packets, the healthy client's too.
// Every answer is 24 bytes for 2 read, so a server that does not stop
// reading from a client whose answers pile up must hold twelve times what
// the client wrote. A writer stops when it has written -bytes, when a
// write makes no progress for -stall (the server has stopped reading from
// it), or when the burst has lasted -max-time or the server's VmRSS
// exceeds -max-rss, whichever comes first. Meanwhile the healthy client
// sends one message, reads its answer and pauses a millisecond, over and
// over, and its round trips go into a histogram.
//
// It reports the server's peak RSS over the burst (the larger of its
// VmRSS sampled every 10 ms and its VmHWM, when that rose) minus the RSS
// before, per writer; the healthy client's round trip (p99 and max); and
// the server's VmRSS -after the writers closed.
//
// It prints one JSON line (or text without -json). It exits non-zero only
// if it could not measure: a server that buffers without bound or leaves
// the healthy client waiting is a result, not an error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpoll/poll/bench/internal/client"
	"github.com/tcpoll/poll/bench/internal/proc"
	"github.com/tcpoll/poll/internal/load"
)

// Result is what nonreading reports.
type Result struct {
	Writers int   `json:"writers"`
	Bytes   int64 `json:"bytes_each"`
	// Opened writers; of them, Finished wrote every byte, Stalled stopped
	// on a write that made no progress for the stall time, Stopped were cut
	// short by the burst's time or RSS bound, and Failed saw an error
	// (a reset, the server closing): FirstError is one.
	Opened     int    `json:"opened"`
	Finished   int    `json:"finished"`
	Stalled    int    `json:"stalled"`
	Stopped    int    `json:"stopped"`
	Failed     int    `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
	// WrittenMB is what all writers wrote, in MiB.
	WrittenMB float64 `json:"written_mib"`
	// BurstSeconds is from the first write until the last writer stopped,
	// HoldSeconds from then until the server went quiet (it used under
	// 10% of a CPU over 300 ms, and at least 500 ms passed). Capped is set
	// if the -max-rss bound ended the burst, TimedOut if -max-time did.
	BurstSeconds float64 `json:"burst_s"`
	HoldSeconds  float64 `json:"hold_s"`
	Capped       bool    `json:"capped,omitempty"`
	TimedOut     bool    `json:"timed_out,omitempty"`

	RSSBeforeKB   int64   `json:"rss_before_kb"`
	PeakRSSKB     int64   `json:"peak_rss_kb"`
	PeakPerClient float64 `json:"peak_kib_per_client"`
	// RSSAfterKB is the VmRSS AfterSeconds after the writers closed.
	RSSAfterKB   int64   `json:"rss_after_kb"`
	AfterSeconds float64 `json:"after_s"`

	// The healthy client's round trips during the burst, and how many
	// of them waited past -timeout (each counted at the time it waited).
	Trips    uint64  `json:"healthy_trips"`
	P50      float64 `json:"healthy_p50_us"`
	P99      float64 `json:"healthy_p99_us"`
	Max      float64 `json:"healthy_max_us"`
	Timeouts int     `json:"healthy_timeouts"`
	// HealthyAfter is whether a new client was answered after the
	// writers closed.
	HealthyAfter bool `json:"healthy_answered_after"`

	ServerCPU float64 `json:"server_cpu_s"`
	Threads   int     `json:"server_threads"`
	// Died is set if the server was gone after the burst or after the
	// writers closed; the figures after that point are missing.
	Died bool `json:"died,omitempty"`
}

type config struct {
	addr              string
	pid, n, sources   int
	bytes, chunk      int
	maxRSSKB          int64
	stall, maxTime    time.Duration
	after, timeout    time.Duration
	settle, healthGap time.Duration
	sndbuf, rcvbuf    int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:3137", "server `address`")
	flag.IntVar(&cfg.pid, "pid", 0, "server `pid` (required): its /proc entries are read")
	flag.IntVar(&cfg.n, "n", 2000, "non-reading clients")
	size := flag.String("bytes", "2MB", "`size` each writes: a number with an optional KB or MB suffix (powers of 1024)")
	flag.IntVar(&cfg.chunk, "chunk", 64<<10, "bytes per write call")
	flag.IntVar(&cfg.sndbuf, "sndbuf", 64<<10, "writers' SO_SNDBUF in `bytes` (0: the kernel's autotuning)")
	flag.IntVar(&cfg.rcvbuf, "rcvbuf", 64<<10, "writers' SO_RCVBUF in `bytes` (0: the kernel's autotuning)")
	flag.IntVar(&cfg.sources, "sources", 16, "source addresses 127.0.2.1 to 127.0.2.N")
	flag.DurationVar(&cfg.stall, "stall", 2*time.Second, "a writer stops when a write makes no progress for this long")
	flag.DurationVar(&cfg.maxTime, "max-time", 30*time.Second, "longest burst")
	maxRSS := flag.Int64("max-rss", 1024, "stop the burst when the server's VmRSS exceeds this many `MiB`")
	flag.DurationVar(&cfg.after, "after", 10*time.Second, "when to read VmRSS after the writers closed")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "longest wait for a connect or an answer")
	flag.DurationVar(&cfg.settle, "settle", 500*time.Millisecond, "pause before reading VmRSS before the burst")
	flag.DurationVar(&cfg.healthGap, "gap", time.Millisecond, "the healthy client's pause between round trips")
	asJSON := flag.Bool("json", false, "print one JSON line")
	flag.Parse()
	var err error
	if cfg.bytes, err = parseSize(*size); err != nil || cfg.pid <= 0 || cfg.n <= 0 || cfg.chunk < 2 ||
		cfg.sources < 1 || cfg.sources > 254 || *maxRSS <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg.maxRSSKB = *maxRSS << 10
	res, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nonreading:", err)
		os.Exit(1)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Printf("%s\n", b)
		return
	}
	fmt.Printf("%d of %d writers: %d finished, %d stalled, %d stopped, %d failed; %.0f MiB written in %.1fs, server quiet %.1fs later\n",
		res.Opened, res.Writers, res.Finished, res.Stalled, res.Stopped, res.Failed, res.WrittenMB, res.BurstSeconds, res.HoldSeconds)
	fmt.Printf("server VmRSS %d kB, peak %d kB: %.1f KiB per client; %d kB %.0fs after\n",
		res.RSSBeforeKB, res.PeakRSSKB, res.PeakPerClient, res.RSSAfterKB, res.AfterSeconds)
	fmt.Printf("healthy client: %d round trips, p50 %.0fµs p99 %.0fµs max %.0fµs, %d timeouts; answered after: %v\n",
		res.Trips, res.P50, res.P99, res.Max, res.Timeouts, res.HealthyAfter)
	if res.Died {
		fmt.Println("the server died")
	}
}

// parseSize reads 2MB, 256KB or 1000.
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "MB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "KB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "KB")
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// How a writer ended.
const (
	finished = iota
	stalled
	stopped
	failed
)

func run(cfg config) (*Result, error) {
	if err := client.RaiseFileLimit(cfg.n, 64); err != nil {
		return nil, err
	}
	res := &Result{Writers: cfg.n, Bytes: int64(cfg.bytes)}

	healthy, err := dial(cfg.addr, net.IPv4(127, 0, 0, 1), cfg.timeout)
	if err != nil {
		return nil, fmt.Errorf("healthy client: %w", err)
	}
	defer func() { healthy.Close() }() // the last one
	buf := make([]byte, len(client.Answer))
	if err := roundTrip(healthy, buf, cfg.timeout); err != nil {
		return nil, fmt.Errorf("healthy client: %w", err)
	}
	time.Sleep(cfg.settle)
	if res.RSSBeforeKB, err = proc.RSS(cfg.pid); err != nil {
		return nil, err
	}
	hwm0, err := proc.HWM(cfg.pid)
	if err != nil {
		return nil, err
	}

	// Connect every writer before any writes: the burst starts at once.
	conns, dialErrs, first := client.OpenAll(cfg.n, 64, func(i int) (net.Conn, error) {
		return dialBuffers(cfg.addr, net.IPv4(127, 0, 2, byte(1+i%cfg.sources)), cfg.timeout, cfg.sndbuf, cfg.rcvbuf)
	})
	defer client.CloseAll(conns)
	if first != nil {
		res.FirstError = first.Error()
	}
	res.Opened = cfg.n - dialErrs
	res.Failed = dialErrs

	cpu0, err := proc.CPU(cfg.pid)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.maxTime)
	defer cancel()
	var capped atomic.Bool
	// A cancelled burst interrupts the writes blocked in the kernel.
	stopWrites := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			if c != nil {
				c.SetWriteDeadline(time.Now())
			}
		}
	})
	defer stopWrites()

	// Sample VmRSS until the writers are closed; past the bound, stop
	// the burst.
	var peak atomic.Int64
	peak.Store(res.RSSBeforeKB)
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-t.C:
			}
			if kb, err := proc.RSS(cfg.pid); err == nil {
				if kb > peak.Load() {
					peak.Store(kb)
				}
				if kb > cfg.maxRSSKB && !capped.Swap(true) {
					cancel()
				}
			}
		}
	}()

	// The healthy client, until the burst is over.
	var h load.Histogram
	var timeouts int
	probing := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for {
			select {
			case <-probing:
				return
			default:
			}
			t0 := time.Now()
			if err := roundTrip(healthy, buf, cfg.timeout); err != nil {
				h.Record(time.Since(t0))
				timeouts++
				// The connection is now out of step: start another.
				healthy.Close()
				for {
					c, err := dial(cfg.addr, net.IPv4(127, 0, 0, 1), cfg.timeout)
					if err == nil {
						healthy = c
						break
					}
					select {
					case <-probing:
						return
					case <-time.After(cfg.timeout):
					}
				}
				continue
			}
			h.Record(time.Since(t0))
			time.Sleep(cfg.healthGap)
		}
	}()

	msg := bytes.Repeat([]byte("m\n"), cfg.chunk/2)
	ends := make([]int, cfg.n)
	written := make([]int64, cfg.n)
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Go(func() {
			ends[i], written[i] = write(ctx, c, msg, cfg.bytes, cfg.stall, func(err error) {
				errOnce.Do(func() {
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				})
			})
		})
	}
	wg.Wait()
	res.BurstSeconds = round3(time.Since(start).Seconds())
	// What the writers wrote may still sit in the kernel's buffers: the
	// burst lasts until the server has read what it is going to read
	// and gone quiet (or the time or RSS bound).
	held := time.Now()
	quiet(ctx, cfg.pid)
	res.HoldSeconds = round3(time.Since(held).Seconds())
	res.TimedOut = ctx.Err() == context.DeadlineExceeded && !capped.Load()
	res.Capped = capped.Load()
	cancel()
	close(probing)
	<-probed
	close(sampling)
	<-sampled
	if cpu1, err := proc.CPU(cfg.pid); err == nil {
		res.ServerCPU = round3((cpu1 - cpu0).Seconds())
	}
	res.Threads, _ = proc.Threads(cfg.pid)

	var total int64
	for i, c := range conns {
		if c == nil {
			continue
		}
		total += written[i]
		switch ends[i] {
		case finished:
			res.Finished++
		case stalled:
			res.Stalled++
		case stopped:
			res.Stopped++
		case failed:
			res.Failed++
		}
	}
	res.WrittenMB = round3(float64(total) / (1 << 20))
	res.PeakRSSKB = peak.Load()
	if hwm1, err := proc.HWM(cfg.pid); err == nil && hwm1 > hwm0 {
		res.PeakRSSKB = max(res.PeakRSSKB, hwm1)
	}
	if res.Opened > 0 {
		res.PeakPerClient = round3(float64(res.PeakRSSKB-res.RSSBeforeKB) / float64(res.Opened))
	}
	res.Trips, res.Timeouts = h.Count(), timeouts
	res.P50, res.P99, res.Max = us(h.Quantile(0.5)), us(h.Quantile(0.99)), us(h.Max())

	if !proc.Alive(cfg.pid) {
		res.Died = true
		return res, nil
	}
	client.CloseAll(conns)
	closed := time.Now()
	time.Sleep(cfg.after)
	if res.RSSAfterKB, err = proc.RSS(cfg.pid); err != nil {
		res.Died = true
		return res, nil
	}
	res.AfterSeconds = round3(time.Since(closed).Seconds())
	if c, err := dial(cfg.addr, net.IPv4(127, 0, 0, 1), cfg.timeout); err == nil {
		res.HealthyAfter = roundTrip(c, buf, cfg.timeout) == nil
		c.Close()
	}
	return res, nil
}

// quiet returns when the server pid has used under 10% of a CPU over
// the last 300 ms, at least 500 ms from now, or when ctx is done.
func quiet(ctx context.Context, pid int) {
	const window = 300 * time.Millisecond
	select {
	case <-ctx.Done():
		return
	case <-time.After(500*time.Millisecond - window):
	}
	for {
		t0, err := proc.Ticks(pid)
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(window):
		}
		t1, err := proc.Ticks(pid)
		if err != nil || time.Duration(t1-t0)*proc.TickDuration < window/10 {
			return
		}
	}
}

// write writes size bytes of msg, over and over, to c, and returns how it
// ended and how much it wrote.
func write(ctx context.Context, c net.Conn, msg []byte, size int, stall time.Duration, fail func(error)) (int, int64) {
	var n int64
	for n < int64(size) {
		if ctx.Err() != nil {
			return stopped, n
		}
		c.SetWriteDeadline(time.Now().Add(stall))
		k, err := c.Write(msg[:min(len(msg), size-int(n))])
		n += int64(k)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return stopped, n
		case errors.Is(err, os.ErrDeadlineExceeded) && k == 0:
			return stalled, n
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Slow, not stuck: the stall time starts again.
		default:
			fail(err)
			return failed, n
		}
	}
	return finished, n
}

func dial(addr string, src net.IP, timeout time.Duration) (net.Conn, error) {
	return dialBuffers(addr, src, timeout, 0, 0)
}

// dialBuffers connects with the socket buffers set before the connect (the
// receive buffer fixes the window scale then), where not 0.
func dialBuffers(addr string, src net.IP, timeout time.Duration, sndbuf, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{
		Timeout:   timeout,
		LocalAddr: &net.TCPAddr{IP: src},
		Control: func(network, address string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if sndbuf > 0 {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
				}
				if rcvbuf > 0 && serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
				}
			})
			return errors.Join(err, serr)
		},
	}
	return d.Dial("tcp", addr)
}

// roundTrip sends one message on c and reads its answer.
func roundTrip(c net.Conn, buf []byte, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "h\n"); err != nil {
		return err
	}
	return client.ReadAnswer(c, buf)
}

func us(d time.Duration) float64 { return math.Round(float64(d)/1e2) / 10 }

func round3(x float64) float64 { return math.Round(x*1e3) / 1e3 }
