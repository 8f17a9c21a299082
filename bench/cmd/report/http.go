package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// HTTPResult holds the fields of `httpload` used here.
type HTTPResult struct {
	Conns           int     `json:"conns"`
	Depth           int     `json:"depth"`
	Threads         int     `json:"threads"`
	Requests        int64   `json:"requests"`
	Seconds         float64 `json:"seconds"`
	ReqsPerSec      float64 `json:"reqs_per_sec"`
	P50             float64 `json:"p50_us"`
	P99             float64 `json:"p99_us"`
	Errors          int64   `json:"errors"`
	ServerCPUPerReq float64 `json:"server_cpu_us_per_req"`
}

// The HTTP server the bars judge, the peers it is compared with, the load
// the bars are judged at, and their limits.
const (
	httpOurs = "tcpoll-http"
	httpGnet = "gnet-http"
	httpFast = "fasthttp"
	httpLoad = "256x16"
	// httpCPUGnet and httpCPUFast bound tcpoll-http's server CPU per
	// request over gnet-http's and fasthttp's.
	httpCPUGnet = 0.9
	httpCPUFast = 0.6
	// httpRateGnet is the least tcpoll-http's requests per second may be
	// over gnet-http's.
	httpRateGnet = 1.0
)

// httpRecords are the HTTP cell's records, sorted out. Its servers are its
// own, checked by cmd/httpcheck.
type httpRecords struct {
	servers []string // in the order first seen
	loads   []string // in the order first seen
	check   map[string]Record
	rounds  map[[2]string]map[int]*HTTPResult // [server, load]: each round's
	errs    map[[2]string][]string            // [server, load]: each failed measurement's error; load "": the server did not run
}

func newHTTPRecords() httpRecords {
	return httpRecords{
		check:  map[string]Record{},
		rounds: map[[2]string]map[int]*HTTPResult{},
		errs:   map[[2]string][]string{},
	}
}

// add files a record of kind "http": its Load is "check" or a load
// ("256x16"); none, with an error, says the server did not run.
func (h *httpRecords) add(rec Record) {
	if !slices.Contains(h.servers, rec.Server) {
		h.servers = append(h.servers, rec.Server)
	}
	if rec.Load == "check" {
		h.check[rec.Server] = rec
		return
	}
	if rec.Load != "" && !slices.Contains(h.loads, rec.Load) {
		h.loads = append(h.loads, rec.Load)
	}
	k := [2]string{rec.Server, rec.Load}
	var hr HTTPResult
	if rec.Error != "" || len(rec.Result) == 0 {
		h.errs[k] = append(h.errs[k], cmp.Or(rec.Error, "no result"))
		return
	}
	if err := json.Unmarshal(rec.Result, &hr); err != nil {
		h.errs[k] = append(h.errs[k], err.Error())
		return
	}
	putRound(h.rounds, k, rec.Round, &hr)
}

func (h *httpRecords) passed(server string) bool { return h.check[server].Check == "ok" }

