// Command idleconns measures what idle connections cost a server: it opens
// -n connections to it, spread over the source addresses 127.0.0.1 to
// 127.0.0.<-sources> so that no source runs out of ephemeral ports, sends
// one message on each and reads its answer, then holds them all open. It
// reads the server's VmRSS (from /proc/PID/status) before and after, and
// counts the CPU ticks the server burns while they sit idle (from
// /proc/PID/stat; a server that sleeps in epoll_wait burns none).
//
// With -tls-ca each connection runs inside TLS: the message and its
// answer follow a full handshake, so what is measured is what a TLS
// connection holds once its handshake is done.
//
// It prints one JSON line (or text without -json) and exits non-zero if a
// connection could not be opened or answered.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/tcpoll/poll/bench/internal/client"
	"github.com/tcpoll/poll/bench/internal/proc"
)

// Result is what idleconns reports.
type Result struct {
	Conns         int     `json:"conns"`
	TLS           bool    `json:"tls,omitempty"`
	Opened        int     `json:"opened"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	RSSBeforeKB   int64   `json:"rss_before_kb"`
	RSSAfterKB    int64   `json:"rss_after_kb"`
	RSSPerConnB   float64 `json:"rss_per_conn_b"`
	IdleTicks     int64   `json:"idle_ticks"`
	IdleSeconds   float64 `json:"idle_s"`
	OpenSeconds   float64 `json:"open_s"`
	ServerThreads int     `json:"server_threads"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "server `address`")
	n := flag.Int("n", 10000, "connections to open")
	sources := flag.Int("sources", 16, "source addresses 127.0.0.1 to 127.0.0.N")
	pid := flag.Int("pid", 0, "server `pid` (required): its /proc entries are read")
	hold := flag.Duration("hold", 10*time.Second, "how long to hold the connections idle while counting server CPU ticks")
	settle := flag.Duration("settle", time.Second, "pause after opening, before reading VmRSS")
	workers := flag.Int("workers", 64, "connections opened at once")
	warm := flag.Int("warm", 100, "connections opened and served before the baseline, so one-time costs (code paths run for the first time, buffers touched for the first time) are not charged to the measured ones")
	timeout := flag.Duration("timeout", 10*time.Second, "longest wait for a connect or an answer")
	tlsCA := flag.String("tls-ca", "", "connect inside TLS, trusting the CA certificates in this PEM `file`")
	asJSON := flag.Bool("json", false, "print one JSON line")
	flag.Parse()
	if *pid <= 0 || *n <= 0 || *sources < 1 || *sources > 254 || *workers <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	var tlsCfg *tls.Config
	if *tlsCA != "" {
		var err error
		if tlsCfg, err = client.TLSConfig(*tlsCA, *addr); err != nil {
			fmt.Fprintln(os.Stderr, "idleconns: -tls-ca:", err)
			os.Exit(2)
		}
	}
	res, err := run(*addr, *n, *warm, *sources, *pid, *hold, *settle, *workers, *timeout, tlsCfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Printf("%s\n", b)
	} else {
		fmt.Printf("%d of %d connections open (%d errors) in %.1fs\n", res.Opened, res.Conns, res.Errors, res.OpenSeconds)
		fmt.Printf("server VmRSS %d kB -> %d kB: %.0f B per connection\n", res.RSSBeforeKB, res.RSSAfterKB, res.RSSPerConnB)
		fmt.Printf("server CPU while idle: %d ticks in %.1fs (%d threads)\n", res.IdleTicks, res.IdleSeconds, res.ServerThreads)
	}
	if res.Errors > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: %d connections failed, first: %s\n", res.Errors, res.FirstError)
		os.Exit(1)
	}
}

func run(addr string, n, warm, sources, pid int, hold, settle time.Duration, workers int, timeout time.Duration, tlsCfg *tls.Config) (*Result, error) {
	if err := client.RaiseFileLimit(n, warm+64); err != nil {
		return nil, err
	}
	res := &Result{Conns: n, TLS: tlsCfg != nil}
	for i := range warm {
		c, err := open(addr, i%sources, timeout, tlsCfg)
		if err != nil {
			return nil, fmt.Errorf("warm-up connection: %w", err)
		}
		defer c.Close()
	}
	time.Sleep(settle)
	var err error
	if res.RSSBeforeKB, err = proc.RSS(pid); err != nil {
		return nil, err
	}

	start := time.Now()
	conns, failed, first := client.OpenAll(n, workers, func(i int) (net.Conn, error) {
		return open(addr, i%sources, timeout, tlsCfg)
	})
	res.OpenSeconds = time.Since(start).Seconds()
	defer client.CloseAll(conns)
	if first != nil {
		res.FirstError = first.Error()
	}
	res.Errors = failed
	res.Opened = n - res.Errors

	time.Sleep(settle)
	if res.RSSAfterKB, err = proc.RSS(pid); err != nil {
		return nil, err
	}
	if res.Opened > 0 {
		res.RSSPerConnB = float64(res.RSSAfterKB-res.RSSBeforeKB) * 1024 / float64(res.Opened)
	}
	t0, err := proc.Ticks(pid)
	if err != nil {
		return nil, err
	}
	h0 := time.Now()
	time.Sleep(hold)
	t1, err := proc.Ticks(pid)
	if err != nil {
		return nil, err
	}
	res.IdleSeconds = time.Since(h0).Seconds()
	res.IdleTicks = t1 - t0
	res.ServerThreads, _ = proc.Threads(pid)
	return res, nil
}

// open connects from 127.0.0.<src+1> (inside TLS with tlsCfg), sends one
// message and reads its answer.
func open(addr string, src int, timeout time.Duration, tlsCfg *tls.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(src+1))}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if tlsCfg != nil {
		tc := tls.Client(c, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	if _, err = io.WriteString(c, "hello\n"); err == nil {
		err = client.ReadAnswer(c, make([]byte, len(client.Answer)))
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
