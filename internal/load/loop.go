//go:build unix

package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpoll/poll"
	"golang.org/x/sys/unix"
)

// Run connects, runs the warm-up and the measured window, drains the
// answers still owed, closes every connection and returns what it
// measured. Failures of the server (mismatches, errors, timeouts) are
// counted in the Result, not returned as an error; see Result.Err.
//
// If ctx ends, the window closes early and Run drains and returns the
// shortened result; if it ends before the window opened, Run returns
// ctx.Err() with the counts it has.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	dst, zone, err := resolve(cfg.Addr)
	if err != nil {
		return Result{}, err
	}
	for _, s := range cfg.Sources {
		if s.Unmap().Is4() != dst.Addr().Is4() {
			return Result{}, fmt.Errorf("load: source %v and server %v are of different families", s, dst.Addr())
		}
	}
	if cfg.ServerPID != 0 {
		if _, err := procCPU(cfg.ServerPID); err != nil {
			return Result{}, err
		}
	}
	res := Result{Conns: cfg.Conns, Depth: cfg.Depth, Size: cfg.Size, Loops: cfg.Loops, Rate: cfg.Rate, Proxy: cfg.Proxy}
	if cfg.Conns == 0 {
		return res, nil
	}

	r := &run{
		cfg:      cfg,
		dst:      dst,
		zone:     zone,
		base:     time.Now(),
		msgs:     messages(cfg.Size, cfg.Depth),
		perMsg:   answersPerMessage(cfg.Size, cfg.MaxMessage),
		stopping: make(chan struct{}),
	}
	if cfg.TLS != nil {
		return r.runTLS(ctx, res)
	}
	r.loops = make([]*loop, cfg.Loops)
	for i := range r.loops {
		l, err := newLoop(r, i)
		if err != nil {
			for _, l := range r.loops[:i] {
				l.close()
			}
			return res, err
		}
		r.loops[i] = l
	}
	defer func() {
		for _, l := range r.loops {
			l.close()
		}
	}()

	// A canceled context or the end of the window wakes every loop.
	stop := context.AfterFunc(ctx, r.stop)
	defer stop()

	r.each((*loop).connectAll)

	var wg sync.WaitGroup
	c0, c1, open := r.window(func() {
		for _, l := range r.loops {
			wg.Go(l.runLoop)
		}
	}, wg.Wait)

	var h Histogram
	var fatal []error
	for _, l := range r.loops {
		if l.fatal != nil {
			fatal = append(fatal, l.fatal)
		}
		res.add(&l.tally, &h)
	}
	if len(fatal) > 0 {
		return res, fmt.Errorf("load: %w", errors.Join(fatal...))
	}
	return r.result(ctx, res, &h, c0, c1, open)
}

// window starts the traffic (start) with the warm-up, samples the CPU
// clocks at the edges of the measured window, then stops the run and waits
// (wait) for the drain. open is false if the run was stopped before the
// window opened.
func (r *run) window(start, wait func()) (c0, c1 cpuSample, open bool) {
	r.warmupEnd = r.now() + int64(r.cfg.Warmup)
	r.end = r.warmupEnd + int64(r.cfg.Duration)
	start()
	var progressDone chan struct{}
	if r.cfg.Progress != nil {
		progressDone = make(chan struct{})
		go func() {
			defer close(progressDone)
			r.progress(r.cfg.Progress)
		}()
	}
	if r.sleepUntil(r.warmupEnd) {
		c0 = r.sampleCPU()
		open = true
		r.sleepUntil(r.end)
		c1 = r.sampleCPU()
	}
	r.stop()
	wait()
	if progressDone != nil {
		<-progressDone
	}
	return c0, c1, open
}

// result completes res, which holds the counts, with the figures of the
// window: ctx's error instead if the window never opened.
func (r *run) result(ctx context.Context, res Result, h *Histogram, c0, c1 cpuSample, open bool) (Result, error) {
	if !open {
		return res, ctx.Err()
	}
	res.Duration = time.Duration(min(r.stopAt, r.end) - r.warmupEnd)
	if res.Duration > 0 {
		res.MsgsPerSec = float64(res.Answered) / res.Duration.Seconds()
	}
	res.P50, res.P99, res.P999, res.Max = h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999), h.Max()
	res.ClientCPU = c1.self - c0.self
	if c0.serverOK && c1.serverOK {
		res.ServerCPU, res.HasServerCPU = c1.server-c0.server, true
	}
	return res, nil
}

