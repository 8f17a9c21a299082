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

// ChatResult holds the fields of `chatload` used here.
type ChatResult struct {
	Clients                int     `json:"clients"`
	Senders                int     `json:"senders"`
	NonReaders             int     `json:"nonreaders"`
	Rate                   float64 `json:"rate"`
	LineSize               int     `json:"line_size"`
	StallCheck             bool    `json:"stall_check"`
	Seconds                float64 `json:"duration_s"`
	SentMiB                float64 `json:"sent_mib"`
	Delivered              int64   `json:"delivered"`
	DeliveredPerSec        float64 `json:"delivered_per_sec"`
	P50                    float64 `json:"p50_us"`
	P99                    float64 `json:"p99_us"`
	ServerCPU              float64 `json:"server_cpu_s"`
	DeliveredPerCPUSec     float64 `json:"delivered_per_cpu_s"`
	CPUPerLine             float64 `json:"server_cpu_ns_per_line"`
	PeakRSSKB              int64   `json:"peak_rss_kb"`
	NonReadersDisconnected int     `json:"nonreaders_disconnected"`
	ReadersDisconnected    int     `json:"readers_disconnected"`
	Lost                   int64   `json:"lost_lines"`
	Duplicates             int64   `json:"duplicate_lines"`
	Corrupt                int64   `json:"corrupt_lines"`
	Own                    int64   `json:"own_lines"`
	SenderErrors           int     `json:"sender_errors"`
	FirstError             string  `json:"first_error"`
}

// others counts the failures of the checks that are not a lost line or a
// disconnected reader: lines broken, twice or back to their sender, and
// senders that failed.
func (c *ChatResult) others() int64 {
	return c.Duplicates + c.Corrupt + c.Own + int64(c.SenderErrors)
}

// The chat cell's scenarios, as bench/run names them, in the order shown.
var chatScenarios = []string{"fanout", "nonreaders", "stall"}

// chatScenario describes a scenario for the table.
func chatScenario(s string) string {
	switch s {
	case "fanout":
		return "fan-out"
	case "nonreaders":
		return "non-readers"
	case "stall":
		return "stall check"
	}
	return s
}

// The chat server the bars judge, and the peers they compare it with.
const (
	chatOurs = "tcpoll-chat"
	chatGnet = "gnet-chat"
	chatNbio = "nbio-chat"
	// maxChatRSSKiB bounds the peak RSS with non-readers.
	maxChatRSSKiB = 100 << 10
)

// chatRecords are the chat cell's records, sorted out. Its servers are its
// own: none of them runs tcpoll check.
type chatRecords struct {
	servers []string                          // in the order first seen
	rounds  map[[2]string]map[int]*ChatResult // [server, scenario]: each round's
	errs    map[[2]string]string              // [server, scenario]; scenario "": the server did not run
}

func newChatRecords() chatRecords {
	return chatRecords{rounds: map[[2]string]map[int]*ChatResult{}, errs: map[[2]string]string{}}
}

func (c *chatRecords) add(rec Record) {
	if !slices.Contains(c.servers, rec.Server) {
		c.servers = append(c.servers, rec.Server)
	}
	k := [2]string{rec.Server, rec.Load}
	var cr ChatResult
	if rec.Error != "" || json.Unmarshal(rec.Result, &cr) != nil {
		c.errs[k] = cmp.Or(rec.Error, "no result")
		return
	}
	if c.rounds[k] == nil {
		c.rounds[k] = map[int]*ChatResult{}
	}
	c.rounds[k][rec.Round] = &cr
}

// each returns the rounds of server in scenario, in round order.
func (c *chatRecords) each(server, scenario string) []*ChatResult {
	m := c.rounds[[2]string{server, scenario}]
	var out []*ChatResult
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[n])
	}
	return out
}

