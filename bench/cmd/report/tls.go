package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// TLSLoadResult holds the fields of `tlsload` used here: those of `tcpoll
// load -json`, with the server's processes' CPU added up.
type TLSLoadResult struct {
	LoadResult
	ServerCPUEach []float64 `json:"server_cpu_each_s"`
}

// FloodResult holds the fields of `tlsflood -json`.
type FloodResult struct {
	Pass             bool    `json:"pass"`
	Failed           string  `json:"failed"`
	Silent           int     `json:"silent"`
	Partial          int     `json:"partial"`
	Garbage          int     `json:"garbage"`
	Handshakes       int     `json:"handshakes"`
	HandshakesFailed int     `json:"handshakes_failed"`
	P50              float64 `json:"p50_us"`
	P99              float64 `json:"p99_us"`
	Max              float64 `json:"max_us"`
	Attackers        int     `json:"attackers"`
	DialErrors       int     `json:"dial_errors"`
	Closed           int     `json:"closed"`
	Slowest          float64 `json:"slowest_closed_s"`
	Deadline         float64 `json:"deadline_s"`
	Slack            float64 `json:"slack_s"`
	MaxP99           float64 `json:"max_p99_us"`
}

// The TLS server the bars judge, the one they compare it with, and the
// bars' limits.
const (
	tlsOurs = "tcpoll-tls"
	tlsNet  = "net-tls"
	// tlsCPULimit bounds tcpoll-tls's CPU per message over net-tls's.
	tlsCPULimit = 0.7
	// tlsIdleLimit bounds tcpoll-tls's RSS per idle connection over
	// net-tls's.
	tlsIdleLimit = 0.25
)

// tlsLoads are the TLS cell's loads, in the order shown.
var tlsLoads = []string{"50x16", "1000x16"}

// tlsRecords are the TLS cell's records, sorted out. Its servers are its
// own, checked over TLS.
type tlsRecords struct {
	servers []string // in the order first seen
	check   map[string]Record
	load    map[[2]string]map[int]*TLSLoadResult // [server, load]: each round's
	churn   map[string]map[int]*ChurnResult
	idle    map[string]map[int]*IdleResult
	flood   map[string]*FloodResult
	errs    map[[2]string]string // [server, measurement]; measurement "": the server did not run
}

func newTLSRecords() tlsRecords {
	return tlsRecords{
		check: map[string]Record{},
		load:  map[[2]string]map[int]*TLSLoadResult{},
		churn: map[string]map[int]*ChurnResult{},
		idle:  map[string]map[int]*IdleResult{},
		flood: map[string]*FloodResult{},
		errs:  map[[2]string]string{},
	}
}

// add files a record of kind "tls": its Load says what it measured,
// "check", a load ("50x16"), "churn", "idle" or "flood"; none, with an
// error, says the server did not run.
func (t *tlsRecords) add(rec Record) {
	if !slices.Contains(t.servers, rec.Server) {
		t.servers = append(t.servers, rec.Server)
	}
	k := [2]string{rec.Server, rec.Load}
	if rec.Load == "check" {
		t.check[rec.Server] = rec
		return
	}
	if rec.Error != "" || len(rec.Result) == 0 {
		t.errs[k] = cmp.Or(rec.Error, "no result")
		return
	}
	var err error
	switch rec.Load {
	case "churn":
		var cr ChurnResult
		if err = json.Unmarshal(rec.Result, &cr); err == nil {
			putRound(t.churn, rec.Server, rec.Round, &cr)
		}
	case "idle":
		var ir IdleResult
		if err = json.Unmarshal(rec.Result, &ir); err == nil {
			putRound(t.idle, rec.Server, rec.Round, &ir)
		}
	case "flood":
		var fr FloodResult
		if err = json.Unmarshal(rec.Result, &fr); err == nil {
			t.flood[rec.Server] = &fr
		}
	default:
		var lr TLSLoadResult
		if err = json.Unmarshal(rec.Result, &lr); err == nil {
			putRound(t.load, k, rec.Round, &lr)
		}
	}
	if err != nil {
		t.errs[k] = err.Error()
	}
}

