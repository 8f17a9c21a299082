//go:build unix

package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// shard is the tally of some of a TLS run's connections, under mu: a
// histogram per connection would cost 30 KiB each.
type shard struct {
	mu sync.Mutex
	tally
}

// tlsConn is one connection of a TLS run. Its writer goroutine sends as
// many messages as its pipeline has free slots, in one write; its reader
// goroutine reads and checks the answers. They are apart because a write
// blocks until the server reads, and the server stops reading a client
// whose answers pile up unread (MaxPendingOutput).
type tlsConn struct {
	r    *run
	sh   *shard
	tcp  net.Conn
	tc   *tls.Conn
	wake chan struct{} // the reader freed slots in the pipeline

	// The pipeline: a ring of send times, times[head] the oldest.
	mu       sync.Mutex
	times    []int64
	head     int
	inflight int
	got      int  // answers received for the message at head
	writing  bool // the writer may still send
	failed   bool // closed after an error or a timeout

	// The reader's, until it publishes them to the shard.
	ansPos     int  // bytes of the answer being read seen so far
	ansBad     bool // the answer being read already differs from Answer
	all        uint64
	answered   uint64
	mismatches uint64
	latencies  []time.Duration
}

// runTLS is Run with Config.TLS: it connects and shakes hands with every
// connection, then runs the window as Run does on a goroutine pair per
// connection.
func (r *run) runTLS(ctx context.Context, res Result) (Result, error) {
	cfg := r.cfg
	res.TLS = true
	r.shards = make([]*shard, cfg.Loops)
	for i := range r.shards {
		r.shards[i] = new(shard)
	}
	stop := context.AfterFunc(ctx, r.stop)
	defer stop()

	conns := make([]*tlsConn, cfg.Conns)
	times := make([]int64, cfg.Conns*cfg.Depth)
	for i := range conns {
		conns[i] = &tlsConn{
			r:       r,
			sh:      r.shards[i%len(r.shards)],
			wake:    make(chan struct{}, 1),
			times:   times[i*cfg.Depth : (i+1)*cfg.Depth : (i+1)*cfg.Depth],
			writing: true,
		}
	}
	r.connectTLS(ctx, conns)

	var wg sync.WaitGroup
	c0, c1, open := r.window(func() {
		for _, c := range conns {
			if c.tc != nil {
				wg.Go(c.run)
			}
		}
	}, wg.Wait)

	var h Histogram
	for _, s := range r.shards {
		res.add(&s.tally, &h)
	}
	return r.result(ctx, res, &h, c0, c1, open)
}

// connectTLS connects every connection, at most maxConnecting at a time,
// and returns when each has finished its handshake or failed. A failed one
// is left with no tc.
func (r *run) connectTLS(ctx context.Context, conns []*tlsConn) {
	dst := net.TCPAddrFromAddrPort(r.dst)
	if r.zone != 0 {
		// The resolver reads a numeric zone as the interface's index.
		dst.Zone = strconv.FormatUint(uint64(r.zone), 10)
	}
	sem := make(chan struct{}, maxConnecting)
	var wg sync.WaitGroup
	for i, c := range conns {
		if r.isStopped() {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.connect(ctx, i, dst); err != nil {
				c.sh.mu.Lock()
				c.sh.noteErr(err)
				c.sh.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// connect dials connection i (from the i-th source address, if any),
// writes the PROXY header if the run sends one, and shakes hands, all
// within Timeout.
func (c *tlsConn) connect(ctx context.Context, i int, dst *net.TCPAddr) error {
	r := c.r
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	if src := r.cfg.Sources; len(src) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: src[i%len(src)].AsSlice()}
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { bindNoPort(int(fd)) })
		}
	}
	tcp, err := d.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return err
	}
	if r.cfg.Proxy != ProxyNone {
		src := tcp.LocalAddr().(*net.TCPAddr).AddrPort()
		tcp.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
		if _, err := tcp.Write(AppendProxyHeader(nil, r.cfg.Proxy, src, r.dst)); err != nil {
			tcp.Close()
			return fmt.Errorf("writing the PROXY header: %w", err)
		}
		tcp.SetWriteDeadline(time.Time{})
	}
	tc := tls.Client(tcp, r.cfg.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		tcp.Close()
		return fmt.Errorf("TLS handshake with %v: %w", r.dst, err)
	}
	c.tcp, c.tc = tcp, tc
	return nil
}

// run drives the connection from the warm-up to the end of its drain,
// then closes it: with close_notify, unless it failed.
func (c *tlsConn) run() {
	var wg sync.WaitGroup
	wg.Go(c.write)
	c.read()
	wg.Wait()
	if !c.failed {
		c.tc.Close()
	}
}

