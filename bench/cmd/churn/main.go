// Command churn measures what a connection's whole life costs a server:
// -c clients each connect, send one message, read its answer and close,
// over and over. After a warm-up it counts the connections completed in
// the measured window and the server's CPU time over it (from
// /proc/PID/stat), and prints connections per second and server CPU µs per
// connection.
//
// The client closes first, so its side of every connection waits in
// TIME_WAIT for a minute. The clients therefore bind source addresses
// 127.0.1.1 to 127.0.1.<-sources> with IP_BIND_ADDRESS_NO_PORT, so that a
// source port is taken per destination at connect, not per address at
// bind: tens of thousands of connections a second for seconds do not run
// out of ephemeral ports.
//
// With -tls-ca every connection runs inside TLS: a full handshake each
// time (no session is resumed), the message and its answer, close_notify
// and close: handshakes per second and server CPU µs per handshake. -pid
// may list several processes, whose CPU time is added up (HAProxy
// terminating TLS in front of a plaintext server).
//
// It prints one JSON line (or text without -json) and exits non-zero if a
// connection failed.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpoll/poll/bench/internal/client"
	"github.com/tcpoll/poll/bench/internal/proc"
	"github.com/tcpoll/poll/internal/load"
)

// Result is what churn reports.
type Result struct {
	Clients          int     `json:"clients"`
	TLS              bool    `json:"tls,omitempty"`
	Conns            int64   `json:"conns"`
	ConnsPerSec      float64 `json:"conns_per_sec"`
	P50              float64 `json:"p50_us"`
	P99              float64 `json:"p99_us"`
	Max              float64 `json:"max_us"`
	Errors           int64   `json:"errors"`
	FirstError       string  `json:"first_error,omitempty"`
	ServerCPU        float64 `json:"server_cpu_s"`
	ServerCPUPerConn float64 `json:"server_cpu_us_per_conn"`
	ClientCPU        float64 `json:"client_cpu_s"`
	Seconds          float64 `json:"duration_s"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "server `address`")
	pidList := flag.String("pid", "", "server `pid` (required): its CPU time is read from /proc; a comma list adds up several processes")
	clients := flag.Int("c", 32, "concurrent clients")
	window := flag.Duration("d", 3*time.Second, "measured `duration`")
	warmup := flag.Duration("warmup", time.Second, "warm-up before the measured window")
	sources := flag.Int("sources", 64, "source addresses 127.0.1.1 to 127.0.1.N")
	timeout := flag.Duration("timeout", 5*time.Second, "longest wait for a connect or an answer")
	asJSON := flag.Bool("json", false, "print one JSON line")
	tlsCA := flag.String("tls-ca", "", "connect inside TLS, trusting the CA certificates in this PEM `file`: a full handshake per connection")
	proxyFlag := flag.String("proxy", "", "send a PROXY protocol header first, `v1 or v2`, with the message (for tcpoll serve -proxy-protocol)")
	flag.Parse()
	proxy, err := load.ParseProxy(*proxyFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(2)
	}
	pids, err := proc.ParsePIDs(*pidList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "churn: -pid:", err)
		os.Exit(2)
	}
	var tlsCfg *tls.Config
	if *tlsCA != "" {
		if tlsCfg, err = client.TLSConfig(*tlsCA, *addr); err != nil {
			fmt.Fprintln(os.Stderr, "churn: -tls-ca:", err)
			os.Exit(2)
		}
	}
	if *clients <= 0 || *window <= 0 || *sources < 1 || *sources > 254 {
		flag.Usage()
		os.Exit(2)
	}
	res, err := run(*addr, pids, *clients, *sources, *warmup, *window, *timeout, proxy, tlsCfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Printf("%s\n", b)
	} else {
		fmt.Printf("%d clients: %d connections in %.1fs, %.0f/s, %d errors\n", res.Clients, res.Conns, res.Seconds, res.ConnsPerSec, res.Errors)
		fmt.Printf("connection life p50 %.0fµs p99 %.0fµs max %.0fµs\n", res.P50, res.P99, res.Max)
		fmt.Printf("server CPU %.2fs: %.1fµs per connection; client CPU %.2fs\n", res.ServerCPU, res.ServerCPUPerConn, res.ClientCPU)
	}
	if res.Errors > 0 {
		fmt.Fprintf(os.Stderr, "churn: %d connections failed, first: %s\n", res.Errors, res.FirstError)
		os.Exit(1)
	}
}

// phase is where the run is: each connection is counted in the phase in
// which it completed.
const (
	warming = iota
	measuring
	done
)

func run(addr string, pids []int, clients, sources int, warmup, window, timeout time.Duration, proxy load.Proxy, tlsCfg *tls.Config) (*Result, error) {
	res := &Result{Clients: clients, TLS: tlsCfg != nil}
	var phase atomic.Int32
	var errs atomic.Int64
	var firstErr sync.Once
	hists := make([]load.Histogram, clients)
	counts := make([]int64, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			d := net.Dialer{
				Timeout:   timeout,
				LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%sources))},
				Control:   bindNoPort,
			}
			buf := make([]byte, len(client.Answer))
			msg := make([]byte, 0, 64)
			for {
				p := phase.Load()
				if p == done {
					return
				}
				t0 := time.Now()
				if err := once(&d, addr, proxy, tlsCfg, msg, buf, timeout); err != nil {
					// Failures count whatever the phase: any of them
					// means the server is wrong.
					errs.Add(1)
					firstErr.Do(func() { res.FirstError = err.Error() })
					time.Sleep(10 * time.Millisecond) // a dead server must not make this spin
					continue
				}
				if p == measuring && phase.Load() == measuring {
					hists[i].Record(time.Since(t0))
					counts[i]++
				}
			}
		})
	}
	time.Sleep(warmup)
	c0, err := proc.CPUSum(pids)
	if err != nil {
		phase.Store(done)
		wg.Wait()
		return nil, err
	}
	self0 := selfCPU()
	start := time.Now()
	phase.Store(measuring)
	time.Sleep(window)
	phase.Store(done)
	res.Seconds = math.Round(time.Since(start).Seconds()*1e3) / 1e3
	c1, err := proc.CPUSum(pids)
	self1 := selfCPU()
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("server gone at the end of the window: %w", err)
	}
	var h load.Histogram
	for i := range clients {
		h.Merge(&hists[i])
		res.Conns += counts[i]
	}
	res.Errors = errs.Load()
	res.ConnsPerSec = math.Round(float64(res.Conns) / res.Seconds)
	res.P50, res.P99, res.Max = us(h.Quantile(0.5)), us(h.Quantile(0.99)), us(h.Max())
	res.ServerCPU = math.Round((c1-c0).Seconds()*1e3) / 1e3
	res.ClientCPU = math.Round((self1-self0).Seconds()*1e3) / 1e3
	if res.Conns > 0 {
		res.ServerCPUPerConn = math.Round(float64(c1-c0)/1e3/float64(res.Conns)*100) / 100
	}
	return res, nil
}

// once runs one connection's life: connect, one message (after a PROXY
// header, in the same write, if proxy says so), its answer, close. With
// tlsCfg, the message follows a full handshake, and close_notify goes
// before the close.
func once(d *net.Dialer, addr string, proxy load.Proxy, tlsCfg *tls.Config, msg, buf []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if proxy != load.ProxyNone {
		src, dst := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
		msg = load.AppendProxyHeader(msg[:0], proxy, src, dst)
	}
	var rw io.ReadWriter = c
	if tlsCfg != nil {
		if proxy != load.ProxyNone {
			if _, err := c.Write(msg); err != nil {
				return err
			}
			msg = msg[:0]
		}
		tc := tls.Client(c, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		defer tc.Close() // before c.Close: close_notify first
		rw = tc
	}
	if _, err := rw.Write(append(msg, "m\n"...)); err != nil {
		return err
	}
	return client.ReadAnswer(rw, buf)
}

// bindNoPort defers the choice of the source port to connect, where the
// kernel needs it unique per destination only.
func bindNoPort(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	return errors.Join(err, serr)
}

func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// us returns d in microseconds, to a tenth.
func us(d time.Duration) float64 { return math.Round(float64(d)/1e2) / 10 }
