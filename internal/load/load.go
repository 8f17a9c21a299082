// Package load is a load generator for the acknowledgement protocol (see
// PROTOCOL.md): many TCP connections, each keeping a fixed number of
// messages in flight, every answer checked byte for byte, latencies kept in
// a histogram.
//
// It must never be the bottleneck of what it measures, so it does not run
// a goroutine per connection. Run starts Config.Loops event loops, each a
// goroutine that owns a poll.Poller and a share of the connections, on raw
// non-blocking sockets. A loop reads the answers of one connection into a
// buffer shared by all of its connections, checks them, and answers the
// answers with one write carrying as many new messages as came back.
//
// With Config.TLS, connections run inside TLS, on Go's crypto/tls, which
// needs blocking connections: each is then two goroutines, one writing its
// messages and one reading and checking the answers, with the same
// pipelining, phases and measurements.
//
// A run has four phases: connect (every connection is opened before the
// clock starts), warm-up (traffic, not counted), the measured window
// (Duration), and drain (no new messages; the answers still owed are
// awaited for up to Timeout). Sent, Answered, the throughput and the
// latencies cover only messages sent in the measured window; mismatches,
// errors and timeouts are counted over the whole run, since any of them
// means the server is wrong.
package load

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Answer is the answer the server owes every message.
const Answer = "I recieved your message\n"

// Defaults, used where a Config field is zero.
const (
	DefaultConns      = 50
	DefaultDepth      = 1
	DefaultSize       = 16
	DefaultDuration   = 10 * time.Second
	DefaultTimeout    = 5 * time.Second
	DefaultMaxMessage = 256
)

// maxConnecting bounds the connects in progress over all loops, so a burst
// of SYNs does not overflow the server's listen backlog.
const maxConnecting = 256

// Config describes a run. Zero fields take the defaults.
type Config struct {
	// Addr is the server's address, host:port.
	Addr string
	// Conns is the number of connections (default 50).
	Conns int
	// Depth is the number of messages each connection keeps in flight: the
	// pipeline depth (default 1).
	Depth int
	// Size is the length of a message on the wire, its LF included
	// (default 16, at least 1). The bytes before the LF are letters: never
	// LF or CR, and never the message "close".
	Size int
	// MaxMessage is the server's MaxMessage (default 256). A message longer
	// than that is cut by the server and gets one answer per piece; the
	// load generator expects exactly that many.
	MaxMessage int
	// Duration is the measured window (default 10s).
	Duration time.Duration
	// Warmup is the time the traffic runs before the window opens (default
	// 0: none).
	Warmup time.Duration
	// Rate caps the messages sent per second over all connections; 0 means
	// no limit beyond the pipeline depth.
	Rate float64
	// Sources are local addresses to bind before connecting, given to the
	// connections in turn, so that many connections can use more source
	// ports than one address has (127.0.0.1, 127.0.0.2, ... on Linux).
	// They must be of the same family as the server's address.
	Sources []netip.Addr
	// Loops is the number of event loops (default GOMAXPROCS).
	Loops int
	// Timeout is how long an answer may take (default 5s). A connection
	// that waits longer for one is closed and its messages in flight are
	// counted as timeouts. Connects are given as long.
	Timeout time.Duration
	// ServerPID, if not 0, is the server's process id: its CPU time over the
	// measured window is read from /proc/PID/stat (Linux only).
	ServerPID int
	// Progress, if not nil, receives a progress line once a second, each
	// rewriting the last with a carriage return. Pass a terminal only.
	Progress io.Writer
	// Proxy, if not ProxyNone, makes every connection begin with a PROXY
	// protocol header, as a load balancer would send it: version 1 or 2,
	// announcing the connection's own local address as the client and the
	// server's address as the destination. It is written once, when the
	// connection opens and before the warm-up, so it costs the measured
	// window nothing. With TLS it comes first, in the clear.
	Proxy Proxy
	// TLS, when set, runs every connection inside TLS with this client
	// configuration (which names the server, ServerName, or skips
	// verification), on a goroutine pair per connection instead of the
	// event loops; Loops then only shards the counters. Every handshake
	// is done, within Timeout, before the warm-up.
	TLS *tls.Config
}

// Proxy is the PROXY protocol header (HAProxy's doc/proxy-protocol.txt)
// that connections send first, if any.
type Proxy uint8

const (
	ProxyNone Proxy = iota // no header: the client is itself
	ProxyV1                // "PROXY TCP4 src dst sport dport\r\n" (or TCP6)
	ProxyV2                // the binary header, command PROXY, TCP over IPv4 or IPv6
)

// String returns "none", "v1" or "v2".
func (p Proxy) String() string {
	switch p {
	case ProxyNone:
		return "none"
	case ProxyV1:
		return "v1"
	case ProxyV2:
		return "v2"
	}
	return fmt.Sprintf("Proxy(%d)", uint8(p))
}