// sleepUntil sleeps until the run's clock reads t or the run is stopped,
// and reports whether t was reached.
func (r *run) sleepUntil(t int64) bool {
	d := time.Duration(t - r.now())
	if d <= 0 {
		return !r.isStopped()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.stopping:
		return false
	}
}

// run is the state shared by the loops of one Run. Every field but stopped
// and stopping is set before the loops that read it start.
type run struct {
	cfg    Config
	dst    netip.AddrPort
	zone   uint32
	base   time.Time // the run's clock counts nanoseconds from here
	msgs   []byte    // Depth messages back to back
	perMsg int       // answers per message
	loops  []*loop
	shards []*shard // with Config.TLS, instead of loops

	// warmupEnd and end bound the measured window on the run's clock.
	warmupEnd, end int64

	stopOnce sync.Once
	stopped  atomic.Bool
	stopAt   int64         // when stop was called, run clock
	stopping chan struct{} // closed by stop
}

// now reads the run's monotonic clock: nanoseconds since base.
func (r *run) now() int64 { return int64(time.Since(r.base)) }

// stop ends the window early or on time: no loop sends after it.
func (r *run) stop() {
	r.stopOnce.Do(func() {
		r.stopAt = r.now()
		r.stopped.Store(true)
		close(r.stopping)
		for _, l := range r.loops {
			l.p.Wake() // ErrClosed if the loop is gone: nothing to wake
		}
	})
}

func (r *run) isStopped() bool { return r.stopped.Load() }

// each runs f on every loop at once and waits for them all.
func (r *run) each(f func(*loop)) {
	var wg sync.WaitGroup
	for _, l := range r.loops {
		wg.Go(func() { f(l) })
	}
	wg.Wait()
}

// Connection states.
const (
	stateIdle       = iota // not connected yet
	stateConnecting        // connect in progress, registered Writable
	stateOpen              // connected, registered Readable (and Writable while output waits)
	stateClosed            // failed or finished; fd closed
)

// conn is one connection. Its messages in flight form a ring of send times:
// times[head] is the oldest, answered first.
type conn struct {
	fd       int
	state    uint8
	wantOut  bool  // registered for Writable: pending output waits
	queued   bool  // in the loop's queue for rate tokens
	ansBad   bool  // the answer being read already differs from Answer
	ansPos   int   // bytes of the answer being read seen so far
	got      int   // answers received for the message at head
	head     int   // index of the oldest message in flight in times
	inflight int   // messages sent and not yet answered
	pending  int   // bytes of the messages in flight not yet written
	started  int64 // connect start, run clock
	times    []int64
}

// loop is one event loop: a goroutine, a poller, and the connections whose
// index modulo the number of loops is its id.
type loop struct {
	r      *run
	id     int
	p      *poll.Poller
	conns  []conn
	events []poll.Event
	buf    []byte // read buffer shared by the loop's connections
	sa     unix.Sockaddr
	hdr    []byte // the PROXY header being written, if Config.Proxy

	tally       // the loop's counts
	fatal error // the poller failed: the run is void

	inflight   int  // messages in flight over all connections
	sending    bool // the window is open or the warm-up runs
	drainStart int64
	nextScan   int64 // when to look for timeouts next
	scanEvery  int64

	// The rate limit: a token bucket of burst messages filled at rate
	// messages per second, and the connections waiting for tokens.
	rate, tokens, burst float64
	lastRefill          int64
	waitq, spare        []int32

	// A copy of the counts for the progress display, under snapMu.
	nextPublish int64
	snapMu      sync.Mutex
	snapHist    Histogram
	snapAll     uint64
	snapBad     uint64
	snapErrs    uint64
	snapTos     uint64
}

const (
	readBufSize    = 64 << 10
	eventsPerWait  = 512
	publishEvery   = int64(250 * time.Millisecond)
	maxWaitTimeout = 100 * time.Millisecond
)

