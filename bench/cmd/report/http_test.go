package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// httpRecord returns an HTTP record of server at load in round.
func httpRecord(t *testing.T, server, load string, round int, res HTTPResult) Record {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return Record{Server: server, Kind: "http", Round: round, Load: load, Check: "ok", Result: b}
}

func TestHTTPBars(t *testing.T) {
	var recs []Record
	for _, s := range []string{"tcpoll-http", "gnet-http", "fasthttp", "net-http"} {
		recs = append(recs, Record{Server: s, Kind: "http", Load: "check", Check: "ok"})
	}
	for round := 1; round <= 3; round++ {
		for _, s := range []struct {
			server string
			rate   float64 // requests/s
			cpu    float64 // µs a request
		}{
			{"tcpoll-http", 2e6, 0.25},
			{"gnet-http", 2.5e6, 0.3},
			{"fasthttp", 1.5e6, 0.4},
			{"net-http", 1e5, 7},
		} {
			for _, l := range []string{"256x16", "1024x16"} {
				recs = append(recs, httpRecord(t, s.server, l, round,
					HTTPResult{Conns: 256, Depth: 16, ReqsPerSec: s.rate, P50: 900, P99: 12000, ServerCPUPerReq: s.cpu}))
			}
		}
	}
	var out bytes.Buffer
	build(recs).markdown(&out)
	md := out.String()
	for _, tc := range []struct{ bar, want string }{
		{"HTTP: server CPU per request at 256×16 ≤ 0.9× gnet-http", "| 0.83 0.83 0.83 | 0.833 | met |"},
		{"HTTP: server CPU per request at 256×16 ≤ 0.6× fasthttp", "| 0.62 0.62 0.62 | 0.625 | **missed** |"},
		{"HTTP: requests/s at 256×16 ≥ 1.0× gnet-http", "| 0.80 0.80 0.80 | 0.800 | **missed** |"},
	} {
		if row := barRow(t, md, tc.bar); !strings.HasSuffix(strings.TrimSpace(row), tc.want) {
			t.Errorf("bar %q:\n got %s want it to end %s", tc.bar, strings.TrimSpace(row), tc.want)
		}
	}
	for _, want := range []string{
		"| tcpoll-http | 256×16 | 3 | 2,000,000 | 0.90 | 12.00 | 0.250 | 0 |",
		"| net-http | 1024×16 | 3 | 100,000 | 0.90 | 12.00 | 7.000 | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no row %q in\n%s", want, md)
		}
	}
	// The HTTP servers are not in the plaintext tables.
	if strings.Contains(md, "| tcpoll-http | FAIL (check)") {
		t.Errorf("tcpoll-http in a plaintext table:\n%s", md)
	}
}

func TestHTTPFailedCheck(t *testing.T) {
	recs := []Record{
		{Server: "tcpoll-http", Kind: "http", Load: "check", Check: "ok"},
		{Server: "gnet-http", Kind: "http", Load: "check", Check: "FAIL", Failed: "FAIL: a pipelined pair: response 2 of 2: EOF"},
		{Server: "fasthttp", Kind: "http", Load: "check", Check: "ok"},
		httpRecord(t, "tcpoll-http", "256x16", 1, HTTPResult{ReqsPerSec: 1e6, ServerCPUPerReq: 0.3}),
		{Server: "fasthttp", Kind: "http", Round: 1, Load: "256x16", Check: "ok", Error: "did not start"},
		{Server: "net-http", Kind: "http", Error: "skipped: no wrk binary"},
	}
	var out bytes.Buffer
	build(recs).markdown(&out)
	md := out.String()
	for _, want := range []string{
		"| gnet-http | **FAIL**: FAIL: a pipelined pair: response 2 of 2: EOF (its numbers are not reported) |",
		"| net-http | skipped: no wrk binary |",
		"| fasthttp | 256×16 | | error: did not start |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no row %q in\n%s", want, md)
		}
	}
	for bar, why := range map[string]string{
		"HTTP: server CPU per request at 256×16 ≤ 0.9× gnet-http": "gnet-http failed or skipped the HTTP check",
		"HTTP: server CPU per request at 256×16 ≤ 0.6× fasthttp":  "fasthttp: no figures at 256×16",
	} {
		row := barRow(t, md, bar)
		if !strings.Contains(row, why) || !strings.Contains(row, "**missed**") {
			t.Errorf("bar row %q: want it missed: %s", row, why)
		}
	}
}