// ParseProxy is the inverse of Proxy.String; "" means ProxyNone.
func ParseProxy(s string) (Proxy, error) {
	switch s {
	case "", "none":
		return ProxyNone, nil
	case "v1":
		return ProxyV1, nil
	case "v2":
		return ProxyV2, nil
	}
	return 0, fmt.Errorf("load: unknown PROXY protocol version %q (want v1 or v2)", s)
}

// MaxProxyHeader bounds the headers AppendProxyHeader writes: a v1 line
// with two full IPv6 addresses (104 bytes) and a v2 header for IPv6 (16 +
// 36 bytes) are within the v1 limit of 107 bytes.
const MaxProxyHeader = 107

// proxyV2Sig is the 12-byte signature that starts a v2 header.
const proxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"

// AppendProxyHeader appends to b the header of version v for a TCP
// connection from src to dst, which must be of one family (a v4-mapped
// IPv6 address counts as IPv4; zones are dropped), and returns the
// extended slice; ProxyNone appends nothing. It allocates nothing when b
// has room for MaxProxyHeader more bytes. A client that dials a server run
// with -proxy-protocol, such as a benchmark's, writes it first.
func AppendProxyHeader(b []byte, v Proxy, src, dst netip.AddrPort) []byte {
	sa, da := src.Addr().Unmap().WithZone(""), dst.Addr().Unmap().WithZone("")
	switch v {
	case ProxyV1:
		b = append(b, "PROXY TCP4 "...)
		if sa.Is6() {
			b[len(b)-2] = '6'
		}
		b = sa.AppendTo(b)
		b = append(b, ' ')
		b = da.AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	case ProxyV2:
		// Version 2, command PROXY; then the family and transport: 0x11
		// TCP over IPv4 with 12 bytes of addresses, 0x21 TCP over IPv6
		// with 36.
		fam, n := byte(0x11), 12
		if sa.Is6() {
			fam, n = 0x21, 36
		}
		b = append(b, proxyV2Sig...)
		b = append(b, 0x21, fam, 0, byte(n))
		if sa.Is6() {
			s, d := sa.As16(), da.As16()
			b = append(b, s[:]...)
			b = append(b, d[:]...)
		} else {
			s, d := sa.As4(), da.As4()
			b = append(b, s[:]...)
			b = append(b, d[:]...)
		}
		return append(b, byte(src.Port()>>8), byte(src.Port()), byte(dst.Port()>>8), byte(dst.Port()))
	}
	return b
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		return c, errors.New("load: no server address")
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.Depth == 0 {
		c.Depth = DefaultDepth
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Loops == 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	switch {
	case c.Conns < 0:
		return c, fmt.Errorf("load: Conns %d is negative", c.Conns)
	case c.Depth < 0:
		return c, fmt.Errorf("load: Depth %d is negative", c.Depth)
	case c.Size < 0:
		return c, fmt.Errorf("load: Size %d is negative", c.Size)
	case c.MaxMessage < 1:
		return c, fmt.Errorf("load: MaxMessage %d is below 1", c.MaxMessage)
	case c.Duration < 0, c.Warmup < 0, c.Timeout < 0:
		return c, errors.New("load: negative duration, warm-up or timeout")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return c, fmt.Errorf("load: bad rate %v", c.Rate)
	case c.Loops < 0:
		return c, fmt.Errorf("load: Loops %d is negative", c.Loops)
	case c.Proxy > ProxyV2:
		return c, fmt.Errorf("load: unknown %v", c.Proxy)
	case int64(c.Depth)*int64(c.Size) > 64<<20:
		return c, fmt.Errorf("load: Depth × Size is %d bytes, over 64 MiB", int64(c.Depth)*int64(c.Size))
	}
	c.Loops = min(c.Loops, c.Conns)
	return c, nil
}

// Result is what a run measured. Its JSON form is one object with
// snake_case names that carry their units.
type Result struct {
	// The configuration, after defaults.
	Conns, Depth, Size, Loops int
	Rate                      float64
	Proxy                     Proxy
	// TLS says the connections ran inside TLS.
	TLS bool
	// Duration is the measured window: Config.Duration, or less if the
	// context ended the run early.
	Duration time.Duration

	// Sent counts the messages sent in the window, Answered those of them
	// whose answer (every piece's, when the server cuts them) arrived.
	Sent, Answered uint64
	// Mismatches counts answers that differ from Answer, and answers to no
	// message at all.
	Mismatches uint64
	// Errors counts connections that failed: connects refused or timed
	// out, resets, and the server closing a connection.
	Errors uint64
	// Timeouts counts messages left unanswered after Timeout.
	Timeouts uint64
	// FirstError describes one of the errors or timeouts, if any.
	FirstError string

	// MsgsPerSec is Answered per second of the window.
	MsgsPerSec float64
	// Latency is the time from a message's write to its answer's read.
	P50, P99, P999, Max time.Duration

	// ClientCPU is this process's CPU time (user+system) over the window;
	// it includes everything else the process runs.
	ClientCPU time.Duration
	// ServerCPU is the server's CPU time over the window, if
	// Config.ServerPID was given (HasServerCPU).
	ServerCPU    time.Duration
	HasServerCPU bool
}

// OK reports whether the run saw no mismatch, error or timeout.
func (r Result) OK() bool { return r.Mismatches == 0 && r.Errors == 0 && r.Timeouts == 0 }

// Err returns an error describing the failures of the run, or nil if OK.
func (r Result) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%d mismatches, %d errors, %d timeouts", r.Mismatches, r.Errors, r.Timeouts)
}