// write sends messages while the run sends: whenever the pipeline has
// free slots and the rate allows, as many as both allow, in one write.
func (c *tlsConn) write() {
	r := c.r
	size, depth := r.cfg.Size, r.cfg.Depth
	var sent uint64
	defer func() {
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
		c.sh.mu.Lock()
		c.sh.sent += sent
		c.sh.mu.Unlock()
	}()
	// The rate limit: this connection's share of Config.Rate, as a token
	// bucket of 10ms worth (at least one message).
	var rate, tokens, burst float64
	last := r.now()
	if r.cfg.Rate > 0 {
		rate = r.cfg.Rate / float64(r.cfg.Conns)
		burst = max(1, rate/100)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := r.now()
		if r.isStopped() || now >= r.end {
			return
		}
		c.mu.Lock()
		if c.failed {
			c.mu.Unlock()
			return
		}
		free := depth - c.inflight
		k := free
		if rate > 0 {
			tokens = min(burst, tokens+float64(now-last)*rate/1e9)
			last = now
			k = min(k, int(tokens))
			tokens -= float64(k)
		}
		for range k {
			pos := c.head + c.inflight
			if pos >= depth {
				pos -= depth
			}
			c.times[pos] = now
			c.inflight++
		}
		c.mu.Unlock()
		if k > 0 {
			if now >= r.warmupEnd {
				sent += uint64(k)
			}
			if _, err := c.tc.Write(r.msgs[:k*size]); err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				return
			}
			continue
		}
		// Wait for answers, or for the next token if only the rate holds
		// the pipeline back.
		var token <-chan time.Time
		if free > 0 && rate > 0 {
			timer.Reset(time.Duration((1 - tokens) * 1e9 / rate))
			token = timer.C
		}
		select {
		case <-c.wake:
		case <-token:
		case <-r.stopping:
		}
	}
}

// read reads and checks the answers until the writer has stopped and every
// message is answered, the oldest one has waited Timeout, or the
// connection fails.
func (c *tlsConn) read() {
	r := c.r
	br := bufio.NewReaderSize(c.tc, 16<<10)
	// Read in slices of time, to look at the timeouts and the end of the
	// run between them: crypto/tls keeps no error of a read that timed out.
	slice := min(maxWaitTimeout, max(r.cfg.Timeout/4, time.Millisecond))
	for {
		if br.Buffered() == 0 {
			c.publish()
			if c.done() {
				return
			}
			c.tcp.SetReadDeadline(time.Now().Add(slice))
		}
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			// Answers are cut at LF, so a wrong or short one costs one
			// mismatch and the check goes on with the next one.
			n := len(Answer)
			if c.ansPos+len(line) > n || string(line) != Answer[c.ansPos:c.ansPos+len(line)] {
				c.ansBad = true
			}
			c.ansPos = min(c.ansPos+len(line), n)
			if err == nil {
				ok := !c.ansBad && c.ansPos == n
				c.ansPos, c.ansBad = 0, false
				c.answer(ok, r.now())
			}
		}
		switch {
		case err == nil, err == bufio.ErrBufferFull, errors.Is(err, os.ErrDeadlineExceeded):
		case err == io.EOF, err == io.ErrUnexpectedEOF:
			if c.ansPos > 0 {
				c.mismatches++ // an answer cut short
			}
			c.publish()
			c.fail(errors.New("server closed the connection"))
			return
		default:
			c.publish()
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
	}
}

// answer accounts for one answer, right or wrong, to the oldest message in
// flight.
func (c *tlsConn) answer(ok bool, now int64) {
	if !ok {
		c.mismatches++
	}
	r := c.r
	c.mu.Lock()
	if c.inflight == 0 {
		c.mu.Unlock()
		if ok {
			c.mismatches++ // an answer to no message
		}
		return
	}
	if c.got++; c.got < r.perMsg {
		c.mu.Unlock()
		return
	}
	c.got = 0
	t := c.times[c.head]
	if c.head++; c.head == len(c.times) {
		c.head = 0
	}
	c.inflight--
	c.mu.Unlock()
	c.all++
	if t >= r.warmupEnd && t < r.end {
		c.answered++
		c.latencies = append(c.latencies, time.Duration(now-t))
	}
}

// publish adds the reader's counts to the shard and wakes the writer,
// whose pipeline they may have freed.
func (c *tlsConn) publish() {
	if c.all == 0 && c.mismatches == 0 {
		return
	}
	c.sh.mu.Lock()
	for _, d := range c.latencies {
		c.sh.hist.Record(d)
	}
	c.sh.all += c.all
	c.sh.answered += c.answered
	c.sh.mismatches += c.mismatches
	c.sh.mu.Unlock()
	c.all, c.answered, c.mismatches = 0, 0, 0
	c.latencies = c.latencies[:0]
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// done reports whether the reader is done: the connection failed, or the
// writer has stopped with every message answered, or the oldest message
// has waited more than Timeout, which fails the connection and counts its
// messages in flight as timeouts.
func (c *tlsConn) done() bool {
	r := c.r
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.failed:
		return true
	case c.inflight == 0:
		return !c.writing
	case r.now()-c.times[c.head] <= int64(r.cfg.Timeout):
		return false
	}
	c.sh.mu.Lock()
	c.sh.timeouts += uint64(c.inflight)
	if c.sh.firstErr == nil {
		c.sh.firstErr = fmt.Errorf("no answer within %v", r.cfg.Timeout)
	}
	c.sh.mu.Unlock()
	c.closeLocked()
	return true
}

// fail closes the connection after an error, unless it is closed already.
// Its messages in flight are forgotten, as the event loops forget them.
func (c *tlsConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return
	}
	c.sh.mu.Lock()
	c.sh.noteErr(err)
	c.sh.mu.Unlock()
	c.closeLocked()
}

// closeLocked closes the socket, without close_notify, which would wait
// for a writer that may be blocked: the other goroutine's read or write
// fails at once.
func (c *tlsConn) closeLocked() {
	c.failed = true
	c.inflight = 0
	c.tcp.Close()
}