func newLoop(r *run, id int) (*loop, error) {
	p, err := poll.New()
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	cfg := r.cfg
	n := (cfg.Conns - id + cfg.Loops - 1) / cfg.Loops
	l := &loop{
		r:      r,
		id:     id,
		p:      p,
		conns:  make([]conn, n),
		events: make([]poll.Event, eventsPerWait),
		buf:    make([]byte, readBufSize),
		sa:     sockaddr(r.dst.Addr(), r.dst.Port(), r.zone),
	}
	if cfg.Proxy != ProxyNone {
		l.hdr = make([]byte, 0, MaxProxyHeader)
	}
	times := make([]int64, n*cfg.Depth)
	for i := range l.conns {
		l.conns[i] = conn{fd: -1, times: times[i*cfg.Depth : (i+1)*cfg.Depth : (i+1)*cfg.Depth]}
	}
	if cfg.Rate > 0 {
		l.rate = cfg.Rate * float64(n) / float64(cfg.Conns)
		l.burst = max(1, l.rate/100) // 10ms worth
	}
	l.scanEvery = int64(min(maxWaitTimeout, max(cfg.Timeout/4, time.Millisecond)))
	return l, nil
}

// close releases the poller and any connection still open.
func (l *loop) close() {
	for i := range l.conns {
		l.drop(i)
	}
	l.p.Close()
}

func sockaddr(a netip.Addr, port uint16, zone uint32) unix.Sockaddr {
	a = a.Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(port), ZoneId: zone, Addr: a.As16()}
}

// drop deregisters and closes connection i. Its messages in flight are
// forgotten: the caller has counted them as it sees fit.
func (l *loop) drop(i int) {
	c := &l.conns[i]
	if c.fd >= 0 {
		l.p.Delete(c.fd)
		unix.Close(c.fd)
		c.fd = -1
	}
	c.state = stateClosed
	l.inflight -= c.inflight
	c.inflight, c.pending = 0, 0
}

// fail closes connection i after an error.
func (l *loop) fail(i int, err error) {
	if l.conns[i].state == stateClosed {
		return
	}
	l.noteErr(err)
	l.drop(i)
}

// connectAll connects the loop's connections, at most a few at a time,
// and returns when each is open or has failed.
func (l *loop) connectAll() {
	r := l.r
	limit := max(maxConnecting/len(r.loops), 4)
	next, busy := 0, 0
	timeout := int64(r.cfg.Timeout)
	for next < len(l.conns) || busy > 0 {
		for busy < limit && next < len(l.conns) && !r.isStopped() {
			if l.startConnect(next) {
				busy++
			}
			next++
		}
		if r.isStopped() {
			next = len(l.conns) // leave the rest idle
			if busy == 0 {
				return
			}
		}
		n, err := l.p.Wait(l.events, maxWaitTimeout)
		if err != nil {
			l.fatal = err
			return
		}
		for _, ev := range l.events[:n] {
			i := int(ev.Token)
			if l.conns[i].state == stateConnecting {
				l.finishConnect(i)
				busy--
			}
		}
		now := r.now()
		if now < l.nextScan && !r.isStopped() {
			continue
		}
		l.nextScan = now + l.scanEvery
		for i := range l.conns[:next] {
			c := &l.conns[i]
			if c.state != stateConnecting {
				continue
			}
			if r.isStopped() {
				l.drop(i)
				busy--
			} else if now-c.started > timeout {
				l.fail(i, fmt.Errorf("connect %v: timed out after %v", r.dst, r.cfg.Timeout))
				busy--
			}
		}
	}
}