// tally is what a loop, or a shard of TLS connections, counted. Sent,
// answered and hist cover the measured window; the failures, and all, the
// whole run.
type tally struct {
	hist                         Histogram
	sent, answered               uint64
	all                          uint64 // answers in any phase
	mismatches, errors, timeouts uint64
	firstErr                     error // the first failure's cause
}

// noteErr counts a failed connection and keeps the first cause.
func (t *tally) noteErr(err error) {
	t.errors++
	if t.firstErr == nil {
		t.firstErr = err
	}
}

// add adds t's counts to r.
func (r *Result) add(t *tally, h *Histogram) {
	if t.firstErr != nil && r.FirstError == "" {
		r.FirstError = t.firstErr.Error()
	}
	r.Sent += t.sent
	r.Answered += t.answered
	r.Mismatches += t.mismatches
	r.Errors += t.errors
	r.Timeouts += t.timeouts
	h.Merge(&t.hist)
}

// perMsg returns d per answered message in microseconds, or 0.
func (r Result) perMsg(d time.Duration) float64 {
	if r.Answered == 0 {
		return 0
	}
	return float64(d) / 1e3 / float64(r.Answered)
}

type resultJSON struct {
	MsgsPerSec      float64  `json:"msgs_per_sec"`
	P50             float64  `json:"p50_us"`
	P99             float64  `json:"p99_us"`
	P999            float64  `json:"p999_us"`
	Max             float64  `json:"max_us"`
	Sent            uint64   `json:"sent"`
	Answered        uint64   `json:"answered"`
	Mismatches      uint64   `json:"mismatches"`
	Errors          uint64   `json:"errors"`
	Timeouts        uint64   `json:"timeouts"`
	ClientCPU       float64  `json:"client_cpu_s"`
	ClientCPUPerMsg float64  `json:"client_cpu_us_per_msg"`
	ServerCPU       *float64 `json:"server_cpu_s,omitempty"`
	ServerCPUPerMsg *float64 `json:"server_cpu_us_per_msg,omitempty"`
	Conns           int      `json:"conns"`
	Depth           int      `json:"depth"`
	Size            int      `json:"size"`
	Loops           int      `json:"loops"`
	Rate            float64  `json:"rate"`
	Proxy           string   `json:"proxy,omitempty"`
	TLS             bool     `json:"tls,omitempty"`
	DurationSeconds float64  `json:"duration_s"`
	FirstError      string   `json:"first_error,omitempty"`
}

// us returns d in microseconds, to a tenth.
func us(d time.Duration) float64 { return math.Round(float64(d)/1e2) / 10 }

// seconds returns d in seconds, to a microsecond.
func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)/time.Microsecond) / 1e6
}

func round3(x float64) float64 { return math.Round(x*1e3) / 1e3 }

// MarshalJSON writes r as one object: msgs_per_sec, p50_us, p99_us,
// p999_us, max_us, sent, answered, mismatches, errors, timeouts,
// client_cpu_s, client_cpu_us_per_msg, server_cpu_s and
// server_cpu_us_per_msg (only with a server PID), conns, depth, size,
// loops, rate, proxy ("v1" or "v2", only with a PROXY header), tls (true,
// only inside TLS), duration_s and first_error (only if there was one).
func (r Result) MarshalJSON() ([]byte, error) {
	j := resultJSON{
		MsgsPerSec:      math.Round(r.MsgsPerSec),
		P50:             us(r.P50),
		P99:             us(r.P99),
		P999:            us(r.P999),
		Max:             us(r.Max),
		Sent:            r.Sent,
		Answered:        r.Answered,
		Mismatches:      r.Mismatches,
		Errors:          r.Errors,
		Timeouts:        r.Timeouts,
		ClientCPU:       seconds(r.ClientCPU),
		ClientCPUPerMsg: round3(r.perMsg(r.ClientCPU)),
		Conns:           r.Conns,
		Depth:           r.Depth,
		Size:            r.Size,
		Loops:           r.Loops,
		Rate:            r.Rate,
		TLS:             r.TLS,
		DurationSeconds: seconds(r.Duration),
		FirstError:      r.FirstError,
	}
	if r.Proxy != ProxyNone {
		j.Proxy = r.Proxy.String()
	}
	if r.HasServerCPU {
		s, p := seconds(r.ServerCPU), round3(r.perMsg(r.ServerCPU))
		j.ServerCPU, j.ServerCPUPerMsg = &s, &p
	}
	return json.Marshal(j)
}