func putRound[K comparable, V any](m map[K]map[int]V, k K, round int, v V) {
	if m[k] == nil {
		m[k] = map[int]V{}
	}
	m[k][round] = v
}

// inOrder returns a map's values in round order.
func inOrder[V any](m map[int]V) []V {
	var out []V
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[n])
	}
	return out
}

// byRound returns f of each round's value.
func byRound[V any](m map[int]V, f func(V) float64) map[int]float64 {
	out := map[int]float64{}
	for n, v := range m {
		out[n] = f(v)
	}
	return out
}

// passed reports whether server passed tcpoll check over TLS.
func (t *tlsRecords) passed(server string) bool { return t.check[server].Check == "ok" }

// skip writes the row of a server that has no figures for measurement,
// saying why, and reports whether it did. cols is the table's width.
func (t *tlsRecords) skip(w io.Writer, server, measurement string, cols int) bool {
	empty := strings.Repeat(" |", cols-2)
	if e, ok := t.errs[[2]string{server, ""}]; ok {
		fmt.Fprintf(w, "| %s | %s |%s\n", server, mdEscape(e), empty)
		return true
	}
	if c, ok := t.check[server]; ok && c.Check != "ok" {
		fmt.Fprintf(w, "| %s | FAIL (check) |%s\n", server, empty)
		return true
	}
	if e, ok := t.errs[[2]string{server, measurement}]; ok {
		fmt.Fprintf(w, "| %s | error: %s |%s\n", server, mdEscape(e), empty)
		return true
	}
	return false
}

