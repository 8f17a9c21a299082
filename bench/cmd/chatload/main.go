// Command chatload drives a chat server (the protocol of bench/README.md's
// chat cell: every line a client sends goes to every other client) and
// checks and measures the fan-out.
//
// It connects -clients clients. The first -senders of them send lines and
// read; the last -nonreaders never read; the rest read. Before any data it
// makes sure every client is in the room: clients 0 and 1 send probe lines
// until every client has read one (a non-reader reads only that). Then the
// senders send -line-size lines, each with its sender, a sequence number
// and the time it was sent: at -rate lines a second each, or with -rate 0
// as fast as the slowest reader allows, each sender keeping at most
// -inflight lines on their way to it, so that no reader is overrun.
//
// Every reader checks each line whole, byte for byte, and that it gets
// every other sender's lines in order, none lost or twice and never its
// own. After -warmup, for -duration, it counts the lines delivered and
// their latency, send to receive, on this process's clock; the server's
// CPU time (-server-pid) over the same window gives delivered lines per
// server CPU-second. Then the senders stop, the last lines are awaited
// (-drain), and each non-reader reads what it was sent until the server's
// close shows (EOF or a reset) or nothing comes for a second: it was
// disconnected, or it was not. The server's peak RSS is its VmHWM at the
// end.
//
// -stall-check is the scenario "a client that stops reading while the
// others publish 20 MB is disconnected": one non-reader (unless
// -nonreaders says more), and instead of a timed window the senders
// publish -stall-bytes between them, as fast as the readers allow.
//
// It prints one JSON line on stdout and a summary on stderr, and exits
// non-zero if a reader lost a line, got one broken, twice, out of order or
// its own, was disconnected, or a sender failed; or, with -stall-check, if
// a stalled client was not disconnected.
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpoll/poll/bench/internal/client"
	"github.com/tcpoll/poll/bench/internal/proc"
	"github.com/tcpoll/poll/internal/load"
)