// startConnect opens a socket for connection i and starts connecting it.
// It reports whether the connect is in progress; otherwise it succeeded or
// failed at once.
func (l *loop) startConnect(i int) bool {
	r := l.r
	c := &l.conns[i]
	c.started = r.now()
	fd, err := newSocket(r.dst.Addr().Is4())
	if err != nil {
		c.state = stateClosed
		l.noteErr(err)
		return false
	}
	c.fd = fd
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		l.fail(i, os.NewSyscallError("setsockopt", err))
		return false
	}
	if src := r.cfg.Sources; len(src) > 0 {
		a := src[(l.id+i*len(r.loops))%len(src)]
		bindNoPort(fd)
		if err := unix.Bind(fd, sockaddr(a, 0, r.zone)); err != nil {
			l.fail(i, fmt.Errorf("bind %v: %w", a, err))
			return false
		}
	}
	switch err := unix.Connect(fd, l.sa); err {
	case nil:
		c.state = stateOpen
		if err := l.p.Add(fd, uint64(i), poll.Readable); err != nil {
			l.fail(i, err)
			return false
		}
		l.sendProxy(i)
		return false
	case unix.EINPROGRESS, unix.EINTR:
		// EINTR: the connect goes on in the background, as with EINPROGRESS.
		c.state = stateConnecting
		if err := l.p.Add(fd, uint64(i), poll.Writable); err != nil {
			l.fail(i, err)
			return false
		}
		return true
	default:
		l.fail(i, fmt.Errorf("connect %v: %w", r.dst, err))
		return false
	}
}

// finishConnect completes connection i once its socket is writable.
func (l *loop) finishConnect(i int) {
	c := &l.conns[i]
	soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		l.fail(i, os.NewSyscallError("getsockopt", err))
	case soerr != 0:
		l.fail(i, fmt.Errorf("connect %v: %w", l.r.dst, unix.Errno(soerr)))
	default:
		c.state = stateOpen
		if err := l.p.Modify(c.fd, uint64(i), poll.Readable); err != nil {
			l.fail(i, err)
			return
		}
		l.sendProxy(i)
	}
}

// sendProxy writes the PROXY header, if the run sends one, on connection
// i, which has just opened: its send buffer is empty, so the header's few
// dozen bytes go out in one write.
func (l *loop) sendProxy(i int) {
	v := l.r.cfg.Proxy
	if v == ProxyNone {
		return
	}
	c := &l.conns[i]
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		l.fail(i, os.NewSyscallError("getsockname", err))
		return
	}
	var src netip.AddrPort
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		src = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		src = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	default:
		l.fail(i, fmt.Errorf("PROXY header: local address %T is not TCP", sa))
		return
	}
	l.hdr = AppendProxyHeader(l.hdr[:0], v, src, l.r.dst)
	n, err := unix.Write(c.fd, l.hdr)
	for err == unix.EINTR {
		n, err = unix.Write(c.fd, l.hdr)
	}
	if err == nil && n < len(l.hdr) {
		err = io.ErrShortWrite
	}
	if err != nil {
		l.fail(i, fmt.Errorf("writing the PROXY header: %w", err))
	}
}

// runLoop drives the traffic from the start of the warm-up to the end of
// the drain, then closes every connection.
func (l *loop) runLoop() {
	r := l.r
	if l.fatal != nil {
		return
	}
	now := r.now()
	l.lastRefill = now
	l.nextScan = now + l.scanEvery
	l.sending = !r.isStopped() && now < r.end
	for i := range l.conns {
		if l.conns[i].state == stateOpen {
			l.fill(i, now)
		}
	}
	for {
		now = r.now()
		l.sending = l.sending && !r.isStopped() && now < r.end
		timeout := maxWaitTimeout
		if !l.sending {
			if l.drainStart == 0 {
				l.drainStart = now
			}
			left := l.drainStart + int64(r.cfg.Timeout) - now
			if l.inflight == 0 || left <= 0 {
				break
			}
			timeout = min(timeout, time.Duration(left))
		} else {
			timeout = min(timeout, time.Duration(r.end-now))
			if len(l.waitq) > 0 && l.tokens < 1 {
				timeout = min(timeout, time.Duration((1-l.tokens)*1e9/l.rate))
			}
		}
		timeout = min(timeout, time.Duration(max(l.nextScan-now, 0)))
		n, err := l.p.Wait(l.events, timeout)
		if err != nil {
			l.fatal = err
			break
		}
		for _, ev := range l.events[:n] {
			i := int(ev.Token)
			c := &l.conns[i]
			if c.state != stateOpen {
				continue // closed earlier in this batch
			}
			if ev.Writable() && c.wantOut {
				l.flush(i)
			}
			if ev.Readable() && c.state == stateOpen {
				l.read(i)
			}
		}
		now = r.now()
		if l.rate > 0 && l.sending {
			l.refill(now)
			l.serveQueue(now)
		}
		if now >= l.nextScan {
			l.scanTimeouts(now)
			l.nextScan = now + l.scanEvery
		}
		if r.cfg.Progress != nil && now >= l.nextPublish {
			l.publish()
			l.nextPublish = now + publishEvery
		}
	}
	// What is still in flight has waited Timeout since the window closed.
	l.timeouts += uint64(l.inflight)
	for i := range l.conns {
		l.drop(i)
	}
	if r.cfg.Progress != nil {
		l.publish()
	}
}