// figure returns a figure of server in scenario by round.
func (c *chatRecords) figure(server, scenario string, f func(*ChatResult) float64) map[int]float64 {
	m := map[int]float64{}
	for n, cr := range c.rounds[[2]string{server, scenario}] {
		m[n] = f(cr)
	}
	return m
}

// table writes the chat cell's figures, if it ran.
func (c *chatRecords) table(w io.Writer) {
	if len(c.servers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Chat: fan-out to every other client\n\n")
	fmt.Fprintf(w, "examples/chat (tcpoll-chat) and the same chat on gnet, nbio and package net (peers/*chat): every line a client sends goes to every other client; ")
	fmt.Fprintf(w, "a client the server holds more than 256 KiB of lines for is disconnected. `chatload` checks that every reader gets every other sender's lines, whole, in order, once. ")
	fmt.Fprintf(w, "Fan-out: 100 clients, 10 of them senders as fast as the slowest reader allows (16 lines in flight each). ")
	fmt.Fprintf(w, "Non-readers: 200 clients, 10 of which never read, 4 senders at 1,000 lines/s each (512-byte lines). ")
	fmt.Fprintf(w, "Stall check: 10 clients, one of which stops reading while 4 senders publish 20 MB: it must be disconnected. ")
	fmt.Fprintf(w, "Delivered lines are those readers got in the measured window, and server CPU is its utime+stime over it; peak RSS is the server's VmHWM. ")
	fmt.Fprintf(w, "Each figure is its median over the rounds, each round a fresh server; disconnections and failures are all rounds' added up. ")
	fmt.Fprintf(w, "Other failures: lines broken, twice or out of order, back to their sender; senders that failed.\n\n")
	fmt.Fprintf(w, "| server | scenario | rounds | clients | lines/s delivered | lines per server CPU-s | server CPU ns / line | p50 µs | p99 µs | peak RSS MiB | non-readers disconnected | readers disconnected | lost lines | other failures |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	empty := strings.Repeat(" |", 12)
	for _, s := range c.servers {
		if e, ok := c.errs[[2]string{s, ""}]; ok {
			fmt.Fprintf(w, "| %s | — | %s |%s\n", s, mdEscape(e), empty)
			continue
		}
		for _, sc := range chatScenarios {
			if e, ok := c.errs[[2]string{s, sc}]; ok {
				fmt.Fprintf(w, "| %s | %s | error: %s |%s\n", s, chatScenario(sc), mdEscape(e), empty)
				continue
			}
			rs := c.each(s, sc)
			if len(rs) == 0 {
				continue
			}
			med := func(f func(*ChatResult) float64) float64 { return medianOf(rs, f) }
			var nonDisc, nonAll, readDisc int
			var lost, others int64
			for _, x := range rs {
				nonDisc += x.NonReadersDisconnected
				nonAll += x.NonReaders
				readDisc += x.ReadersDisconnected
				lost += x.Lost
				others += x.others()
			}
			clients := fmt.Sprintf("%d (%d senders", rs[0].Clients, rs[0].Senders)
			switch n := rs[0].NonReaders; {
			case n == 1:
				clients += ", 1 non-reader"
			case n > 1:
				clients += fmt.Sprintf(", %d non-readers", n)
			}
			clients += ")"
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %.0f | %.0f | %.0f | %.1f | %d / %d | %d | %d | %d |\n",
				s, chatScenario(sc), len(rs), clients,
				thousands(med(func(x *ChatResult) float64 { return x.DeliveredPerSec })),
				thousands(med(func(x *ChatResult) float64 { return x.DeliveredPerCPUSec })),
				med(func(x *ChatResult) float64 { return x.CPUPerLine }),
				med(func(x *ChatResult) float64 { return x.P50 }),
				med(func(x *ChatResult) float64 { return x.P99 }),
				med(func(x *ChatResult) float64 { return float64(x.PeakRSSKB) / 1024 }),
				nonDisc, nonAll, readDisc, lost, others)
		}
	}
}

// bars judges tcpoll-chat against the project's chat bars, if the chat
// cell ran.
func (c *chatRecords) bars(w io.Writer) {
	if len(c.servers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## The chat bars\n\n")
	fmt.Fprintf(w, "tcpoll-chat's figure over the peer's in each round, where the two ran one after the other on fresh instances, and the median of those ratios; or each round's figure, every one of which must meet the bar.\n\n")
	fmt.Fprintf(w, "| bar | per round | median or worst | |\n|---|---|---:|---|\n")
	cpu := func(x *ChatResult) float64 { return x.CPUPerLine }
	p99 := func(x *ChatResult) float64 { return x.P99 }
	for _, b := range []struct {
		label, scenario, peer string
		limit                 float64
		f                     func(*ChatResult) float64
	}{
		{"chat fan-out: server CPU per delivered line ≤ 0.8× gnet-chat", "fanout", chatGnet, 0.8, cpu},
		{"chat fan-out: server CPU per delivered line ≤ 0.8× nbio-chat", "fanout", chatNbio, 0.8, cpu},
		{"chat with non-readers: readers' p99 ≤ 1.0× gnet-chat", "nonreaders", chatGnet, 1, p99},
	} {
		if c.missing(w, b.label, b.scenario) {
			continue
		}
		ratioRow(w, b.label, c.figure(chatOurs, b.scenario, b.f), c.figure(b.peer, b.scenario, b.f), b.limit, false)
	}

	const (
		lossless = "chat with non-readers: no reader loses a line or is disconnected (every round)"
		rss      = "chat with non-readers: peak RSS < 100 MiB (every round)"
		stall    = "chat stall check: the stalled client is disconnected (every round)"
	)
	if !c.missing(w, lossless, "nonreaders") {
		var each []string
		var total int64
		for _, x := range c.each(chatOurs, "nonreaders") {
			n := x.Lost + int64(x.ReadersDisconnected) + x.others()
			total += n
			each = append(each, fmt.Sprint(n))
		}
		fmt.Fprintf(w, "| %s | %s failures | %d | %s |\n", lossless, strings.Join(each, " "), total, metWord(total == 0))
	}
	if !c.missing(w, rss, "nonreaders") {
		var each []string
		var worst int64
		for _, x := range c.each(chatOurs, "nonreaders") {
			worst = max(worst, x.PeakRSSKB)
			each = append(each, fmt.Sprintf("%.1f", float64(x.PeakRSSKB)/1024))
		}
		fmt.Fprintf(w, "| %s | %s MiB | %.1f MiB | %s |\n", rss, strings.Join(each, " "), float64(worst)/1024, metWord(worst > 0 && worst < maxChatRSSKiB))
	}
	if !c.missing(w, stall, "stall") {
		var each []string
		all := true
		for _, x := range c.each(chatOurs, "stall") {
			ok := x.NonReaders > 0 && x.NonReadersDisconnected == x.NonReaders
			all = all && ok
			each = append(each, map[bool]string{true: "yes", false: "no"}[ok])
		}
		fmt.Fprintf(w, "| %s | %s | | %s |\n", stall, strings.Join(each, " "), metWord(all))
	}
}

// missing writes the row of a bar tcpoll-chat has no figures for in
// scenario, saying why, and reports whether it did.
func (c *chatRecords) missing(w io.Writer, label, scenario string) bool {
	if e, ok := c.errs[[2]string{chatOurs, ""}]; ok {
		fmt.Fprintf(w, "| %s | not measured: %s | | |\n", label, mdEscape(e))
		return true
	}
	if e, ok := c.errs[[2]string{chatOurs, scenario}]; ok {
		fmt.Fprintf(w, "| %s | error: %s | | **missed** |\n", label, mdEscape(e))
		return true
	}
	if len(c.rounds[[2]string{chatOurs, scenario}]) == 0 {
		fmt.Fprintf(w, "| %s | not measured | | |\n", label)
		return true
	}
	return false
}
