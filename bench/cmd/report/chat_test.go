package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// chatRecord returns a chat record of server in scenario and round.
func chatRecord(t *testing.T, server, scenario string, round int, res ChatResult) Record {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return Record{Server: server, Kind: "chat", Round: round, Load: scenario, Result: b}
}

// barRow returns the row of the bar whose label starts with prefix.
func barRow(t *testing.T, md, prefix string) string {
	t.Helper()
	for line := range strings.Lines(md) {
		if strings.HasPrefix(line, "| "+prefix) {
			return line
		}
	}
	t.Fatalf("no bar %q in\n%s", prefix, md)
	return ""
}

func TestChatBars(t *testing.T) {
	var recs []Record
	for round := 1; round <= 3; round++ {
		for _, s := range []struct {
			server string
			cpu    float64 // ns a line in fan-out
			p99    float64 // µs with non-readers
		}{
			{"tcpoll-chat", 30, 900},
			{"gnet-chat", 100, 1000},
			{"nbio-chat", 35, 800},
			{"net-chat", 40, 700},
		} {
			recs = append(recs,
				chatRecord(t, s.server, "fanout", round, ChatResult{Clients: 100, Senders: 10, CPUPerLine: s.cpu, Delivered: 1000}),
				chatRecord(t, s.server, "nonreaders", round, ChatResult{Clients: 200, Senders: 4, NonReaders: 10,
					NonReadersDisconnected: 10, P99: s.p99, PeakRSSKB: 20 << 10}),
				chatRecord(t, s.server, "stall", round, ChatResult{Clients: 10, Senders: 4, NonReaders: 1, NonReadersDisconnected: 1, StallCheck: true}))
		}
	}
	// In round 2, tcpoll-chat lost a line and its stalled client stayed.
	for i, r := range recs {
		if r.Server == "tcpoll-chat" && r.Round == 2 && r.Load != "fanout" {
			var cr ChatResult
			json.Unmarshal(r.Result, &cr)
			cr.Lost, cr.NonReadersDisconnected = 1, 0
			recs[i] = chatRecord(t, r.Server, r.Load, r.Round, cr)
		}
	}
	var out bytes.Buffer
	build(recs).markdown(&out)
	md := out.String()
	for _, tc := range []struct{ bar, want string }{
		{"chat fan-out: server CPU per delivered line ≤ 0.8× gnet-chat", "| 0.30 0.30 0.30 | 0.300 | met |"},
		{"chat fan-out: server CPU per delivered line ≤ 0.8× nbio-chat", "| 0.86 0.86 0.86 | 0.857 | **missed** |"},
		{"chat with non-readers: readers' p99 ≤ 1.0× gnet-chat", "| 0.90 0.90 0.90 | 0.900 | met |"},
		{"chat with non-readers: no reader loses", "| 0 1 0 failures | 1 | **missed** |"},
		{"chat with non-readers: peak RSS", "| 20.0 20.0 20.0 MiB | 20.0 MiB | met |"},
		{"chat stall check", "| yes no yes | | **missed** |"},
	} {
		if row := barRow(t, md, tc.bar); !strings.HasSuffix(strings.TrimSpace(row), tc.want) {
			t.Errorf("bar %q:\n got %s want it to end %s", tc.bar, strings.TrimSpace(row), tc.want)
		}
	}
	if !strings.Contains(md, "| nbio-chat | stall check | 3 | 10 (4 senders, 1 non-reader) |") {
		t.Errorf("no stall row for nbio-chat in\n%s", md)
	}
	// The chat servers run no tcpoll check: they are not in its table.
	if strings.Contains(md, "| gnet-chat | **FAIL**") || strings.Contains(md, "| gnet-chat | ok |") {
		t.Errorf("gnet-chat in the conformance table:\n%s", md)
	}
}

func TestChatSkipped(t *testing.T) {
	recs := []Record{
		{Server: "tcpoll-chat", Kind: "chat", Error: "skipped: examples/chat does not exist yet"},
		chatRecord(t, "gnet-chat", "fanout", 1, ChatResult{Clients: 100, Senders: 10, CPUPerLine: 100}),
	}
	var out bytes.Buffer
	build(recs).markdown(&out)
	md := out.String()
	if !strings.Contains(md, "| tcpoll-chat | — | skipped: examples/chat does not exist yet |") {
		t.Errorf("no skipped row in\n%s", md)
	}
	row := barRow(t, md, "chat fan-out: server CPU per delivered line ≤ 0.8× gnet-chat")
	if want := fmt.Sprintf("| not measured: %s | | |", "skipped: examples/chat does not exist yet"); !strings.Contains(row, want) {
		t.Errorf("bar row %q, want %q in it", row, want)
	}
}