// fill sends connection i as many messages as it has free slots in its
// pipeline (and the rate allows), in one write.
func (l *loop) fill(i int, now int64) {
	c := &l.conns[i]
	k := len(c.times) - c.inflight
	if !l.sending || now >= l.r.end || k <= 0 {
		return
	}
	if l.rate > 0 {
		g := min(k, int(l.tokens))
		l.tokens -= float64(g)
		if g < k && !c.queued {
			c.queued = true
			l.waitq = append(l.waitq, int32(i))
		}
		if k = g; k == 0 {
			return
		}
	}
	depth := len(c.times)
	for range k {
		pos := c.head + c.inflight
		if pos >= depth {
			pos -= depth
		}
		c.times[pos] = now
		c.inflight++
	}
	l.inflight += k
	if now >= l.r.warmupEnd {
		l.sent += uint64(k)
	}
	c.pending += k * l.r.cfg.Size
	if !c.wantOut {
		l.flush(i)
	}
}

// flush writes what connection i owes, registering for Writable if the
// socket takes only part of it. The bytes owed are the tail of the
// messages in flight, which are all alike, so they are a slice of r.msgs.
func (l *loop) flush(i int) {
	c := &l.conns[i]
	size := l.r.cfg.Size
	off := (size - c.pending%size) % size
	n, err := unix.Write(c.fd, l.r.msgs[off:off+c.pending])
	switch err {
	case nil:
		c.pending -= n
	case unix.EAGAIN, unix.EINTR:
	default:
		l.fail(i, fmt.Errorf("write: %w", err))
		return
	}
	var want poll.Interest = poll.Readable
	if c.pending > 0 {
		want |= poll.Writable
	}
	if (c.pending > 0) != c.wantOut {
		c.wantOut = c.pending > 0
		if err := l.p.Modify(c.fd, uint64(i), want); err != nil {
			l.fail(i, err)
		}
	}
}

// read reads connection i's answers, checks them, and refills its pipeline
// with one write.
func (l *loop) read(i int) {
	c := &l.conns[i]
	var now int64
	got := false
	for {
		n, err := unix.Read(c.fd, l.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			l.fail(i, fmt.Errorf("read: %w", err))
			return
		}
		if n == 0 {
			if c.ansPos > 0 {
				l.mismatches++ // an answer cut short
			}
			l.fail(i, errors.New("server closed the connection"))
			return
		}
		now = l.r.now()
		got = true
		l.check(c, l.buf[:n], now)
		if n < len(l.buf) {
			break
		}
	}
	if got {
		l.fill(i, now)
	}
}

// check checks the bytes b read from c against the answers it is owed.
// Answers are cut at LF, so a wrong or short answer costs one mismatch and
// the check goes on with the next one.
func (l *loop) check(c *conn, b []byte, now int64) {
	const n = len(Answer)
	for len(b) > 0 {
		if c.ansPos == 0 && len(b) >= n && string(b[:n]) == Answer {
			l.answer(c, true, now)
			b = b[n:]
			continue
		}
		x := b[0]
		b = b[1:]
		if x == '\n' {
			ok := !c.ansBad && c.ansPos == n-1
			c.ansPos, c.ansBad = 0, false
			l.answer(c, ok, now)
			continue
		}
		if c.ansPos >= n-1 || x != Answer[c.ansPos] {
			c.ansBad = true
		}
		if c.ansPos < n {
			c.ansPos++
		}
	}
}