// table writes the HTTP cell's figures, if it ran.
func (h *httpRecords) table(w io.Writer) {
	if len(h.servers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## HTTP plaintext (TechEmpower style)\n\n")
	fmt.Fprintf(w, "TechEmpower's plaintext test: `GET /plaintext` answered `Hello, World!`, measured with wrk and a pipelining script (`http/pipeline.lua`): each connection writes its requests in batches (16 deep) and waits for a batch's responses before the next. ")
	fmt.Fprintf(w, "tcpoll-http is `examples/http` with no flag but `-addr`; gnet-http is gnet v2 as gnet's TechEmpower entry does it (a request ends at `\\r\\n\\r\\n`, every answer the same canned bytes); fasthttp and net-http are those servers with their defaults and the same handler. ")
	fmt.Fprintf(w, "Each first answers `cmd/httpcheck` (GET /plaintext, a pipelined pair, a batch as deep as wrk's) or is marked FAIL.\n\n")
	fmt.Fprintf(w, "| server | HTTP check |\n|---|---|\n")
	for _, s := range h.servers {
		c, ok := h.check[s]
		switch {
		case !ok:
			fmt.Fprintf(w, "| %s | %s |\n", s, mdEscape(cmp.Or(strings.Join(h.errs[[2]string{s, ""}], "; "), "not run")))
		case c.Check == "ok":
			fmt.Fprintf(w, "| %s | ok |\n", s)
		default:
			fmt.Fprintf(w, "| %s | **FAIL**: %s (its numbers are not reported) |\n", s, mdEscape(cmp.Or(c.Failed, "check failed")))
		}
	}
	fmt.Fprintf(w, "\nConnections × requests a batch. Requests/s and latency are wrk's: it counts every response, and times a batch from its write to its last response; the percentiles are over wrk's histogram after its correction for coordinated omission, every sample counted (`http/pipeline.lua` says why its own summary can print 0). ")
	fmt.Fprintf(w, "Server CPU is its utime+stime from /proc/PID/stat over wrk's whole measured run (after a warm-up run), divided by the responses. ")
	fmt.Fprintf(w, "Each figure is its median over the rounds, each round a fresh server; errors (wrk's socket errors, timeouts, statuses not 2xx or 3xx) are all rounds' added up.\n\n")
	fmt.Fprintf(w, "| server | load | rounds | requests/s | p50 ms | p99 ms | server CPU µs / request | errors |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range h.servers {
		if !h.passed(s) {
			continue
		}
		for _, l := range h.loads {
			k := [2]string{s, l}
			rs := inOrder(h.rounds[k])
			errs := h.errs[k]
			if len(rs) == 0 {
				if len(errs) > 0 {
					fmt.Fprintf(w, "| %s | %s | | error: %s | | | | |\n", s, loadLabel(l), mdEscape(errs[0]))
				}
				continue
			}
			med := func(f func(*HTTPResult) float64) float64 { return medianOf(rs, f) }
			var fail int64
			for _, x := range rs {
				fail += x.Errors
			}
			failed := fmt.Sprint(fail)
			if len(errs) > 0 {
				failed += fmt.Sprintf("; %d run(s) gave no figures: %s", len(errs), mdEscape(errs[0]))
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %.2f | %.2f | %.3f | %s |\n", s, loadLabel(l), len(rs),
				thousands(med(func(x *HTTPResult) float64 { return x.ReqsPerSec })),
				med(func(x *HTTPResult) float64 { return x.P50 })/1e3,
				med(func(x *HTTPResult) float64 { return x.P99 })/1e3,
				med(func(x *HTTPResult) float64 { return x.ServerCPUPerReq }), failed)
		}
	}
}

// bars judges tcpoll-http against the HTTP bars, if the cell ran.
func (h *httpRecords) bars(w io.Writer) {
	if len(h.servers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### The HTTP bars\n\n")
	fmt.Fprintf(w, "At %s: tcpoll-http's figure over the peer's in each round, where they ran in turn on fresh instances, and the median of those ratios, which the bar judges.\n\n", loadLabel(httpLoad))
	fmt.Fprintf(w, "| bar | per round | median | |\n|---|---|---:|---|\n")
	cpu := func(x *HTTPResult) float64 { return x.ServerCPUPerReq }
	rate := func(x *HTTPResult) float64 { return x.ReqsPerSec }
	for _, b := range []struct {
		what    string
		peer    string
		limit   float64
		atLeast bool
		f       func(*HTTPResult) float64
	}{
		{"server CPU per request", httpGnet, httpCPUGnet, false, cpu},
		{"server CPU per request", httpFast, httpCPUFast, false, cpu},
		{"requests/s", httpGnet, httpRateGnet, true, rate},
	} {
		op := "≤"
		if b.atLeast {
			op = "≥"
		}
		label := fmt.Sprintf("HTTP: %s at %s %s %.1f× %s", b.what, loadLabel(httpLoad), op, b.limit, b.peer)
		if h.missing(w, label, b.peer) {
			continue
		}
		ratioRow(w, label, byRound(h.rounds[[2]string{httpOurs, httpLoad}], b.f), byRound(h.rounds[[2]string{b.peer, httpLoad}], b.f), b.limit, b.atLeast)
	}
}

// missing writes the row of a bar tcpoll-http or peer has no figures for,
// saying why, and reports whether it did.
func (h *httpRecords) missing(w io.Writer, label, peer string) bool {
	for _, s := range []string{httpOurs, peer} {
		if e, ok := h.errs[[2]string{s, ""}]; ok {
			fmt.Fprintf(w, "| %s | %s not measured: %s | | **missed** |\n", label, s, mdEscape(e[0]))
			return true
		}
		if !h.passed(s) {
			fmt.Fprintf(w, "| %s | %s failed or skipped the HTTP check | | **missed** |\n", label, s)
			return true
		}
		if len(h.rounds[[2]string{s, httpLoad}]) == 0 {
			fmt.Fprintf(w, "| %s | %s: no figures at %s | | **missed** |\n", label, s, loadLabel(httpLoad))
			return true
		}
	}
	return false
}