// Result is what chatload reports.
type Result struct {
	Clients    int     `json:"clients"`
	Senders    int     `json:"senders"`
	Readers    int     `json:"readers"` // the senders among them
	NonReaders int     `json:"nonreaders"`
	Rate       float64 `json:"rate"`               // lines a second per sender; 0: as fast as allowed
	Inflight   int     `json:"inflight,omitempty"` // with rate 0
	LineSize   int     `json:"line_size"`
	StallCheck bool    `json:"stall_check,omitempty"`
	// Seconds is the measured window: after the warm-up until the senders
	// stop, or with -stall-check the whole publishing.
	Seconds float64 `json:"duration_s"`
	// Sent is the lines all senders sent over the whole run, SentMiB
	// their bytes.
	Sent    int64   `json:"sent"`
	SentMiB float64 `json:"sent_mib"`
	// Delivered is the lines readers received in the window.
	Delivered       int64   `json:"delivered"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	P50             float64 `json:"p50_us"`
	P99             float64 `json:"p99_us"`
	Max             float64 `json:"max_us"`
	// Server figures, with -server-pid: its CPU time over the window, and
	// per line delivered in it; its VmRSS after the clients connected and
	// its VmHWM at the end.
	ServerCPU          float64 `json:"server_cpu_s,omitempty"`
	DeliveredPerCPUSec float64 `json:"delivered_per_cpu_s,omitempty"`
	CPUPerLine         float64 `json:"server_cpu_ns_per_line,omitempty"`
	RSSBeforeKB        int64   `json:"rss_before_kb,omitempty"`
	PeakRSSKB          int64   `json:"peak_rss_kb,omitempty"`
	ClientCPU          float64 `json:"client_cpu_s"`

	NonReadersDisconnected int `json:"nonreaders_disconnected"`
	// The checks. Lost counts the lines a reader never got: skipped in a
	// sender's sequence, or missing at the end on a reader still
	// connected. Duplicates came twice or out of order, Corrupt were not a
	// whole line of the size sent, Own came back to their sender.
	ReadersDisconnected int    `json:"readers_disconnected"`
	Lost                int64  `json:"lost_lines"`
	Duplicates          int64  `json:"duplicate_lines"`
	Corrupt             int64  `json:"corrupt_lines"`
	Own                 int64  `json:"own_lines"`
	SenderErrors        int    `json:"sender_errors"`
	OK                  bool   `json:"ok"`
	FirstError          string `json:"first_error,omitempty"`
}

type config struct {
	addr                             string
	clients, senders, nonreaders     int
	rate                             float64
	inflight, lineSize               int
	warmup, duration, drain, maxTime time.Duration
	pid                              int
	stallCheck                       bool
	stallBytes                       int64
	setupTimeout                     time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:3137", "server `address`")
	flag.IntVar(&cfg.clients, "clients", 100, "clients in all")
	flag.IntVar(&cfg.senders, "senders", 10, "clients that send (and read)")
	flag.IntVar(&cfg.nonreaders, "nonreaders", 0, "clients that never read")
	flag.Float64Var(&cfg.rate, "rate", 0, "lines a second per sender; 0: as fast as the slowest reader allows")
	flag.IntVar(&cfg.inflight, "inflight", 16, "with -rate 0, most `lines` of a sender on their way to a reader")
	flag.IntVar(&cfg.lineSize, "line-size", 64, "bytes a line, its \\n included")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "sending before the measured window")
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "measured window")
	flag.DurationVar(&cfg.drain, "drain", 5*time.Second, "longest wait for the last lines after the senders stop")
	flag.IntVar(&cfg.pid, "server-pid", 0, "server `pid`: its CPU time and peak RSS are read from /proc")
	flag.BoolVar(&cfg.stallCheck, "stall-check", false, "one client stops reading while the senders publish -stall-bytes: is it disconnected?")
	flag.Int64Var(&cfg.stallBytes, "stall-bytes", 20<<20, "with -stall-check, `bytes` the senders publish between them")
	flag.DurationVar(&cfg.maxTime, "max-time", time.Minute, "with -stall-check, longest publishing")
	flag.DurationVar(&cfg.setupTimeout, "setup-timeout", 10*time.Second, "longest wait for every client to be in the room")
	flag.Parse()
	if cfg.stallCheck && cfg.nonreaders == 0 {
		cfg.nonreaders = 1
	}
	readers := cfg.clients - cfg.nonreaders
	if cfg.senders < 1 || cfg.senders > maxSenders || readers < 2 || cfg.senders > readers || cfg.nonreaders < 0 ||
		cfg.rate < 0 || cfg.inflight < 1 || cfg.lineSize < minLineSize || cfg.duration <= 0 || cfg.warmup < 0 {
		fmt.Fprintf(os.Stderr, "chatload: want 1 ≤ -senders ≤ clients that read (at least 2), -line-size ≥ %d, -inflight ≥ 1\n", minLineSize)
		flag.Usage()
		os.Exit(2)
	}
	if err := client.RaiseFileLimit(cfg.clients, 64); err != nil {
		fmt.Fprintln(os.Stderr, "chatload:", err)
		os.Exit(1)
	}
	res, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatload:", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("%s\n", b)
	summary(res)
	if !res.OK {
		os.Exit(1)
	}
}

// Phases of the run: a line is counted in the phase its reader got it.
const (
	setup = iota
	warming
	measuring
	stopped
)

// stats is what one reader saw; only its goroutine writes it, until it
// ends.
type stats struct {
	hist                           load.Histogram
	delivered                      int64
	lost, duplicates, corrupt, own int64
	err                            error
}

type state struct {
	cfg   config
	base  time.Time
	conns []net.Conn
	phase atomic.Int32

	// acked[r][s] is the last of sender s's lines reader r got in order;
	// sent[s] the last s sent.
	acked [][]atomic.Int64
	sent  []atomic.Int64
	// A sender whose window is full waits for every reader to have acked
	// target[s]: remaining[s] counts down the readers still short of it,
	// and the one that brings it to zero rings notify[s].
	target    []atomic.Int64
	remaining []atomic.Int64
	notify    []chan struct{}

	probed  []atomic.Bool // [client]: it read a probe
	dead    []atomic.Bool // [reader]: the server closed it
	closing atomic.Bool   // the readers are being stopped
	stats   []stats       // [reader]
	sendErr []error       // [sender]
}

func run(cfg config) (*Result, error) {
	readers := cfg.clients - cfg.nonreaders
	st := &state{
		cfg:       cfg,
		base:      time.Now(),
		acked:     make([][]atomic.Int64, readers),
		sent:      make([]atomic.Int64, cfg.senders),
		target:    make([]atomic.Int64, cfg.senders),
		remaining: make([]atomic.Int64, cfg.senders),
		notify:    make([]chan struct{}, cfg.senders),
		probed:    make([]atomic.Bool, cfg.clients),
		dead:      make([]atomic.Bool, readers),
		stats:     make([]stats, readers),
		sendErr:   make([]error, cfg.senders),
	}
	for r := range st.acked {
		st.acked[r] = make([]atomic.Int64, cfg.senders)
	}
	for s := range st.notify {
		st.notify[s] = make(chan struct{}, 1)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conns, failed, first := client.OpenAll(cfg.clients, 16, func(int) (net.Conn, error) { return d.Dial("tcp", cfg.addr) })
	st.conns = conns
	defer client.CloseAll(conns)
	if failed > 0 {
		return nil, fmt.Errorf("%d of %d clients did not connect: %v", failed, cfg.clients, first)
	}
	res := &Result{
		Clients: cfg.clients, Senders: cfg.senders, Readers: readers, NonReaders: cfg.nonreaders,
		Rate: cfg.rate, LineSize: cfg.lineSize, StallCheck: cfg.stallCheck,
	}
	if cfg.rate == 0 {
		res.Inflight = cfg.inflight
	}

	var readWG, nonreadWG sync.WaitGroup
	for r := range readers {
		readWG.Go(func() { st.read(r) })
	}
	for i := readers; i < cfg.clients; i++ {
		nonreadWG.Go(func() { st.readProbe(i) })
	}
	if err := st.probe(); err != nil {
		st.stopReaders(&readWG)
		return nil, err
	}
	nonreadWG.Wait()
	if cfg.pid > 0 {
		res.RSSBeforeKB, _ = proc.RSS(cfg.pid)
	}

	// The senders warm up, then the window is measured; with -stall-check
	// each publishes its share of -stall-bytes and stops, and the window is
	// the whole publishing.
	var quota int64 = math.MaxInt64
	window := cfg.duration
	if cfg.stallCheck {
		each := int64(cfg.senders * cfg.lineSize)
		quota = max(1, (cfg.stallBytes+each-1)/each)
		window = cfg.maxTime
	}
	sendersDone := make(chan struct{})
	startSenders := func() {
		var wg sync.WaitGroup
		for s := range cfg.senders {
			wg.Go(func() { st.send(s, quota) })
		}
		go func() { wg.Wait(); close(sendersDone) }()
	}
	if !cfg.stallCheck {
		st.phase.Store(warming)
		startSenders()
		time.Sleep(cfg.warmup)
	}
	c0, err := serverCPU(cfg.pid)
	if err != nil {
		st.phase.Store(stopped)
		st.stopReaders(&readWG)
		return nil, err
	}
	self0 := selfCPU()
	start := time.Now()
	st.phase.Store(measuring)
	if cfg.stallCheck {
		startSenders()
	}
	select {
	case <-time.After(window):
	case <-sendersDone: // the quota sent, or every sender failed
	}
	st.phase.Store(stopped)
	seconds := time.Since(start).Seconds()
	c1, err := serverCPU(cfg.pid)
	self1 := selfCPU()
	st.wakeSenders()
	<-sendersDone
	if err != nil {
		st.stopReaders(&readWG)
		return nil, fmt.Errorf("server gone at the end of the window: %w", err)
	}

	st.awaitDrain()
	st.stopReaders(&readWG)
	res.NonReadersDisconnected = st.checkNonReaders()
	if cfg.pid > 0 {
		res.PeakRSSKB, _ = proc.HWM(cfg.pid)
	}

	// The figures and the checks.
	res.Seconds = round3(seconds)
	res.ServerCPU = round3((c1 - c0).Seconds())
	res.ClientCPU = round3((self1 - self0).Seconds())
	for s := range cfg.senders {
		res.Sent += st.sent[s].Load()
		if err := st.sendErr[s]; err != nil {
			res.SenderErrors++
			res.FirstError = cmp.Or(res.FirstError, fmt.Sprintf("sender %d: %v", s, err))
		}
	}
	res.SentMiB = round3(float64(res.Sent*int64(cfg.lineSize)) / (1 << 20))
	var h load.Histogram
	for r := range readers {
		x := &st.stats[r]
		h.Merge(&x.hist)
		res.Delivered += x.delivered
		res.Lost += x.lost
		res.Duplicates += x.duplicates
		res.Corrupt += x.corrupt
		res.Own += x.own
		if st.dead[r].Load() {
			res.ReadersDisconnected++
			res.FirstError = cmp.Or(res.FirstError, fmt.Sprintf("reader %d disconnected: %v", r, x.err))
			continue
		}
		for s := range cfg.senders {
			if s != r {
				res.Lost += st.sent[s].Load() - st.acked[r][s].Load()
			}
		}
	}
	res.DeliveredPerSec = math.Round(float64(res.Delivered) / seconds)
	res.P50, res.P99, res.Max = us(h.Quantile(0.5)), us(h.Quantile(0.99)), us(h.Max())
	if cfg.pid > 0 && res.Delivered > 0 && c1 > c0 {
		res.DeliveredPerCPUSec = math.Round(float64(res.Delivered) / (c1 - c0).Seconds())
		res.CPUPerLine = round3(float64(c1-c0) / float64(res.Delivered))
	}
	res.OK = res.ReadersDisconnected == 0 && res.Lost == 0 && res.Duplicates == 0 && res.Corrupt == 0 &&
		res.Own == 0 && res.SenderErrors == 0 && (!cfg.stallCheck || res.NonReadersDisconnected == cfg.nonreaders)
	return res, nil
}

// probe has clients 0 and 1 send probe lines until every client has read
// one: then the server has every client in its room.
func (st *state) probe() error {
	deadline := time.Now().Add(st.cfg.setupTimeout)
	for {
		for s := range 2 {
			if _, err := st.conns[s].Write(appendProbe(nil, s)); err != nil {
				return fmt.Errorf("probe from client %d: %w", s, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
		waiting := 0
		for i := range st.probed {
			if !st.probed[i].Load() {
				waiting++
			}
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d clients got no probe line in %v: not every client is in the room", waiting, st.cfg.clients, st.cfg.setupTimeout)
		}
		for r := range st.dead {
			if st.dead[r].Load() {
				return fmt.Errorf("reader %d disconnected before the run: %v", r, st.stats[r].err)
			}
		}
	}
}

// readProbe is a non-reader: it reads until it has a probe line, then
// never again, until checkNonReaders.
func (st *state) readProbe(id int) {
	buf := make([]byte, 4<<10)
	n := 0
	st.conns[id].SetReadDeadline(time.Now().Add(st.cfg.setupTimeout))
	defer st.conns[id].SetReadDeadline(time.Time{})
	for {
		m, err := st.conns[id].Read(buf[n:])
		n += m
		for b := buf[:n]; ; {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				break
			}
			if _, ok := parseProbe(b[:i+1]); ok {
				st.probed[id].Store(true)
				return
			}
			b = b[i+1:]
		}
		if err != nil || n == len(buf) {
			return
		}
	}
}

// read is reader r: it checks every line it gets and publishes how far it
// got in each sender's lines.
func (st *state) read(r int) {
	c, x := st.conns[r], &st.stats[r]
	next := make([]int64, st.cfg.senders) // the sequence number due from each sender
	for s := range next {
		next[s] = 1
	}
	size := st.cfg.lineSize
	buf := make([]byte, max(64<<10, 4*size))
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if m > 0 {
			now := int64(time.Since(st.base))
			measured := st.phase.Load() == measuring
			n += m
			b := buf[:n]
			for {
				i := bytes.IndexByte(b, '\n')
				if i < 0 {
					break
				}
				line := b[:i+1]
				b = b[i+1:]
				if line[0] == probeMark {
					if s, ok := parseProbe(line); !ok {
						x.corrupt++
					} else if s == r {
						x.own++
					} else {
						st.probed[r].Store(true)
					}
					continue
				}
				s, seq, sent, ok := parseLine(line, size)
				switch {
				case !ok || s >= st.cfg.senders:
					x.corrupt++
					continue
				case s == r:
					x.own++
					continue
				case seq < next[s]:
					x.duplicates++
					continue
				case seq > next[s]:
					x.lost += seq - next[s]
				}
				next[s] = seq + 1
				if measured {
					x.hist.Record(time.Duration(now - sent))
					x.delivered++
				}
			}
			if len(b) == len(buf) { // no line ends in a full buffer
				x.corrupt++
				b = nil
			}
			n = copy(buf, b)
			st.publish(r, next)
		}
		if err != nil {
			if !st.closing.Load() {
				x.err = err
				st.dead[r].Store(true)
				st.wakeSenders()
			}
			return
		}
	}
}

// publish stores how far reader r got in each sender's lines, and rings a
// waiting sender if r was the last reader it waited for.
func (st *state) publish(r int, next []int64) {
	for s, nx := range next {
		if s == r {
			continue
		}
		got := nx - 1
		old := st.acked[r][s].Load() // only r stores it
		if got == old {
			continue
		}
		st.acked[r][s].Store(got)
		if t := st.target[s].Load(); old < t && t <= got && st.remaining[s].Add(-1) <= 0 {
			ring(st.notify[s])
		}
	}
}

func ring(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// wakeSenders rings every sender: a reader died, or the window ended.
func (st *state) wakeSenders() {
	for _, c := range st.notify {
		ring(c)
	}
}

// slowest returns the least any live reader but s acked of s's lines.
func (st *state) slowest(s int) int64 {
	least := int64(math.MaxInt64)
	for r := range st.acked {
		if r != s && !st.dead[r].Load() {
			least = min(least, st.acked[r][s].Load())
		}
	}
	return least
}

// waitFor blocks sender s until every live reader has acked target of its
// lines, the run stops, or 20 ms pass.
func (st *state) waitFor(s int, target int64, timer *time.Timer) {
	select {
	case <-st.notify[s]: // a stale ring
	default:
	}
	st.remaining[s].Store(0)
	st.target[s].Store(target)
	// A reader that stores its progress and then loads the target, while
	// this loads its progress after storing the target, is seen by one of
	// the two: counted short here and counting itself down there, or
	// neither. Counting down a stale target only wakes this early.
	short := int64(0)
	for r := range st.acked {
		if r != s && !st.dead[r].Load() && st.acked[r][s].Load() < target {
			short++
		}
	}
	if st.remaining[s].Add(short) <= 0 {
		return
	}
	timer.Reset(20 * time.Millisecond)
	select {
	case <-st.notify[s]:
	case <-timer.C:
	}
	timer.Stop()
}

// send is sender s: it sends quota lines, or until the run stops.
func (st *state) send(s int, quota int64) {
	cfg := st.cfg
	c := st.conns[s]
	const maxBatch = 256
	batch := make([]byte, 0, maxBatch*cfg.lineSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var seq int64
	var deadline, blocked time.Time
	start := time.Now()
	for st.phase.Load() < stopped && seq < quota {
		var k int64
		if cfg.rate > 0 {
			due := int64(time.Since(start).Seconds()*cfg.rate) + 1 // lines due by now, the first at once
			if k = due - seq; k <= 0 {
				time.Sleep(time.Until(start.Add(time.Duration(float64(seq) / cfg.rate * 1e9))))
				continue
			}
		} else if slowest := st.slowest(s); slowest == math.MaxInt64 {
			return // no reader left to send to
		} else if k = slowest + int64(cfg.inflight) - seq; k > 0 {
			blocked = time.Time{}
		} else if blocked.IsZero() || time.Since(blocked) < time.Second {
			if blocked.IsZero() {
				blocked = time.Now()
			}
			st.waitFor(s, seq-int64(cfg.inflight)+max(1, int64(cfg.inflight)/2), timer)
			continue
		} else {
			// A reader the server lost lines for waits for lines that
			// never come: the next ones show it the gap.
			k, blocked = max(1, int64(cfg.inflight)/2), time.Time{}
		}
		k = min(k, maxBatch, quota-seq)
		now := time.Now()
		sent := int64(now.Sub(st.base))
		batch = batch[:0]
		for range k {
			seq++
			batch = appendLine(batch, s, seq, sent, cfg.lineSize)
		}
		// A server that stops reading must not hang the run.
		if now.After(deadline.Add(-9 * time.Second)) {
			deadline = now.Add(10 * time.Second)
			c.SetWriteDeadline(deadline)
		}
		if _, err := c.Write(batch); err != nil {
			st.sendErr[s] = err
			return
		}
		st.sent[s].Store(seq)
	}
}

// awaitDrain waits until every live reader has every line sent, or for
// -drain.
func (st *state) awaitDrain() {
	deadline := time.Now().Add(st.cfg.drain)
	for time.Now().Before(deadline) {
		behind := false
		for s := range st.sent {
			if st.slowest(s) < st.sent[s].Load() {
				behind = true
				break
			}
		}
		if !behind {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopReaders ends the readers' goroutines.
func (st *state) stopReaders(wg *sync.WaitGroup) {
	st.closing.Store(true)
	for r := range st.stats {
		st.conns[r].SetReadDeadline(time.Now())
	}
	wg.Wait()
}

// checkNonReaders has each non-reader read what it was sent until the
// server's close shows, or nothing comes for a second, and returns how
// many the server had disconnected.
func (st *state) checkNonReaders() int {
	var closed atomic.Int64
	var wg sync.WaitGroup
	for i := st.cfg.clients - st.cfg.nonreaders; i < st.cfg.clients; i++ {
		wg.Go(func() {
			c := st.conns[i]
			buf := make([]byte, 256<<10)
			limit := time.Now().Add(15 * time.Second)
			for time.Now().Before(limit) {
				c.SetReadDeadline(time.Now().Add(time.Second))
				_, err := c.Read(buf)
				var ne net.Error
				switch {
				case err == nil:
					continue
				case errors.As(err, &ne) && ne.Timeout():
				default: // EOF, a reset
					closed.Add(1)
				}
				return
			}
		})
	}
	wg.Wait()
	return int(closed.Load())
}

// serverCPU returns pid's CPU time, or 0 without a pid.
func serverCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	return proc.CPU(pid)
}

func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// summary writes res for people, on stderr.
func summary(res *Result) {
	w := os.Stderr
	mode := fmt.Sprintf("%.0f lines/s each", res.Rate)
	if res.Rate == 0 {
		mode = fmt.Sprintf("as fast as allowed, %d in flight", res.Inflight)
	}
	fmt.Fprintf(w, "%d clients (%d senders, %d readers, %d non-readers), %d-byte lines, %s\n",
		res.Clients, res.Senders, res.Readers, res.NonReaders, res.LineSize, mode)
	fmt.Fprintf(w, "sent %d lines (%.1f MiB); delivered %d in %.2f s: %.0f/s; latency p50 %.0f µs, p99 %.0f µs, max %.0f µs\n",
		res.Sent, res.SentMiB, res.Delivered, res.Seconds, res.DeliveredPerSec, res.P50, res.P99, res.Max)
	if res.ServerCPU > 0 {
		fmt.Fprintf(w, "server CPU %.2f s: %.0f lines per CPU-second (%.0f ns a line); RSS %.1f MiB after connecting, peak %.1f MiB; client CPU %.2f s\n",
			res.ServerCPU, res.DeliveredPerCPUSec, res.CPUPerLine, float64(res.RSSBeforeKB)/1024, float64(res.PeakRSSKB)/1024, res.ClientCPU)
	}
	fmt.Fprintf(w, "non-readers disconnected: %d of %d\n", res.NonReadersDisconnected, res.NonReaders)
	var bad []string
	for _, f := range []struct {
		n    int64
		what string
	}{
		{int64(res.ReadersDisconnected), "readers disconnected"},
		{res.Lost, "lines lost"},
		{res.Duplicates, "lines twice or out of order"},
		{res.Corrupt, "lines broken"},
		{res.Own, "lines back to their sender"},
		{int64(res.SenderErrors), "senders failed"},
	} {
		if f.n > 0 {
			bad = append(bad, fmt.Sprintf("%d %s", f.n, f.what))
		}
	}
	if res.StallCheck && res.NonReadersDisconnected < res.NonReaders {
		bad = append(bad, "a stalled client was not disconnected")
	}
	if len(bad) == 0 {
		fmt.Fprintln(w, "ok: every reader got every other sender's lines, whole, in order, once")
		return
	}
	fmt.Fprintf(w, "FAIL: %s\n", strings.Join(bad, "; "))
	if res.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", res.FirstError)
	}
}

func round3(x float64) float64 { return math.Round(x*1e3) / 1e3 }

// us returns d in microseconds, to a tenth.
func us(d time.Duration) float64 { return math.Round(float64(d)/1e2) / 10 }