// answer accounts for one answer, right or wrong, to the oldest message in
// flight on c.
func (l *loop) answer(c *conn, ok bool, now int64) {
	if !ok {
		l.mismatches++
	}
	if c.inflight == 0 {
		if ok {
			l.mismatches++ // an answer to no message
		}
		return
	}
	if c.got++; c.got < l.r.perMsg {
		return
	}
	c.got = 0
	t := c.times[c.head]
	if c.head++; c.head == len(c.times) {
		c.head = 0
	}
	c.inflight--
	l.inflight--
	l.all++
	if t >= l.r.warmupEnd && t < l.r.end {
		l.answered++
		l.hist.Record(time.Duration(now - t))
	}
}

// scanTimeouts fails the connections whose oldest message has waited more
// than Timeout, counting all their messages in flight as timeouts.
func (l *loop) scanTimeouts(now int64) {
	limit := int64(l.r.cfg.Timeout)
	for i := range l.conns {
		c := &l.conns[i]
		if c.state == stateOpen && c.inflight > 0 && now-c.times[c.head] > limit {
			l.timeouts += uint64(c.inflight)
			if l.firstErr == nil {
				l.firstErr = fmt.Errorf("no answer within %v", l.r.cfg.Timeout)
			}
			l.drop(i)
		}
	}
}

// refill adds the tokens earned since the last refill.
func (l *loop) refill(now int64) {
	l.tokens = min(l.burst, l.tokens+float64(now-l.lastRefill)*l.rate/1e9)
	l.lastRefill = now
}

// serveQueue gives the tokens to the connections waiting for them, in the
// order they started waiting.
func (l *loop) serveQueue(now int64) {
	q := l.waitq
	l.waitq = l.spare[:0]
	for j, i := range q {
		if l.tokens < 1 {
			l.waitq = append(l.waitq, q[j:]...)
			break
		}
		l.conns[i].queued = false
		if l.conns[i].state == stateOpen {
			l.fill(int(i), now)
		}
	}
	l.spare = q[:0]
}

// publish copies the loop's counters for the progress display.
func (l *loop) publish() {
	l.snapMu.Lock()
	l.snapHist = l.hist
	l.snapAll, l.snapBad, l.snapErrs, l.snapTos = l.all, l.mismatches, l.errors, l.timeouts
	l.snapMu.Unlock()
}

// snapshot merges into h the latest latencies of every loop, or TLS
// shard, and returns their other counts.
func (r *run) snapshot(h *Histogram) (all, bad, errs, tos uint64) {
	for _, l := range r.loops {
		l.snapMu.Lock()
		h.Merge(&l.snapHist)
		all += l.snapAll
		bad += l.snapBad
		errs += l.snapErrs
		tos += l.snapTos
		l.snapMu.Unlock()
	}
	for _, s := range r.shards {
		s.mu.Lock()
		h.Merge(&s.hist)
		all += s.all
		bad += s.mismatches
		errs += s.errors
		tos += s.timeouts
		s.mu.Unlock()
	}
	return all, bad, errs, tos
}

// progress writes a progress line to w once a second until the window
// closes, then clears it.
func (r *run) progress(w io.Writer) {
	const width = 78
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var h Histogram
	var last uint64
	lastAt := r.now()
	for {
		select {
		case <-r.stopping:
			fmt.Fprintf(w, "\r%*s\r", width, "")
			return
		case <-t.C:
		}
		h.Reset()
		all, bad, errs, tos := r.snapshot(&h)
		now := r.now()
		rate := float64(all-last) / time.Duration(now-lastAt).Seconds()
		last, lastAt = all, now
		phase := "warm-up"
		if now >= r.warmupEnd {
			phase = fmt.Sprintf("%v/%v", time.Duration(now-r.warmupEnd).Round(time.Second), r.cfg.Duration)
		}
		p99 := "-"
		if h.Count() > 0 {
			p99 = roundDur(h.Quantile(0.99)).String()
		}
		line := fmt.Sprintf("%s  %.0f msgs/s  p99 %s  mismatches %d  errors %d  timeouts %d",
			phase, rate, p99, bad, errs, tos)
		fmt.Fprintf(w, "\r%-*s", width, line)
	}
}
