// Command report turns the records bench/run accumulates (one JSON object
// a line) into the tables of results.md, printed on stdout, and a bar
// chart, results.svg, of messages per second and server CPU µs per
// message for each load and server, and connections per second and server
// CPU µs per connection in churn. The SVG is written by hand: no plotting
// library, no fonts beyond the viewer's sans-serif. The output depends on
// the records alone.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
)

// Record is one line of the results file.
type Record struct {
	Server string `json:"server"`
	// Check is "ok" or "FAIL": the outcome of tcpoll check.
	Check string `json:"check"`
	// Kind is "check", "load", "idle", "churn", "nonreading", "storm",
	// "chat", "tls" or "http".
	Kind   string          `json:"kind"`
	Round  int             `json:"round,omitempty"`  // load, idle, churn, chat: 1, 2, ...
	Load   string          `json:"load,omitempty"`   // "CONNSxDEPTH"; chat: the scenario; tls: the measurement; http: "check" or the load
	Failed string          `json:"failed,omitempty"` // check: the summary line
	Error  string          `json:"error,omitempty"`  // the measurement itself failed
	Result json.RawMessage `json:"result,omitempty"`
}

// LoadResult holds the fields of `tcpoll load -json` used here.
type LoadResult struct {
	MsgsPerSec      float64 `json:"msgs_per_sec"`
	P50             float64 `json:"p50_us"`
	P99             float64 `json:"p99_us"`
	P999            float64 `json:"p999_us"`
	Mismatches      int64   `json:"mismatches"`
	Errors          int64   `json:"errors"`
	Timeouts        int64   `json:"timeouts"`
	ServerCPUPerMsg float64 `json:"server_cpu_us_per_msg"`
}

// IdleResult holds the fields of `idleconns -json`.
type IdleResult struct {
	Conns       int     `json:"conns"`
	Opened      int     `json:"opened"`
	Errors      int     `json:"errors"`
	RSSBeforeKB int64   `json:"rss_before_kb"`
	RSSAfterKB  int64   `json:"rss_after_kb"`
	RSSPerConnB float64 `json:"rss_per_conn_b"`
	IdleTicks   int64   `json:"idle_ticks"`
	IdleSeconds float64 `json:"idle_s"`
	Threads     int     `json:"server_threads"`
}

// ChurnResult holds the fields of `churn -json`.
type ChurnResult struct {
	Clients          int     `json:"clients"`
	Conns            int64   `json:"conns"`
	ConnsPerSec      float64 `json:"conns_per_sec"`
	P50              float64 `json:"p50_us"`
	P99              float64 `json:"p99_us"`
	Errors           int64   `json:"errors"`
	ServerCPUPerConn float64 `json:"server_cpu_us_per_conn"`
}

// NonReadResult holds the fields of `nonreading -json`.
type NonReadResult struct {
	Writers       int     `json:"writers"`
	Bytes         int64   `json:"bytes_each"`
	Opened        int     `json:"opened"`
	Finished      int     `json:"finished"`
	Stalled       int     `json:"stalled"`
	Stopped       int     `json:"stopped"`
	Failed        int     `json:"failed"`
	WrittenMB     float64 `json:"written_mib"`
	BurstSeconds  float64 `json:"burst_s"`
	HoldSeconds   float64 `json:"hold_s"`
	Capped        bool    `json:"capped"`
	TimedOut      bool    `json:"timed_out"`
	RSSBeforeKB   int64   `json:"rss_before_kb"`
	PeakRSSKB     int64   `json:"peak_rss_kb"`
	PeakPerClient float64 `json:"peak_kib_per_client"`
	RSSAfterKB    int64   `json:"rss_after_kb"`
	AfterSeconds  float64 `json:"after_s"`
	Trips         uint64  `json:"healthy_trips"`
	P99           float64 `json:"healthy_p99_us"`
	Max           float64 `json:"healthy_max_us"`
	Timeouts      int     `json:"healthy_timeouts"`
	HealthyAfter  bool    `json:"healthy_answered_after"`
	Died          bool    `json:"died"`
}

// StormResult holds the fields of `storm -json`.
type StormResult struct {
	Pass           bool     `json:"pass"`
	Failed         []string `json:"failed"`
	Seconds        float64  `json:"storm_s"`
	Storm          int64    `json:"storm_conns"`
	Drained        int64    `json:"drained"`
	StormFailures  int64    `json:"storm_failures"`
	Polite         int64    `json:"polite"`
	PoliteFailures int64    `json:"polite_failures"`
	StormCPU       float64  `json:"storm_cpu_s"`
	IdleCPU        float64  `json:"idle_cpu"`
	IdleSeconds    float64  `json:"idle_s"`
	Answered       bool     `json:"answered"`
}

