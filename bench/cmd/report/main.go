// Command report turns the records bench/run accumulates (one JSON object
// a line) into the tables of results.md, printed on stdout, and a bar
// chart, results.svg, of messages per second and server CPU µs per
// message for each load and server. The SVG is written by hand: no
// plotting library, no fonts beyond the viewer's sans-serif.
package main

import (
	"bufio"
	stdcmp "cmp"
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
	// Kind is "check", "load" or "idle".
	Kind   string          `json:"kind"`
	Round  int             `json:"round,omitempty"`  // load: 1, 2, ...
	Load   string          `json:"load,omitempty"`   // "CONNSxDEPTH"
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
}

func build(recs []Record) *report {
	r := &report{
		check:   map[string]Record{},
		load:    map[[2]string]*LoadResult{},
		byRound: map[[2]string]map[int]*LoadResult{},
		loadErr: map[[2]string]string{},
		idle:    map[string][]*IdleResult{},
		idleErr: map[string]string{},
	}
	for _, rec := range recs {
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
				r.loadErr[k] = cmp(rec.Error, "no result")
				continue
			}
			if r.byRound[k] == nil {
				r.byRound[k] = map[int]*LoadResult{}
			}
			r.byRound[k][rec.Round] = &lr
		case "idle":
			var ir IdleResult
			if rec.Error != "" || json.Unmarshal(rec.Result, &ir) != nil {
				r.idleErr[rec.Server] = cmp(rec.Error, "no result")
				continue
			}
			r.idle[rec.Server] = append(r.idle[rec.Server], &ir)
		}
	}
	for k, rounds := range r.byRound {
		r.load[k] = medians(slices.Collect(maps.Values(rounds)))
	}
	return r
}

// medians gives each figure's median over the rounds, taken figure by
// figure, and the failures of all rounds added up.
func medians(rs []*LoadResult) *LoadResult {
	med := func(f func(*LoadResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	m := &LoadResult{
		MsgsPerSec:      med(func(r *LoadResult) float64 { return r.MsgsPerSec }),
		P50:             med(func(r *LoadResult) float64 { return r.P50 }),
		P99:             med(func(r *LoadResult) float64 { return r.P99 }),
		P999:            med(func(r *LoadResult) float64 { return r.P999 }),
		ServerCPUPerMsg: med(func(r *LoadResult) float64 { return r.ServerCPUPerMsg }),
	}
	for _, r := range rs {
		m.Mismatches += r.Mismatches
		m.Errors += r.Errors
		m.Timeouts += r.Timeouts
	}
	return m
}

func median(v []float64) float64 {
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
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

	r.bars(w)

	fmt.Fprintf(w, "\n## Idle connections\n\n")
	fmt.Fprintf(w, "Each connection is served once (one message and its answer), then held open. ")
	fmt.Fprintf(w, "RSS per connection is the server's VmRSS growth divided by the connections; ")
	fmt.Fprintf(w, "idle CPU is the clock ticks (1/100 s) the server used while they sat idle: the bar is zero. ")
	fmt.Fprintf(w, "Each server ran the test on fresh instances: the row shows the instance of median RSS per connection, the next column every instance's, and the ticks are the most any instance used.\n\n")
	fmt.Fprintf(w, "| server | connections | VmRSS before kB | VmRSS after kB | RSS B / conn | each instance's | idle CPU ticks | over s | threads |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for _, s := range r.servers {
		if !r.passed(s) {
			fmt.Fprintf(w, "| %s | FAIL (check) | | | | | | | |\n", s)
			continue
		}
		if e, ok := r.idleErr[s]; ok {
			fmt.Fprintf(w, "| %s | error: %s | | | | | | | |\n", s, mdEscape(e))
			continue
		}
		runs := r.idle[s]
		if len(runs) == 0 {
			continue
		}
		ir, ticks := medianIdle(runs)
		rss, _ := idleSamples(runs)
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.0f | %s | %d | %.1f | %d |\n",
			s, ir.Opened, ir.RSSBeforeKB, ir.RSSAfterKB, ir.RSSPerConnB, rss, ticks, ir.IdleSeconds, ir.Threads)
	}
}

// ratioBar is one of the bars that compares tcpoll with a peer.
type ratioBar struct {
	what, load, peer string
	limit            float64
	atLeast          bool // the ratio must be at least limit, not at most
	figure           func(*LoadResult) float64
}

var ratioBars = []ratioBar{
	{"server CPU per message", "50x16", "gnet", 0.8, false, cpuPerMsg},
	{"server CPU per message", "1000x16", "gnet", 0.8, false, cpuPerMsg},
	{"server CPU per message", "50x16", "c", 1.1, false, cpuPerMsg},
	{"server CPU per message", "1000x16", "c", 1.1, false, cpuPerMsg},
	{"msgs/s", "50x16", "gnet", 1, true, msgsPerSec},
	{"msgs/s", "1000x16", "gnet", 1, true, msgsPerSec},
	{"p99 latency", "50x1", "gnet", 1, false, p99},
}

func cpuPerMsg(l *LoadResult) float64  { return l.ServerCPUPerMsg }
func msgsPerSec(l *LoadResult) float64 { return l.MsgsPerSec }
func p99(l *LoadResult) float64        { return l.P99 }

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
		label := fmt.Sprintf("%s at %s %s %.1f× %s", b.what, loadLabel(b.load), op, b.limit, b.peer)
		ours, theirs := r.byRound[[2]string{"tcpoll", b.load}], r.byRound[[2]string{b.peer, b.load}]
		var rounds []int
		for n := range ours {
			if theirs[n] != nil && b.figure(theirs[n]) > 0 {
				rounds = append(rounds, n)
			}
		}
		if !r.passed(b.peer) || len(rounds) == 0 {
			fmt.Fprintf(w, "| %s | not measured | | |\n", label)
			continue
		}
		slices.Sort(rounds)
		var ratios []float64
		var each []string
		for _, n := range rounds {
			x := b.figure(ours[n]) / b.figure(theirs[n])
			ratios = append(ratios, x)
			each = append(each, fmt.Sprintf("%.2f", x))
		}
		m := median(ratios)
		met := m <= b.limit
		if b.atLeast {
			met = m >= b.limit
		}
		fmt.Fprintf(w, "| %s | %s | %.3f | %s |\n", label, strings.Join(each, " "), m, metWord(met))
	}
	if runs := r.idle["tcpoll"]; len(runs) > 0 {
		ir, ticks := medianIdle(runs)
		rss, ticksEach := idleSamples(runs)
		fmt.Fprintf(w, "| idle RSS ≤ 64 B per connection (median of instances) | %s | %.0f B | %s |\n", rss, ir.RSSPerConnB, metWord(ir.RSSPerConnB <= 64))
		fmt.Fprintf(w, "| idle CPU ticks = 0 (every instance) | %s | %d | %s |\n", ticksEach, ticks, metWord(ticks == 0))
	}
	fmt.Fprintf(w, "\nThe framing bar (≥ 1 GB/s on 16-byte messages, 0 allocs/op) is measured by bench/micro: see micro.md.\n")
}

