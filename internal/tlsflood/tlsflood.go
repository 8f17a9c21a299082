// Package tlsflood floods a TLS server with clients that never finish a
// handshake, while a healthy client measures its own full handshakes: how
// a server's handshake stage holds up against silent clients, clients
// that stall midway through their ClientHello, and clients that send
// garbage.
package tlsflood

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Config says who attacks and who measures.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// Silent clients connect and send nothing; Partial ones send the first
	// half of a ClientHello and stall; Garbage ones send bytes that are no
	// TLS record.
	Silent, Partial, Garbage int
	// Handshakes is how many full handshakes the healthy client makes, one
	// after the other, once every attacker is connected and has sent.
	Handshakes int
	// TLS is the healthy client's configuration. Its session cache is
	// ignored: every handshake is a full one.
	TLS *tls.Config
	// Wait bounds how long an attacker waits for the server to close it.
	Wait time.Duration
}

// Result is what was measured.
type Result struct {
	// Handshakes counts the healthy client's handshakes that succeeded,
	// Failed those that did not.
	Handshakes, Failed int
	// P50, P99 and Max are the healthy handshakes' latencies, from the
	// start of the dial to the end of the handshake.
	P50, P99, Max time.Duration
	// Attackers is how many connected; Closed how many the server closed
	// within Wait, and Slowest the longest it took for one of them.
	Attackers, Closed int
	Slowest           time.Duration
	// DialErrors counts attackers that could not connect.
	DialErrors int
}

func (r Result) String() string {
	return fmt.Sprintf("healthy handshakes %d (failed %d): p50 %v p99 %v max %v; attackers %d, closed %d, slowest closed after %v, dial errors %d",
		r.Handshakes, r.Failed, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond),
		r.Attackers, r.Closed, r.Slowest.Round(time.Millisecond), r.DialErrors)
}

// Run floods, measures, and returns once every attacker is closed or has
// waited cfg.Wait.
func Run(ctx context.Context, cfg Config) (Result, error) {
	hello, err := clientHello(cfg.TLS)
	if err != nil {
		return Result{}, err
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Second
	}
	var (
		mu  sync.Mutex
		res Result
		wg  sync.WaitGroup
	)
	sent := make(chan struct{}, cfg.Silent+cfg.Partial+cfg.Garbage)
	attack := func(payload []byte) {
		defer wg.Done()
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			mu.Lock()
			res.DialErrors++
			mu.Unlock()
			sent <- struct{}{}
			return
		}
		defer c.Close()
		start := time.Now()
		if len(payload) > 0 {
			c.Write(payload)
		}
		sent <- struct{}{}
		c.SetReadDeadline(start.Add(cfg.Wait))
		// Whatever the server says (an alert), the end is what counts.
		_, err = io.Copy(io.Discard, c)
		took := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		res.Attackers++
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return // not closed within Wait
		}
		res.Closed++
		res.Slowest = max(res.Slowest, took)
	}
	garbage := make([]byte, 64)
	rand.Read(garbage)
	garbage[0] = 'G' // never 22, a handshake record's type
	for range cfg.Silent {
		wg.Add(1)
		go attack(nil)
	}
	for range cfg.Partial {
		wg.Add(1)
		go attack(hello[:len(hello)/2])
	}
	for range cfg.Garbage {
		wg.Add(1)
		go attack(garbage)
	}
	for range cfg.Silent + cfg.Partial + cfg.Garbage {
		<-sent
	}

	var lat []time.Duration
	cc := cfg.TLS.Clone()
	cc.ClientSessionCache = nil
	for range cfg.Handshakes {
		start := time.Now()
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cc}
		c, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			res.Failed++
			continue
		}
		lat = append(lat, time.Since(start))
		c.Close()
	}
	wg.Wait()
	res.Handshakes = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
		res.Max = lat[len(lat)-1]
	}
	return res, ctx.Err()
}

// clientHello is the first flight of a client with cfg: the bytes
// crypto/tls writes before it waits for the server.
func clientHello(cfg *tls.Config) ([]byte, error) {
	c := &capture{}
	tc := tls.Client(c, cfg.Clone())
	tc.Handshake() // fails on capture's Read, once the hello is written
	if len(c.b) < 10 {
		return nil, errors.New("tlsflood: no ClientHello written")
	}
	return c.b, nil
}

// capture is a net.Conn that keeps what is written and has nothing to read.
type capture struct{ b []byte }

func (c *capture) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *capture) Write(b []byte) (int, error)      { c.b = append(c.b, b...); return len(b), nil }
func (c *capture) Close() error                     { return nil }
func (c *capture) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *capture) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *capture) SetDeadline(time.Time) error      { return nil }
func (c *capture) SetReadDeadline(time.Time) error  { return nil }
func (c *capture) SetWriteDeadline(time.Time) error { return nil }
