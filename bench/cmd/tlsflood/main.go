// Command tlsflood floods a TLS server with clients that never finish a
// handshake (internal/tlsflood): -silent clients that connect and send
// nothing, -partial ones that send half a ClientHello and stall, -garbage
// ones that send bytes that are no TLS record. Once every attacker has
// connected and sent, a healthy client makes -handshakes full handshakes,
// one after the other, and their latency (dial to handshake done) is
// measured. Each attacker then waits up to -wait for the server to close
// it; the server's handshake deadline is -deadline, and the verdict is
// whether the healthy p99 stayed under -max-p99 and every attacker was
// closed within -deadline plus -slack.
//
// It prints one JSON line (or text without -json) and exits non-zero if
// the server failed the verdict.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/tcpoll/poll/bench/internal/client"
	"github.com/tcpoll/poll/internal/tlsflood"
)

// Result is what tlsflood reports.
type Result struct {
	Pass bool `json:"pass"`
	// Failed says why not, for a server that did not pass.
	Failed string `json:"failed,omitempty"`

	Silent     int `json:"silent"`
	Partial    int `json:"partial"`
	Garbage    int `json:"garbage"`
	Handshakes int `json:"handshakes"`
	// HandshakesFailed counts the healthy client's failed handshakes.
	HandshakesFailed int     `json:"handshakes_failed"`
	P50              float64 `json:"p50_us"`
	P99              float64 `json:"p99_us"`
	Max              float64 `json:"max_us"`
	Attackers        int     `json:"attackers"`
	DialErrors       int     `json:"dial_errors"`
	// Closed counts the attackers the server closed within Wait; Slowest
	// is the longest one of them took.
	Closed   int     `json:"closed"`
	Slowest  float64 `json:"slowest_closed_s"`
	Deadline float64 `json:"deadline_s"`
	Slack    float64 `json:"slack_s"`
	Wait     float64 `json:"wait_s"`
	MaxP99   float64 `json:"max_p99_us"`
	Seconds  float64 `json:"duration_s"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "server `address`")
	ca := flag.String("tls-ca", "", "trust the CA certificates in this PEM `file` (required)")
	silent := flag.Int("silent", 700, "attackers that send nothing")
	partial := flag.Int("partial", 700, "attackers that send half a ClientHello")
	garbage := flag.Int("garbage", 600, "attackers that send garbage")
	handshakes := flag.Int("handshakes", 200, "the healthy client's full handshakes")
	deadline := flag.Duration("deadline", 5*time.Second, "the server's handshake deadline")
	slack := flag.Duration("slack", time.Second, "how much later than -deadline an attacker may be closed")
	wait := flag.Duration("wait", 7*time.Second, "how long an attacker waits to be closed")
	maxP99 := flag.Duration("max-p99", 100*time.Millisecond, "the healthy handshakes' p99 must stay under this")
	asJSON := flag.Bool("json", false, "print one JSON line")
	flag.Parse()
	if *ca == "" || *handshakes <= 0 || *wait < *deadline+*slack {
		flag.Usage()
		os.Exit(2)
	}
	cfg, err := client.TLSConfig(*ca, *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsflood: -tls-ca:", err)
		os.Exit(2)
	}
	attackers := *silent + *partial + *garbage
	if err := client.RaiseFileLimit(attackers, 64); err != nil {
		fmt.Fprintln(os.Stderr, "tlsflood:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+time.Minute)
	defer cancel()
	start := time.Now()
	r, err := tlsflood.Run(ctx, tlsflood.Config{
		Addr:   *addr,
		Silent: *silent, Partial: *partial, Garbage: *garbage,
		Handshakes: *handshakes,
		TLS:        cfg,
		Wait:       *wait,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsflood:", err)
		os.Exit(1)
	}
	res := Result{
		Silent: *silent, Partial: *partial, Garbage: *garbage,
		Handshakes: r.Handshakes, HandshakesFailed: r.Failed,
		P50: us(r.P50), P99: us(r.P99), Max: us(r.Max),
		Attackers: r.Attackers, DialErrors: r.DialErrors,
		Closed: r.Closed, Slowest: math.Round(r.Slowest.Seconds()*1e3) / 1e3,
		Deadline: deadline.Seconds(), Slack: slack.Seconds(), Wait: wait.Seconds(),
		MaxP99:  us(*maxP99),
		Seconds: math.Round(time.Since(start).Seconds()*10) / 10,
	}
	switch {
	case r.Failed > 0 || r.Handshakes != *handshakes:
		res.Failed = fmt.Sprintf("%d of %d healthy handshakes failed", r.Failed, *handshakes)
	case r.P99 >= *maxP99:
		res.Failed = fmt.Sprintf("healthy p99 %v, not under %v", r.P99.Round(time.Millisecond), *maxP99)
	case r.DialErrors > 0:
		res.Failed = fmt.Sprintf("%d attackers could not connect", r.DialErrors)
	case r.Closed < r.Attackers:
		res.Failed = fmt.Sprintf("%d of %d attackers not closed within %v", r.Attackers-r.Closed, r.Attackers, *wait)
	case r.Slowest > *deadline+*slack:
		res.Failed = fmt.Sprintf("an attacker closed after %v, past the %v deadline and %v slack", r.Slowest.Round(time.Millisecond), *deadline, *slack)
	default:
		res.Pass = true
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Printf("%s\n", b)
	} else {
		fmt.Println(r)
		if res.Pass {
			fmt.Println("pass")
		} else {
			fmt.Println("FAIL:", res.Failed)
		}
	}
	if !res.Pass {
		os.Exit(1)
	}
}

// us returns d in microseconds, to a tenth.
func us(d time.Duration) float64 { return math.Round(float64(d)/1e2) / 10 }