func main() {
	in := flag.String("in", "results.jsonl", "results `file`, one JSON object a line")
	svg := flag.String("svg", "", "write the chart to this `file`")
	flag.Parse()
	recs, err := read(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	rep := build(recs)
	rep.markdown(os.Stdout)
	if *svg != "" {
		f, err := os.Create(*svg)
		if err == nil {
			rep.chart(f)
			err = f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
	}
}

func read(name string) ([]Record, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

// report is the records sorted out.
type report struct {
	servers []string // in the order first seen
	loads   []string
	check   map[string]Record
	load    map[[2]string]*LoadResult         // [server, load]: medians over rounds
	byRound map[[2]string]map[int]*LoadResult // [server, load]: each round's
	loadErr map[[2]string]string
	idle    map[string][]*IdleResult // each instance's, in run order
	idleErr map[string]string

	churnRound map[string]map[int]*ChurnResult // each round's
	churn      map[string]*ChurnResult         // medians over rounds
	churnErr   map[string]string
	nonread    map[string]*NonReadResult
	nonreadErr map[string]string
	storm      map[string]*StormResult
	stormErr   map[string]string

	chat chatRecords // the chat cell's, of servers of its own
	tls  tlsRecords  // the TLS cell's, of servers of its own
	http httpRecords // the HTTP cell's, of servers of its own
}

func build(recs []Record) *report {
	r := &report{
		check:   map[string]Record{},
		load:    map[[2]string]*LoadResult{},
		byRound: map[[2]string]map[int]*LoadResult{},
		loadErr: map[[2]string]string{},
		idle:    map[string][]*IdleResult{},
		idleErr: map[string]string{},

		churnRound: map[string]map[int]*ChurnResult{},
		churn:      map[string]*ChurnResult{},
		churnErr:   map[string]string{},
		nonread:    map[string]*NonReadResult{},
		nonreadErr: map[string]string{},
		storm:      map[string]*StormResult{},
		stormErr:   map[string]string{},
		chat:       newChatRecords(),
		tls:        newTLSRecords(),
		http:       newHTTPRecords(),
	}
	for _, rec := range recs {
		if rec.Kind == "chat" {
			r.chat.add(rec)
			continue
		}
		if rec.Kind == "tls" {
			r.tls.add(rec)
			continue
		}
		if rec.Kind == "http" {
			r.http.add(rec)
			continue
		}
		if !slices.Contains(r.servers, rec.Server) {
			r.servers = append(r.servers, rec.Server)
		}
		switch rec.Kind {
		case "check":
			r.check[rec.Server] = rec
		case "load":
			if !slices.Contains(r.loads, rec.Load) {
				r.loads = append(r.loads, rec.Load)
			}
			k := [2]string{rec.Server, rec.Load}
			var lr LoadResult
			if rec.Error != "" || json.Unmarshal(rec.Result, &lr) != nil {
				r.loadErr[k] = cmp.Or(rec.Error, "no result")
				continue
			}
			if r.byRound[k] == nil {
				r.byRound[k] = map[int]*LoadResult{}
			}
			r.byRound[k][rec.Round] = &lr
		case "idle":
			var ir IdleResult
			if rec.Error != "" || json.Unmarshal(rec.Result, &ir) != nil {
				r.idleErr[rec.Server] = cmp.Or(rec.Error, "no result")
				continue
			}
			r.idle[rec.Server] = append(r.idle[rec.Server], &ir)
		case "churn":
			var cr ChurnResult
			if rec.Error != "" || json.Unmarshal(rec.Result, &cr) != nil {
				r.churnErr[rec.Server] = cmp.Or(rec.Error, "no result")
				continue
			}
			if r.churnRound[rec.Server] == nil {
				r.churnRound[rec.Server] = map[int]*ChurnResult{}
			}
			r.churnRound[rec.Server][rec.Round] = &cr
		case "nonreading":
			var nr NonReadResult
			if rec.Error != "" || json.Unmarshal(rec.Result, &nr) != nil {
				r.nonreadErr[rec.Server] = cmp.Or(rec.Error, "no result")
				continue
			}
			r.nonread[rec.Server] = &nr
		case "storm":
			var sr StormResult
			if rec.Error != "" || json.Unmarshal(rec.Result, &sr) != nil {
				r.stormErr[rec.Server] = cmp.Or(rec.Error, "no result")
				continue
			}
			r.storm[rec.Server] = &sr
		}
	}
	for k, rounds := range r.byRound {
		r.load[k] = medians(slices.Collect(maps.Values(rounds)))
	}
	for s, rounds := range r.churnRound {
		r.churn[s] = churnMedians(slices.Collect(maps.Values(rounds)))
	}
	return r
}

// churnMedians gives each churn figure's median over the rounds, and the
// errors of all rounds added up.
func churnMedians(rs []*ChurnResult) *ChurnResult {
	m := &ChurnResult{
		Clients:          rs[0].Clients,
		ConnsPerSec:      medianOf(rs, func(r *ChurnResult) float64 { return r.ConnsPerSec }),
		P50:              medianOf(rs, func(r *ChurnResult) float64 { return r.P50 }),
		P99:              medianOf(rs, func(r *ChurnResult) float64 { return r.P99 }),
		ServerCPUPerConn: medianOf(rs, func(r *ChurnResult) float64 { return r.ServerCPUPerConn }),
	}
	for _, r := range rs {
		m.Conns += r.Conns
		m.Errors += r.Errors
	}
	return m
}

// medians gives each figure's median over the rounds, taken figure by
// figure, and the failures of all rounds added up.
func medians(rs []*LoadResult) *LoadResult {
	m := &LoadResult{
		MsgsPerSec:      medianOf(rs, func(r *LoadResult) float64 { return r.MsgsPerSec }),
		P50:             medianOf(rs, func(r *LoadResult) float64 { return r.P50 }),
		P99:             medianOf(rs, func(r *LoadResult) float64 { return r.P99 }),
		P999:            medianOf(rs, func(r *LoadResult) float64 { return r.P999 }),
		ServerCPUPerMsg: medianOf(rs, func(r *LoadResult) float64 { return r.ServerCPUPerMsg }),
	}
	for _, r := range rs {
		m.Mismatches += r.Mismatches
		m.Errors += r.Errors
		m.Timeouts += r.Timeouts
	}
	return m
}

// medianOf returns the median of figure f over the rounds rs.
func medianOf[T any](rs []T, f func(T) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return median(v)
}

func median(v []float64) float64 {
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// passed reports whether server passed tcpoll check; only then do its
// numbers count.
func (r *report) passed(server string) bool {
	return r.check[server].Check == "ok"
}

func loadLabel(l string) string { return strings.Replace(l, "x", "×", 1) }

func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "## Conformance\n\n| server | tcpoll check |\n|---|---|\n")
	for _, s := range r.servers {
		c := r.check[s]
		switch {
		case c.Check == "ok":
			fmt.Fprintf(w, "| %s | ok |\n", s)
		case c.Failed != "":
			fmt.Fprintf(w, "| %s | **FAIL**: %s (its numbers are not reported) |\n", s, mdEscape(c.Failed))
		default:
			fmt.Fprintf(w, "| %s | **FAIL** (its numbers are not reported) |\n", s)
		}
	}

	fmt.Fprintf(w, "\n## Load (16-byte messages, closed loop)\n\n")
	fmt.Fprintf(w, "Connections × pipeline depth; latency is per message, send to answer. ")
	fmt.Fprintf(w, "Server CPU is its utime+stime over the measured window; CPU s per million messages is the same number as µs per message. ")
	fmt.Fprintf(w, "Each figure is its median over the rounds, each round a fresh server; failures are all rounds' added up.\n\n")
	fmt.Fprintf(w, "| server | load | rounds | msgs/s | p50 µs | p99 µs | p99.9 µs | server CPU s / M msgs | failures |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.servers {
		if !r.passed(s) {
			fmt.Fprintf(w, "| %s | — | | FAIL (check) | | | | | |\n", s)
			continue
		}
		for _, l := range r.loads {
			k := [2]string{s, l}
			if e, ok := r.loadErr[k]; ok {
				fmt.Fprintf(w, "| %s | %s | | error: %s | | | | | |\n", s, loadLabel(l), mdEscape(e))
				continue
			}
			lr := r.load[k]
			if lr == nil {
				continue
			}
			fail := lr.Mismatches + lr.Errors + lr.Timeouts
			fmt.Fprintf(w, "| %s | %s | %d | %s | %.0f | %.0f | %.0f | %.2f | %d |\n",
				s, loadLabel(l), len(r.byRound[k]), thousands(lr.MsgsPerSec), lr.P50, lr.P99, lr.P999, lr.ServerCPUPerMsg, fail)
		}
	}

	r.churnTable(w)
	r.bars(w)

	fmt.Fprintf(w, "\n## Idle connections\n\n")
	fmt.Fprintf(w, "Each connection is served once (one message and its answer), then held open. ")
	fmt.Fprintf(w, "RSS per connection is the server's VmRSS growth divided by the connections; ")
	fmt.Fprintf(w, "idle CPU is the clock ticks (1/100 s) the server used while they sat idle: the bar is zero. ")
	fmt.Fprintf(w, "Each server ran the test on fresh instances: the row shows the instance of median RSS per connection, the next column every instance's, and the ticks are the most any instance used.\n\n")
	fmt.Fprintf(w, "| server | connections | VmRSS before kB | VmRSS after kB | RSS B / conn | each instance's | idle CPU ticks | over s | threads |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
	r.rows(w, 9, r.idleErr, "", func(s string) {
		runs := r.idle[s]
		if len(runs) == 0 {
			return
		}
		ir, ticks := medianIdle(runs)
		rss, _ := idleSamples(runs)
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.0f | %s | %d | %.1f | %d |\n",
			s, ir.Opened, ir.RSSBeforeKB, ir.RSSAfterKB, ir.RSSPerConnB, rss, ticks, ir.IdleSeconds, ir.Threads)
	})
	r.nonreadTable(w)
	r.stormTable(w)
	r.chat.table(w)
	r.chat.bars(w)
	r.tls.table(w)
	r.tls.bars(w)
	r.http.table(w)
	r.http.bars(w)
}

// churnTable writes the churn cell's medians, if it ran.
func (r *report) churnTable(w io.Writer) {
	if len(r.churnRound) == 0 && len(r.churnErr) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Churn (a connection per message)\n\n")
	fmt.Fprintf(w, "Each client connects, sends one message, reads its answer and closes, over and over. ")
	fmt.Fprintf(w, "A connection's life is from the connect to the answer, closed. ")
	fmt.Fprintf(w, "Server CPU per connection is its utime+stime over the window divided by the connections completed in it. ")
	fmt.Fprintf(w, "Each figure is its median over the rounds, each round a fresh server; errors are all rounds' added up.\n\n")
	fmt.Fprintf(w, "| server | clients | rounds | conns/s | life p50 µs | life p99 µs | server CPU µs / conn | errors |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	r.rows(w, 8, r.churnErr, "", func(s string) {
		c := r.churn[s]
		if c == nil {
			return
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %.0f | %.0f | %.1f | %d |\n",
			s, c.Clients, len(r.churnRound[s]), thousands(c.ConnsPerSec), c.P50, c.P99, c.ServerCPUPerConn, c.Errors)
	})
}

// rows writes a row of a table of cols columns for each server: for one
// that failed the check, or whose run of the cell failed (errs: the error,
// after errMark), a row that says so; for the others, row's.
func (r *report) rows(w io.Writer, cols int, errs map[string]string, errMark string, row func(server string)) {
	empty := strings.Repeat(" |", cols-2)
	for _, s := range r.servers {
		if !r.passed(s) {
			fmt.Fprintf(w, "| %s | FAIL (check) |%s\n", s, empty)
			continue
		}
		if e, ok := errs[s]; ok {
			fmt.Fprintf(w, "| %s | %serror: %s |%s\n", s, errMark, mdEscape(e), empty)
			continue
		}
		row(s)
	}
}

// nonreadNote says what bounded a non-reading run, or what went wrong.
func nonreadNote(n *NonReadResult) string {
	var notes []string
	if n.Died {
		notes = append(notes, "**server died**")
	}
	if n.Capped {
		notes = append(notes, "stopped at the RSS bound: the peak is a floor")
	}
	if n.TimedOut {
		notes = append(notes, "stopped at the time bound")
	}
	if n.Timeouts > 0 {
		notes = append(notes, fmt.Sprintf("%d healthy round trips timed out", n.Timeouts))
	}
	if !n.Died && !n.HealthyAfter {
		notes = append(notes, "a new client was not answered after")
	}
	return strings.Join(notes, "; ")
}

// nonreadTable writes the non-reading cell, if it ran.
func (r *report) nonreadTable(w io.Writer) {
	if len(r.nonread) == 0 && len(r.nonreadErr) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Clients that write and never read\n\n")
	fmt.Fprintf(w, "Non-reading clients connect, then all at once write \"m\\n\" messages, each 24 bytes of answers for 2 bytes read, and never read an answer. ")
	fmt.Fprintf(w, "A writer stops when it has written its share, when a write makes no progress for the stall time (finished / stalled), ")
	fmt.Fprintf(w, "or when the burst hits its time bound or the server's RSS exceeds 1 GiB (cut); failed writers saw an error. ")
	fmt.Fprintf(w, "The burst lasts until the last writer stopped and the server went quiet. ")
	fmt.Fprintf(w, "Peak RSS is the server's highest VmRSS (sampled every 10 ms, and its VmHWM) over the burst; per client, its growth over the RSS before. ")
	fmt.Fprintf(w, "Meanwhile one healthy client sends a message, reads its answer and pauses 1 ms, over and over: its round trips. ")
	fmt.Fprintf(w, "RSS after is the server's VmRSS the given seconds after the writers closed. Run once per server, on a fresh instance.\n\n")
	fmt.Fprintf(w, "| server | clients × bytes | written MiB | finished / stalled / cut / failed | burst s | VmRSS before kB | peak kB | peak KiB / client | healthy p99 ms | healthy max ms | RSS after kB | |\n")
	fmt.Fprintf(w, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	r.rows(w, 12, r.nonreadErr, "", func(s string) {
		n := r.nonread[s]
		if n == nil {
			return
		}
		after := "—"
		if !n.Died {
			after = fmt.Sprintf("%d (%.0f s after)", n.RSSAfterKB, n.AfterSeconds)
		}
		fmt.Fprintf(w, "| %s | %d × %s | %s | %d / %d / %d / %d | %.1f | %d | %d | %.1f | %.2f | %.1f | %s | %s |\n",
			s, n.Opened, size(n.Bytes), thousands(n.WrittenMB), n.Finished, n.Stalled, n.Stopped, n.Failed,
			n.BurstSeconds+n.HoldSeconds, n.RSSBeforeKB, n.PeakRSSKB, n.PeakPerClient, n.P99/1e3, n.Max/1e3, after, nonreadNote(n))
	})
}

// size formats a byte count as KB or MB (powers of 1024) when exact.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// stormTable writes the storm cell's verdicts, if it ran.
func (r *report) stormTable(w io.Writer) {
	if len(r.storm) == 0 && len(r.stormErr) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Close-and-reset storm\n\n")
	fmt.Fprintf(w, "internal/storm's clients make connection after connection, each sending messages and \"close\" in one of its patterns ")
	fmt.Fprintf(w, "(in one write, in pieces, with a half-close, unfinished, nothing) and resetting it: at once, after a pause, or after draining what the server owes (drained). ")
	fmt.Fprintf(w, "Polite clients meanwhile send a message, check its answer and close. ")
	fmt.Fprintf(w, "To pass, no polite connection may fail, and after the storm the server must be alive, ")
	fmt.Fprintf(w, "use under 5%% of a CPU over the next second, and answer a new client in full. Run once per server, on a fresh instance. ")
	fmt.Fprintf(w, "Protocol broken counts the storm connections on which the server broke the protocol before the reset: ")
	fmt.Fprintf(w, "mostly writes reset because it closed after \"close\" with input unread instead of lingering, which loses the answers; shown, not judged.\n\n")
	fmt.Fprintf(w, "| server | verdict | storm s | storm conns | drained | protocol broken | polite conns (failed) | server CPU s in the storm | CPU after, %% of one | answered after |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	r.rows(w, 10, r.stormErr, "**FAIL**: ", func(s string) {
		st := r.storm[s]
		if st == nil {
			return
		}
		verdict := "pass"
		if !st.Pass {
			verdict = "**FAIL**: " + mdEscape(strings.Join(st.Failed, "; "))
		}
		answered := "yes"
		if !st.Answered {
			answered = "**no**"
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %s | %s | %d | %s (%d) | %.2f | %.1f | %s |\n",
			s, verdict, st.Seconds, thousands(float64(st.Storm)), thousands(float64(st.Drained)), st.StormFailures,
			thousands(float64(st.Polite)), st.PoliteFailures, st.StormCPU, 100*st.IdleCPU, answered)
	})
}

// ratioBar is one of the bars that compares tcpoll with a peer.
type ratioBar struct {
	what, where, peer string // where: "at 50×16", "in churn"
	limit             float64
	atLeast           bool // the ratio must be at least limit, not at most
	// figure returns a server's figure in each round.
	figure func(r *report, server string) map[int]float64
}

// loadBar compares a figure of one load.
func loadBar(what, load, peer string, limit float64, atLeast bool, f func(*LoadResult) float64) ratioBar {
	return ratioBar{what, "at " + loadLabel(load), peer, limit, atLeast, func(r *report, server string) map[int]float64 {
		m := map[int]float64{}
		for n, lr := range r.byRound[[2]string{server, load}] {
			m[n] = f(lr)
		}
		return m
	}}
}

// churnBar compares a figure of the churn cell.
func churnBar(what, peer string, limit float64, f func(*ChurnResult) float64) ratioBar {
	return ratioBar{what, "in churn", peer, limit, false, func(r *report, server string) map[int]float64 {
		m := map[int]float64{}
		for n, cr := range r.churnRound[server] {
			m[n] = f(cr)
		}
		return m
	}}
}

var ratioBars = []ratioBar{
	loadBar("server CPU per message", "50x16", "gnet", 0.8, false, cpuPerMsg),
	loadBar("server CPU per message", "1000x16", "gnet", 0.8, false, cpuPerMsg),
	loadBar("server CPU per message", "50x16", "c", 1.1, false, cpuPerMsg),
	loadBar("server CPU per message", "1000x16", "c", 1.1, false, cpuPerMsg),
	loadBar("msgs/s", "50x16", "gnet", 1, true, msgsPerSec),
	loadBar("msgs/s", "1000x16", "gnet", 1, true, msgsPerSec),
	loadBar("p99 latency", "50x1", "gnet", 1, false, p99),
	churnBar("server CPU per connection", "gnet", 0.8, cpuPerConn),
	churnBar("server CPU per connection", "c", 1.1, cpuPerConn),
}

func cpuPerMsg(l *LoadResult) float64   { return l.ServerCPUPerMsg }
func msgsPerSec(l *LoadResult) float64  { return l.MsgsPerSec }
func p99(l *LoadResult) float64         { return l.P99 }
func cpuPerConn(c *ChurnResult) float64 { return c.ServerCPUPerConn }

// bars checks tcpoll against the project's bars: each ratio is taken
// between the two servers' runs of one load in one round, which bench/run
// makes seconds apart, and the bar judges the median over the rounds.
func (r *report) bars(w io.Writer) {
	if !r.passed("tcpoll") {
		return
	}
	fmt.Fprintf(w, "\n## The project's bars\n\n")
	fmt.Fprintf(w, "tcpoll's figure over the peer's in each round, where the two ran one after the other on fresh instances, and the median of those ratios, which the bar judges.\n\n")
	fmt.Fprintf(w, "| bar | per round | median | |\n|---|---|---:|---|\n")
	for _, b := range ratioBars {
		op := "≤"
		if b.atLeast {
			op = "≥"
		}
		label := fmt.Sprintf("%s %s %s %.1f× %s", b.what, b.where, op, b.limit, b.peer)
		theirs := b.figure(r, b.peer)
		if !r.passed(b.peer) {
			theirs = nil
		}
		ratioRow(w, label, b.figure(r, "tcpoll"), theirs, b.limit, b.atLeast)
	}
	if runs := r.idle["tcpoll"]; len(runs) > 0 {
		ir, ticks := medianIdle(runs)
		rss, ticksEach := idleSamples(runs)
		fmt.Fprintf(w, "| idle RSS ≤ 64 B per connection (median of instances) | %s | %.0f B | %s |\n", rss, ir.RSSPerConnB, metWord(ir.RSSPerConnB <= 64))
		fmt.Fprintf(w, "| idle CPU ticks = 0 (every instance) | %s | %d | %s |\n", ticksEach, ticks, metWord(ticks == 0))
	}
	r.nonreadBars(w)
	r.stormBar(w)
	fmt.Fprintf(w, "\nThe framing bar (≥ 1 GB/s on 16-byte messages, 0 allocs/op) is measured by bench/micro: see micro.md.\n")
}

// ratioRow writes the row of a bar on the ratio of ours to theirs, each a
// figure by round: each round's ratio, where both were measured, and
// their median, which the bar judges against limit.
func ratioRow(w io.Writer, label string, ours, theirs map[int]float64, limit float64, atLeast bool) {
	var rounds []int
	for n := range ours {
		if theirs[n] > 0 {
			rounds = append(rounds, n)
		}
	}
	if len(rounds) == 0 {
		fmt.Fprintf(w, "| %s | not measured | | |\n", label)
		return
	}
	slices.Sort(rounds)
	var ratios []float64
	var each []string
	for _, n := range rounds {
		x := ours[n] / theirs[n]
		ratios = append(ratios, x)
		each = append(each, fmt.Sprintf("%.2f", x))
	}
	m := median(ratios)
	met := m <= limit
	if atLeast {
		met = m >= limit
	}
	fmt.Fprintf(w, "| %s | %s | %.3f | %s |\n", label, strings.Join(each, " "), m, metWord(met))
}

// The non-reading cell's bars.
const (
	maxPeakPerClientKiB = 128
	maxHealthyP99us     = 10e3
	maxRSSAfterKiB      = 16 << 10
)

// nonreadBars judges tcpoll's run of the non-reading cell, which runs once:
// the figure is that run's.
func (r *report) nonreadBars(w io.Writer) {
	const (
		peak    = "non-reading clients: peak RSS ≤ 128 KiB per client"
		healthy = "non-reading clients: healthy client's p99 round trip ≤ 10 ms"
		after   = "non-reading clients: RSS after the writers closed within 16 MiB of before"
	)
	if e, ok := r.nonreadErr["tcpoll"]; ok {
		for _, label := range []string{peak, healthy, after} {
			fmt.Fprintf(w, "| %s | error: %s | | **missed** |\n", label, mdEscape(e))
		}
		return
	}
	n := r.nonread["tcpoll"]
	if n == nil {
		return
	}
	floor := ""
	if n.Capped || n.Died {
		floor = "≥ " // the burst was cut short: the true peak may be higher
	}
	fmt.Fprintf(w, "| %s | (%d − %d kB) / %d clients | %s%.1f KiB | %s |\n", peak,
		n.PeakRSSKB, n.RSSBeforeKB, n.Opened, floor, n.PeakPerClient, metWord(!n.Capped && !n.Died && n.PeakPerClient <= maxPeakPerClientKiB))
	fmt.Fprintf(w, "| %s | %d round trips, max %.1f ms, %d timed out | %.2f ms | %s |\n", healthy,
		n.Trips, n.Max/1e3, n.Timeouts, n.P99/1e3, metWord(n.Trips > 0 && n.Timeouts == 0 && n.P99 <= maxHealthyP99us))
	if n.Died {
		fmt.Fprintf(w, "| %s | server died | | **missed** |\n", after)
		return
	}
	grew := n.RSSAfterKB - n.RSSBeforeKB
	fmt.Fprintf(w, "| %s | %d kB %.0f s after, %d kB before | %+.1f MiB | %s |\n", after,
		n.RSSAfterKB, n.AfterSeconds, n.RSSBeforeKB, float64(grew)/1024, metWord(grew <= maxRSSAfterKiB))
}

// stormBar judges tcpoll's run of the storm cell.
func (r *report) stormBar(w io.Writer) {
	const label = "close-and-reset storm: polite clients served; after it alive, < 5% of a CPU, answering"
	if e, ok := r.stormErr["tcpoll"]; ok {
		fmt.Fprintf(w, "| %s | error: %s | FAIL | **missed** |\n", label, mdEscape(e))
		return
	}
	st := r.storm["tcpoll"]
	if st == nil {
		return
	}
	if st.Pass {
		fmt.Fprintf(w, "| %s | %s storm connections in %.1f s (protocol broken on %d); %.1f%% of a CPU after | pass | met |\n",
			label, thousands(float64(st.Storm)), st.Seconds, st.StormFailures, 100*st.IdleCPU)
		return
	}
	fmt.Fprintf(w, "| %s | %s | FAIL | **missed** |\n", label, mdEscape(strings.Join(st.Failed, "; ")))
}

// medianIdle returns the run of median RSS per connection (the lower
// middle one of an even count) and the most idle ticks of any run.
func medianIdle(runs []*IdleResult) (*IdleResult, int64) {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b *IdleResult) int { return cmp.Compare(a.RSSPerConnB, b.RSSPerConnB) })
	var ticks int64
	for _, x := range runs {
		ticks = max(ticks, x.IdleTicks)
	}
	return sorted[(len(sorted)-1)/2], ticks
}