// medianIdle returns the run of median RSS per connection (the lower
// middle one of an even count) and the most idle ticks of any run.
func medianIdle(runs []*IdleResult) (*IdleResult, int64) {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b *IdleResult) int { return stdcmp.Compare(a.RSSPerConnB, b.RSSPerConnB) })
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
// one group per load, one bar per server that passed the check.
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
	height := titleH + legendH + 2*(panelH+axisH) + panelGap + 10
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

	y := titleH + legendH
	r.panel(w, y, "messages per second (higher is better)", servers, color,
		func(l *LoadResult) float64 { return l.MsgsPerSec }, short)
	y += panelH + axisH + panelGap
	r.panel(w, y, "server CPU µs per message (lower is better)", servers, color,
		func(l *LoadResult) float64 { return l.ServerCPUPerMsg }, func(v float64) string { return fmt.Sprintf("%.2f", v) })
	fmt.Fprintln(w, "</svg>")
}

func (r *report) panel(w io.Writer, top int, title string, servers []string, color map[string]string,
	value func(*LoadResult) float64, format func(float64) string) {
	max := 0.0
	for _, s := range servers {
		for _, l := range r.loads {
			if lr := r.load[[2]string{s, l}]; lr != nil {
				max = math.Max(max, value(lr))
			}
		}
	}
	step := niceStep(max / 5)
	top0 := step * math.Ceil(max*1.08/step) // room for the value labels
	if top0 == 0 {
		top0 = 1
	}
	plotW := chartW - marginL - marginR
	base := top + panelH
	scale := func(v float64) float64 { return float64(panelH-20) * v / top0 }

	fmt.Fprintf(w, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", marginL, top+12, html.EscapeString(title))
	for v := 0.0; v <= top0+step/2; v += step {
		yy := float64(base) - scale(v)
		fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, marginL, marginL+plotW, yy, yy)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", marginL-6, yy+4, format(v))
	}
	if len(r.loads) == 0 || len(servers) == 0 {
		return
	}
	groupW := float64(plotW) / float64(len(r.loads))
	barW := math.Min(40, (groupW-20)/float64(len(servers)))
	for gi, l := range r.loads {
		gx := float64(marginL) + groupW*float64(gi) + (groupW-barW*float64(len(servers)))/2
		for si, s := range servers {
			lr := r.load[[2]string{s, l}]
			if lr == nil {
				continue
			}
			v := value(lr)
			h := scale(v)
			bx := gx + barW*float64(si)
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				bx+1, float64(base)-h, barW-2, h, color[s], html.EscapeString(s), loadLabel(l), format(v))
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>`+"\n",
				bx+barW/2, float64(base)-h-3, format(v))
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>`+"\n",
			float64(marginL)+groupW*(float64(gi)+0.5), base+18, loadLabel(l))
	}
	fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", marginL, marginL+plotW, base, base)
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