// String returns a human summary of several lines.
func (r Result) String() string {
	var b strings.Builder
	rate := "unlimited"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%.0f msgs/s", r.Rate)
	}
	header := ""
	if r.Proxy != ProxyNone {
		header = fmt.Sprintf(", PROXY %v header", r.Proxy)
	}
	clients := fmt.Sprintf("%d event loop%s", r.Loops, plural(r.Loops))
	if r.TLS {
		clients = "TLS, two goroutines per connection"
	}
	fmt.Fprintf(&b, "%d connections%s, depth %d, %d-byte messages, %s, rate %s, window %v\n",
		r.Conns, header, r.Depth, r.Size, clients, rate, r.Duration.Round(time.Millisecond))
	fmt.Fprintf(&b, "messages    %d sent, %d answered, %d mismatches, %d errors, %d timeouts\n",
		r.Sent, r.Answered, r.Mismatches, r.Errors, r.Timeouts)
	fmt.Fprintf(&b, "throughput  %.0f msgs/s\n", r.MsgsPerSec)
	fmt.Fprintf(&b, "latency     p50 %v  p99 %v  p99.9 %v  max %v\n",
		roundDur(r.P50), roundDur(r.P99), roundDur(r.P999), roundDur(r.Max))
	fmt.Fprintf(&b, "cpu         client %.2fs (%.2fµs/msg)", r.ClientCPU.Seconds(), r.perMsg(r.ClientCPU))
	if r.HasServerCPU {
		fmt.Fprintf(&b, "  server %.2fs (%.2fµs/msg)", r.ServerCPU.Seconds(), r.perMsg(r.ServerCPU))
	}
	b.WriteString("\n")
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error %s\n", r.FirstError)
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// roundDur keeps three or four significant digits.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

// ParseSources parses a list of local addresses: comma-separated addresses
// or inclusive ranges such as "127.0.0.1-127.0.0.20".
func ParseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("load: source %q: %w", part, err)
		}
		if !isRange {
			out = append(out, first)
			continue
		}
		last, err := netip.ParseAddr(strings.TrimSpace(hi))
		if err != nil {
			return nil, fmt.Errorf("load: source range %q: %w", part, err)
		}
		if first.Is4() != last.Is4() || last.Less(first) {
			return nil, fmt.Errorf("load: source range %q is empty or mixes families", part)
		}
		for a := first; ; a = a.Next() {
			if len(out) >= 1<<16 {
				return nil, fmt.Errorf("load: source range %q is too long", part)
			}
			out = append(out, a)
			if a == last {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("load: no source address")
	}
	return out, nil
}

// resolve turns addr into an address and port, looking the host up if it
// is not an IP address.
func resolve(addr string) (netip.AddrPort, uint32, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		ta, rerr := net.ResolveTCPAddr("tcp", addr)
		if rerr != nil {
			return netip.AddrPort{}, 0, fmt.Errorf("load: %w", rerr)
		}
		ap = ta.AddrPort()
	}
	var zone uint32
	if z := ap.Addr().Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return netip.AddrPort{}, 0, fmt.Errorf("load: zone of %s: %w", addr, err)
		}
		zone = uint32(ifi.Index)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	if ap.Port() == 0 {
		return netip.AddrPort{}, 0, fmt.Errorf("load: %s has no port", addr)
	}
	return ap, zone, nil
}

// messages returns depth messages of size bytes back to back. Every
// message is the same, so any unsent tail of the messages in flight is a
// slice of this buffer.
func messages(size, depth int) []byte {
	m := make([]byte, size)
	for i := range size - 1 {
		// Letters only: no LF, no CR, and "close" is not a substring of
		// the alphabet, so no piece of a message is ever "close".
		m[i] = 'a' + byte(i%26)
	}
	m[size-1] = '\n'
	return []byte(strings.Repeat(string(m), depth))
}

// answersPerMessage returns how many answers the server sends to one
// message of size bytes, LF included: one per MaxMessage-byte piece.
func answersPerMessage(size, maxMessage int) int {
	n := size - 1
	if n <= maxMessage {
		return 1
	}
	return (n + maxMessage - 1) / maxMessage
}