// idleSamples lists every run's RSS per connection and idle ticks.
func idleSamples(runs []*IdleResult) (rss, ticks string) {
	r := make([]string, len(runs))
	t := make([]string, len(runs))
	for i, x := range runs {
		r[i] = fmt.Sprintf("%.0f", x.RSSPerConnB)
		t[i] = fmt.Sprint(x.IdleTicks)
	}
	return strings.Join(r, " "), strings.Join(t, " ")
}

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// thousands formats n rounded, with thin separators.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Chart geometry.
const (
	chartW   = 980
	panelH   = 260
	marginL  = 70
	marginR  = 20
	titleH   = 40
	legendH  = 30
	axisH    = 36
	panelGap = 30
)

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// chart writes two panels of grouped bars: msgs/s and server CPU µs/msg,
// one group per load, one bar per server that passed the check; and, if
// churn ran, two half-width panels of its conns/s and server CPU µs/conn.
func (r *report) chart(w io.Writer) {
	var servers []string
	for _, s := range r.servers {
		if r.passed(s) {
			servers = append(servers, s)
		}
	}
	color := map[string]string{}
	for i, s := range r.servers {
		color[s] = palette[i%len(palette)]
	}
	panels := 2
	if len(r.churn) > 0 {
		panels = 3
	}
	height := titleH + legendH + panels*(panelH+axisH) + (panels-1)*panelGap + 10
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n",
		chartW, height, chartW, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%d" y="24" font-size="16" font-weight="bold">tcpoll and peers: 16-byte messages, by connections × pipeline depth</text>`+"\n", marginL)

	// Legend, failed servers struck through.
	x := marginL
	for _, s := range r.servers {
		label := s
		if !r.passed(s) {
			label += " (failed check)"
		}
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`, x, titleH, color[s])
		fmt.Fprintf(w, `<text x="%d" y="%d" font-size="12">%s</text>`+"\n", x+16, titleH+11, html.EscapeString(label))
		x += 24 + 7*len(label) + 10
	}

	loadValue := func(f func(*LoadResult) float64) func(s, l string) (float64, bool) {
		return func(s, l string) (float64, bool) {
			if lr := r.load[[2]string{s, l}]; lr != nil {
				return f(lr), true
			}
			return 0, false
		}
	}
	churnValue := func(f func(*ChurnResult) float64) func(s, _ string) (float64, bool) {
		return func(s, _ string) (float64, bool) {
			if c := r.churn[s]; c != nil && r.passed(s) {
				return f(c), true
			}
			return 0, false
		}
	}
	full := chartW - marginL - marginR
	y := titleH + legendH
	panel(w, marginL, full, y, "messages per second (higher is better)", r.loads, loadLabel, servers, color,
		loadValue(func(l *LoadResult) float64 { return l.MsgsPerSec }), short)
	y += panelH + axisH + panelGap
	panel(w, marginL, full, y, "server CPU µs per message (lower is better)", r.loads, loadLabel, servers, color,
		loadValue(func(l *LoadResult) float64 { return l.ServerCPUPerMsg }), func(v float64) string { return fmt.Sprintf("%.2f", v) })
	if panels == 3 {
		y += panelH + axisH + panelGap
		half := (full - marginL) / 2
		churn := []string{"churn"}
		label := func(string) string { return "churn: connect, one message, close" }
		panel(w, marginL, half, y, "churn: connections per second (higher is better)", churn, label, servers, color,
			churnValue(func(c *ChurnResult) float64 { return c.ConnsPerSec }), short)
		panel(w, 2*marginL+half, half, y, "churn: server CPU µs per connection (lower is better)", churn, label, servers, color,
			churnValue(func(c *ChurnResult) float64 { return c.ServerCPUPerConn }), func(v float64) string { return fmt.Sprintf("%.1f", v) })
	}
	fmt.Fprintln(w, "</svg>")
}

// panel draws grouped bars at left, top, plotW wide: one group per entry
// of groups, one bar per server that has a value.
func panel(w io.Writer, left, plotW, top int, title string, groups []string, groupLabel func(string) string,
	servers []string, color map[string]string, value func(server, group string) (float64, bool), format func(float64) string) {
	max := 0.0
	for _, s := range servers {
		for _, g := range groups {
			if v, ok := value(s, g); ok {
				max = math.Max(max, v)
			}
		}
	}
	step := niceStep(max / 5)
	top0 := step * math.Ceil(max*1.08/step) // room for the value labels
	if top0 == 0 {
		top0 = 1
	}
	base := top + panelH
	scale := func(v float64) float64 { return float64(panelH-20) * v / top0 }

	fmt.Fprintf(w, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", left, top+12, html.EscapeString(title))
	for v := 0.0; v <= top0+step/2; v += step {
		yy := float64(base) - scale(v)
		fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, left+plotW, yy, yy)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", left-6, yy+4, format(v))
	}
	if len(groups) == 0 || len(servers) == 0 {
		return
	}
	groupW := float64(plotW) / float64(len(groups))
	barW := math.Min(40, (groupW-20)/float64(len(servers)))
	for gi, g := range groups {
		gx := float64(left) + groupW*float64(gi) + (groupW-barW*float64(len(servers)))/2
		for si, s := range servers {
			v, ok := value(s, g)
			if !ok {
				continue
			}
			h := scale(v)
			bx := gx + barW*float64(si)
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				bx+1, float64(base)-h, barW-2, h, color[s], html.EscapeString(s), groupLabel(g), format(v))
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>`+"\n",
				bx+barW/2, float64(base)-h-3, format(v))
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>`+"\n",
			float64(left)+groupW*(float64(gi)+0.5), base+18, html.EscapeString(groupLabel(g)))
	}
	fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, left+plotW, base, base)
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// short formats a rate: 1.5M, 250k.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case v >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	}
	return fmt.Sprintf("%.0f", v)
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
