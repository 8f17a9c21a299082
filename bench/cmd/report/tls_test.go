package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// tlsRecord returns a TLS record of server for measurement in round.
func tlsRecord(t *testing.T, server, measurement string, round int, res any) Record {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return Record{Server: server, Kind: "tls", Round: round, Load: measurement, Check: "ok", Result: b}
}

func TestTLSBars(t *testing.T) {
	var recs []Record
	for _, s := range []string{"tcpoll-tls", "net-tls", "haproxy-tls"} {
		recs = append(recs, Record{Server: s, Kind: "tls", Load: "check", Check: "ok"})
	}
	for round := 1; round <= 3; round++ {
		for _, s := range []struct {
			server     string
			cpu50, cpu float64 // µs a message at 50×16, 1000×16
			rss        float64 // B an idle connection
		}{
			{"tcpoll-tls", 0.3, 0.4, 8000},
			{"net-tls", 0.5, 0.5, 40000},
			{"haproxy-tls", 0.6, 0.7, 0},
		} {
			recs = append(recs,
				tlsRecord(t, s.server, "50x16", round, map[string]any{"msgs_per_sec": 1e6, "server_cpu_us_per_msg": s.cpu50}),
				tlsRecord(t, s.server, "1000x16", round, map[string]any{"msgs_per_sec": 1e6, "server_cpu_us_per_msg": s.cpu}),
				tlsRecord(t, s.server, "churn", round, ChurnResult{Clients: 32, ConnsPerSec: 2000, ServerCPUPerConn: 250}))
			if s.rss > 0 {
				recs = append(recs, tlsRecord(t, s.server, "idle", round, IdleResult{Conns: 5000, Opened: 5000, RSSPerConnB: s.rss}))
			}
		}
	}
	recs = append(recs,
		tlsRecord(t, "tcpoll-tls", "flood", 0, FloodResult{Pass: true, Handshakes: 200, P99: 5000, Attackers: 2000, Closed: 2000, Slowest: 5.01, Deadline: 5}),
		tlsRecord(t, "net-tls", "flood", 0, FloodResult{Failed: "healthy p99 150ms, not under 100ms", Handshakes: 200, P99: 150000, Attackers: 2000, Closed: 2000}))
	var out bytes.Buffer
	build(recs).markdown(&out)
	md := out.String()
	for _, tc := range []struct{ bar, want string }{
		{"TLS: server CPU per message at 50×16", "| 0.60 0.60 0.60 | 0.600 | met |"},
		{"TLS: server CPU per message at 1000×16", "| 0.80 0.80 0.80 | 0.800 | **missed** |"},
		{"TLS: RSS per idle connection", "| 0.20 0.20 0.20 | 0.200 | met |"},
		{"TLS flood", "| pass | met |"},
	} {
		if row := barRow(t, md, tc.bar); !strings.HasSuffix(strings.TrimSpace(row), tc.want) {
			t.Errorf("bar %q:\n got %s want it to end %s", tc.bar, strings.TrimSpace(row), tc.want)
		}
	}
	for _, want := range []string{
		"| haproxy-tls | load 1000×16 | 3 | 1,000,000 | 0 | 0 | 0.70 | 0 |",
		"| tcpoll-tls | handshakes (32 clients) | 3 | 2,000 | 0 | 0 | 250.0 | 0 |",
		"| net-tls | 0 / 0 / 0 | 200 (0) | 0.0 | 150.0 | 0.0 | 2000 of 2000 | 0.00 | 0 | **FAIL**: healthy p99 150ms, not under 100ms |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no row %q in\n%s", want, md)
		}
	}
	// The TLS servers are not in the plaintext tables.
	if strings.Contains(md, "| tcpoll-tls | FAIL (check)") {
		t.Errorf("tcpoll-tls in a plaintext table:\n%s", md)
	}
}

func TestTLSFailedCheck(t *testing.T) {
	recs := []Record{
		{Server: "tcpoll-tls", Kind: "tls", Load: "check", Check: "FAIL", Failed: "1 of 39 cases FAILED"},
		{Server: "net-tls", Kind: "tls", Load: "check", Check: "ok"},
		tlsRecord(t, "net-tls", "50x16", 1, map[string]any{"server_cpu_us_per_msg": 0.5}),
		{Server: "haproxy-tls", Kind: "tls", Error: "skipped: no haproxy binary"},
	}
	var out bytes.Buffer
	build(recs).markdown(&out)
	md := out.String()
	for _, want := range []string{
		"| tcpoll-tls | **FAIL**: 1 of 39 cases FAILED (its numbers are not reported) |",
		"| haproxy-tls | skipped: no haproxy binary |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no row %q in\n%s", want, md)
		}
	}
	row := barRow(t, md, "TLS: server CPU per message at 50×16")
	if !strings.Contains(row, "tcpoll-tls failed or skipped tcpoll check -tls") || !strings.Contains(row, "**missed**") {
		t.Errorf("bar row %q: want it missed for the failed check", row)
	}
}