// table writes the TLS cell's figures, if it ran.
func (t *tlsRecords) table(w io.Writer) {
	if len(t.servers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## TLS\n\n")
	fmt.Fprintf(w, "tcpoll-tls is `tcpoll serve -tls-cert -tls-key` (the poll engine: records on the event loop, handshakes on a bounded pool); ")
	fmt.Fprintf(w, "net-tls the same binary built with `-tags stdnet` (Go's net and crypto/tls, a goroutine per connection); ")
	fmt.Fprintf(w, "haproxy-tls HAProxy terminating TLS in front of a plaintext `tcpoll serve`, its server CPU the two processes' added up. ")
	fmt.Fprintf(w, "Each is run with its defaults and checked with `tcpoll check -tls` first; clients use Go's crypto/tls with its defaults.\n\n")
	fmt.Fprintf(w, "| server | tcpoll check -tls |\n|---|---|\n")
	for _, s := range t.servers {
		c, ok := t.check[s]
		switch {
		case !ok:
			fmt.Fprintf(w, "| %s | %s |\n", s, mdEscape(cmp.Or(t.errs[[2]string{s, ""}], "not run")))
		case c.Check == "ok":
			fmt.Fprintf(w, "| %s | ok |\n", s)
		default:
			fmt.Fprintf(w, "| %s | **FAIL**: %s (its numbers are not reported) |\n", s, mdEscape(cmp.Or(c.Failed, "check failed")))
		}
	}

	fmt.Fprintf(w, "\n### Over TLS: load, handshakes, idle connections\n\n")
	fmt.Fprintf(w, "Load: `tcpoll load -tls`, connections × pipeline depth of 16-byte messages, every handshake done before the warm-up; server CPU is its utime+stime over the window. ")
	fmt.Fprintf(w, "Handshakes: churn over TLS, each client connecting, making a full handshake (no session resumed), sending one message, reading its answer, sending close_notify and closing, over and over; server CPU per handshake is over the window, divided by the connections completed in it. ")
	fmt.Fprintf(w, "Each figure is its median over the rounds, each round a fresh server; failures are all rounds' added up.\n\n")
	fmt.Fprintf(w, "| server | measure | rounds | msgs/s or handshakes/s | p50 µs | p99 µs | server CPU µs / msg or / handshake | failures |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range t.servers {
		if t.skip(w, s, "", 8) {
			continue
		}
		for _, l := range tlsLoads {
			if e, ok := t.errs[[2]string{s, l}]; ok {
				fmt.Fprintf(w, "| %s | load %s | | error: %s | | | | |\n", s, loadLabel(l), mdEscape(e))
				continue
			}
			rs := inOrder(t.load[[2]string{s, l}])
			if len(rs) == 0 {
				continue
			}
			med := func(f func(*TLSLoadResult) float64) float64 { return medianOf(rs, f) }
			var fail int64
			for _, x := range rs {
				fail += x.Mismatches + x.Errors + x.Timeouts
			}
			fmt.Fprintf(w, "| %s | load %s | %d | %s | %.0f | %.0f | %.2f | %d |\n", s, loadLabel(l), len(rs),
				thousands(med(func(x *TLSLoadResult) float64 { return x.MsgsPerSec })),
				med(func(x *TLSLoadResult) float64 { return x.P50 }),
				med(func(x *TLSLoadResult) float64 { return x.P99 }),
				med(func(x *TLSLoadResult) float64 { return x.ServerCPUPerMsg }), fail)
		}
		if e, ok := t.errs[[2]string{s, "churn"}]; ok {
			fmt.Fprintf(w, "| %s | handshakes | | error: %s | | | | |\n", s, mdEscape(e))
		} else if rs := inOrder(t.churn[s]); len(rs) > 0 {
			c := churnMedians(rs)
			fmt.Fprintf(w, "| %s | handshakes (%d clients) | %d | %s | %.0f | %.0f | %.1f | %d |\n", s, c.Clients, len(rs),
				thousands(c.ConnsPerSec), c.P50, c.P99, c.ServerCPUPerConn, c.Errors)
		}
	}

	if len(t.idle) > 0 || t.hasErr("idle") {
		fmt.Fprintf(w, "\nIdle TLS connections: each connection makes a full handshake, sends one message and reads its answer, then is held open; ")
		fmt.Fprintf(w, "RSS per connection is the server's VmRSS growth divided by the connections, on fresh instances: the row shows the instance of median RSS per connection, the next column every instance's, and the ticks are the most any instance used while they sat idle.\n\n")
		fmt.Fprintf(w, "| server | connections | VmRSS before kB | VmRSS after kB | RSS B / conn | each instance's | idle CPU ticks | threads |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---|---:|---:|\n")
		for _, s := range t.servers {
			if _, ok := t.idle[s]; !ok && t.errs[[2]string{s, "idle"}] == "" {
				continue
			}
			if t.skip(w, s, "idle", 8) {
				continue
			}
			runs := inOrder(t.idle[s])
			ir, ticks := medianIdle(runs)
			rss, _ := idleSamples(runs)
			fmt.Fprintf(w, "| %s | %d | %d | %d | %.0f | %s | %d | %d |\n",
				s, ir.Opened, ir.RSSBeforeKB, ir.RSSAfterKB, ir.RSSPerConnB, rss, ticks, ir.Threads)
		}
	}

	if len(t.flood) > 0 || t.hasErr("flood") {
		fmt.Fprintf(w, "\n### Handshake flood\n\n")
		fmt.Fprintf(w, "Attackers connect and never finish a handshake: silent ones send nothing, partial ones half a ClientHello, garbage ones 64 bytes that are no TLS record. ")
		fmt.Fprintf(w, "Once all have connected and sent, a healthy client makes full handshakes one after the other: their latency is from the dial to the handshake done. ")
		fmt.Fprintf(w, "Each attacker then waits for the server to close it; the server's handshake deadline is its default. Run once per server, on a fresh instance.\n\n")
		fmt.Fprintf(w, "| server | attackers: silent / partial / garbage | healthy handshakes (failed) | p50 ms | p99 ms | max ms | attackers closed | slowest closed s | deadline s | |\n")
		fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---|---:|---:|---|\n")
		for _, s := range t.servers {
			if _, ok := t.flood[s]; !ok && t.errs[[2]string{s, "flood"}] == "" {
				continue
			}
			if t.skip(w, s, "flood", 10) {
				continue
			}
			f := t.flood[s]
			verdict := "pass"
			if !f.Pass {
				verdict = "**FAIL**: " + mdEscape(f.Failed)
			}
			fmt.Fprintf(w, "| %s | %d / %d / %d | %d (%d) | %.1f | %.1f | %.1f | %d of %d | %.2f | %.0f | %s |\n",
				s, f.Silent, f.Partial, f.Garbage, f.Handshakes, f.HandshakesFailed, f.P50/1e3, f.P99/1e3, f.Max/1e3,
				f.Closed, f.Attackers, f.Slowest, f.Deadline, verdict)
		}
	}
}

// hasErr reports whether some server's measurement failed.
func (t *tlsRecords) hasErr(measurement string) bool {
	for k := range t.errs {
		if k[1] == measurement {
			return true
		}
	}
	return false
}

// bars judges tcpoll-tls against the TLS bars, if the cell ran.
func (t *tlsRecords) bars(w io.Writer) {
	if len(t.servers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### The TLS bars\n\n")
	fmt.Fprintf(w, "tcpoll-tls's figure over net-tls's in each round, where the two ran one after the other on fresh instances, and the median of those ratios, which the bar judges; the flood's one run.\n\n")
	fmt.Fprintf(w, "| bar | per round | median or the run's | |\n|---|---|---:|---|\n")
	cpu := func(x *TLSLoadResult) float64 { return x.ServerCPUPerMsg }
	for _, l := range tlsLoads {
		label := fmt.Sprintf("TLS: server CPU per message at %s ≤ %.1f× net-tls", loadLabel(l), tlsCPULimit)
		if t.missing(w, label, l) {
			continue
		}
		ratioRow(w, label, byRound(t.load[[2]string{tlsOurs, l}], cpu), byRound(t.load[[2]string{tlsNet, l}], cpu), tlsCPULimit, false)
	}
	label := fmt.Sprintf("TLS: RSS per idle connection ≤ %.2f× net-tls", tlsIdleLimit)
	if !t.missing(w, label, "idle") {
		rss := func(x *IdleResult) float64 { return x.RSSPerConnB }
		ratioRow(w, label, byRound(t.idle[tlsOurs], rss), byRound(t.idle[tlsNet], rss), tlsIdleLimit, false)
	}
	label = "TLS flood: healthy handshakes' p99 < 100 ms, every attacker closed within the deadline + 1 s"
	if !t.missing(w, label, "flood") {
		f := t.flood[tlsOurs]
		fmt.Fprintf(w, "| %s | %d handshakes (%d failed), p99 %.1f ms; %d of %d attackers closed, the slowest after %.2f s (deadline %.0f s) | %s | %s |\n",
			label, f.Handshakes, f.HandshakesFailed, f.P99/1e3, f.Closed, f.Attackers, f.Slowest, f.Deadline,
			map[bool]string{true: "pass", false: "FAIL"}[f.Pass], metWord(f.Pass))
	}
}

// missing writes the row of a bar tcpoll-tls (or, for a ratio, net-tls)
// has no figures for, saying why, and reports whether it did.
func (t *tlsRecords) missing(w io.Writer, label, measurement string) bool {
	for _, s := range []string{tlsOurs, tlsNet} {
		if s == tlsNet && measurement == "flood" {
			break
		}
		if e, ok := t.errs[[2]string{s, ""}]; ok {
			fmt.Fprintf(w, "| %s | %s not measured: %s | | |\n", label, s, mdEscape(e))
			return true
		}
		if !t.passed(s) {
			fmt.Fprintf(w, "| %s | %s failed or skipped tcpoll check -tls | | **missed** |\n", label, s)
			return true
		}
		if e, ok := t.errs[[2]string{s, measurement}]; ok {
			fmt.Fprintf(w, "| %s | %s: error: %s | | **missed** |\n", label, s, mdEscape(e))
			return true
		}
	}
	return false
}
