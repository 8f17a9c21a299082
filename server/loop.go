//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tcpoll/poll"
)

const (
	readBufSize = 64 << 10
	// lingerTime bounds how long a closed connection's late input is
	// drained, after the FIN, before the descriptor is closed.
	lingerTime = 2 * time.Second
	// listenerToken marks a listener's events, the listener's index in the
	// low bits. A connection's token is its slot's generation (below 1<<31)
	// and its descriptor number: gen<<32 | fd.
	listenerToken = 1 << 63
)

// Connection states. A live connection has stOpen and lives in exactly one
// of its loop's lists: headers (waiting for its PROXY header, in order of
// arrival), handshakes (its TLS handshake, in order of start), active
// (ordered by last input when IdleTimeout is set) or linger. A dropped one has state 0 until its descriptor closes
// at the end of the turn (see drop).
const (
	stOpen     = 1 << iota
	stPaused   // reading paused: unread answers reached MaxPendingOutput
	stNoRead   // never read again: "close", EOF, or end of shutdown drain
	stClosing  // close once the pending answers are written
	stEOF      // the client half-closed: close outright, nothing to drain
	stLinger   // FIN sent; discarding input until EOF or lingerTime
	stDraining // shutdown: answer what is readable, then close
	stBatched  // answers wait in the loop's send batch; c.output() is nil
	stProxy    // in the headers list: its PROXY header is not complete yet
	stHeld     // reading paused by the Handler (Conn.PauseReading)
	// stHandshake: in the handshakes list, its TLS handshake not done
	stHandshake
)

// loop is one event loop: a poller, its listeners, and the connections it
// accepted. Only the loop's goroutine touches its fields but stop and force.
//
// # Who owns a descriptor
//
// A loop owns each connection it accepts: the descriptor, and the slot the
// number indexes in the table that all loops share, from accept until
// close(2). The kernel gives a closed number to the very next accept in
// any loop, so close(2) is the moment the loop loses both, and nothing in
// the loop may touch them after it. To make that easy to keep, close(2)
// happens in one place, at one time: code that decides a connection must
// end calls drop, which takes the connection out of the lists and the send
// batch, frees what it holds, and queues the number; reap
// closes the queued numbers at the end of the turn, after the turn's batch
// is sent, when no frame on the loop's stack still holds one. Until then
// the number stays open, so no other loop can be handed it, and anything
// later in the turn that finds the slot without stOpen leaves it alone.
//
// A slot passes from one loop to the next through conn.gen alone: reap
// stores a new generation just before close(2), and open loads it just
// after accept. Any other access by the old owner after close(2) is
// unordered with the new owner's, so the race detector reports it.
type loop struct {
	e      *pollEngine
	p      *poll.Poller
	lfds   []int // listeners this loop accepts from, its own
	events []poll.Event
	buf    []byte // the loop's one read buffer
	out    []byte // scratch for answers before they are written

	headers, handshakes, active, linger list
	// freeHeaders and freeExts are PROXY header parsers and connExts to
	// reuse.
	freeHeaders []*ProxyHeader
	freeExts    []*connExt
	// dead holds the descriptors dropped in this turn, closed by reap.
	dead []int32
	// walk is scratch for startDrains' pass over the active list.
	walk []int32
	free []*outBuf
	// tasks holds other goroutines' work for this loop's handled
	// connections; ended, the handles whose OnClose is due at the end of
	// the turn, when no call into the Handler is on the stack.
	tasks  taskQueue
	ended  []*pollConn
	timers timerHeap

	// With Config.TLS: tlsq brings handshake goroutines' output and ends;
	// hsWait holds the connections whose ClientHello waits for a handshake
	// slot (pollEngine.hsBusy). plain, sealed and alert are scratch for
	// decryption, encryption and close_notify.
	tlsq          tlsQueue
	hsWait        []*tlsConn
	resumes       []uint64 // tokens of connections for runResumes, next turn
	spareResumes  []uint64
	plain, sealed []byte
	alert         []byte
	// owed is what the Handler's write being made charged beyond its
	// bytes (Conn.charge), set by its caller for write to settle.
	owed    int64
	hsTicks uint32

	// ring sends a turn's answers together (see sendRing); nil where
	// io_uring is unavailable or Config.DirectSend is set. Until the turn
	// ends, arena holds the answers and ents says whose they are.
	ring  *sendRing
	arena []byte
	ents  []batchEnt
	res   []int32
	// retired keeps the arena of a ring that failed with sends in flight,
	// so that memory the kernel may still read is never reused.
	retired []byte

	// inbox holds connections handed over by the accepting loop
	// (pollEngine.handoff); next is whom that loop gives the next one.
	inbox inbox
	next  int

	// released counts the bytes of output buffers, and of TLS handshakes'
	// garbage, left to the garbage collector since the loop last asked for
	// memory to be returned.
	released int

	acceptOff   bool   // listeners unwatched after EMFILE and the like
	acceptRetry uint32 // ticks at which to watch them again
	backoff     time.Duration

	// bytesIn and bytesOut gather a batch's traffic, so the shared Stats
	// see one atomic add per Wait rather than two per message.
	bytesIn, bytesOut, msgs int64

	// drain holds, from the start of a graceful shutdown, the bytes each
	// draining connection has left to read: what its socket held when the
	// shutdown began, or when its first input came after that (drainAwait
	// until then; see startDrain). Later input is not answered, so a client
	// that never stops sending cannot hold the shutdown open.
	drain map[int]int

	logConns bool
	// listening: the listeners are in the poller (perhaps unwatched for a
	// back-off: acceptOff). It ends with StopAccepting or the shutdown.
	listening bool
	// stopping: the graceful shutdown has begun. awaiting counts the
	// connections in drain marked drainAwait, which wait until drainAt.
	stopping bool
	// drainHeld: the loop is stopping, and waits for the other loops to
	// close their listeners before it ends its connections, until
	// heldUntil (beginStop).
	drainHeld bool
	heldUntil uint32
	awaiting  int
	drainAt   uint32
	// awaitHeaders: the connections in headers at the start of the
	// shutdown are closed at drainAt unless their header completes.
	awaitHeaders bool
	stop         atomic.Bool
	force        atomic.Bool
	idleTicks    uint32
	sharedAt     uint32 // tick of the last shareCPU
}

func newLoop(e *pollEngine, lfds []int) (*loop, error) {
	p, err := poll.New()
	if err != nil {
		return nil, err
	}
	for i, lfd := range lfds {
		if err := p.Add(lfd, listenerToken|uint64(i), poll.Readable); err != nil {
			p.Close()
			return nil, err
		}
	}
	l := &loop{
		e:          e,
		p:          p,
		lfds:       lfds,
		listening:  len(lfds) > 0,
		events:     make([]poll.Event, 256),
		buf:        make([]byte, readBufSize),
		out:        make([]byte, 0, readBufSize),
		headers:    newList(),
		handshakes: newList(),
		active:     newList(),
		linger:     newList(),
		logConns:   e.cfg.Logger.Enabled(context.Background(), slog.LevelDebug),
		idleTicks:  idleTicks(e.cfg.IdleTimeout),
	}
	if e.cfg.TLS != nil {
		l.hsTicks = uint32(ceilTicks(e.cfg.HandshakeTimeout))
	}
	return l, nil
}

// idleTicks is an IdleTimeout in ticks, 0 for none. Both the tick of a
// connection's last input and the tick that ends its wait are truncated
// to the millisecond, so the count is rounded up, plus one: a connection
// then waits at least d, never less, and a positive d never becomes 0.
// Config keeps d within MaxIdleTimeout, so the count stays below 2^31,
// where the differences of ticks are exact.
func idleTicks(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(ceilTicks(d))
}

// run is the loop: each turn waits for events, handles them, then ends
// with endTurn, which sends the turn's answers and closes what was dropped.
func (l *loop) run() {
	defer l.p.Close()
	defer l.closeRing()
	defer l.flushStats()
	defer l.closeInbox()
	if l.e.starting.Add(-1) == 0 {
		close(l.e.readyc)
	}
	for {
		if l.listening && l.e.handedOver.Load() {
			l.unlisten()
		}
		if l.stop.Load() {
			if l.force.Load() {
				l.closeEverything()
			} else if !l.stopping {
				l.beginStop()
			} else if l.drainHeld {
				l.endHold()
			}
		}
		sent := l.endTurn()
		if l.stopping && l.headers.head < 0 && l.handshakes.head < 0 && l.active.head < 0 && l.linger.head < 0 && l.seal() {
			return
		}
		if sent {
			yieldCPU()
		} else {
			l.shareCPU()
		}
		if l.released >= releaseAfter && l.e.releaseMemory() {
			l.released = 0
		}
		n, err := l.p.Wait(l.events, l.timeout())
		if err != nil {
			// Wait fails only on a closed poller or a broken epoll/kqueue
			// descriptor: nothing this loop can serve with any more.
			l.e.cfg.Logger.Error("event loop stopped", "err", err)
			l.closeEverything()
			l.endTurn()
			return
		}
		if l.e.handoff {
			l.takeInbox()
		}
		for _, ev := range l.events[:n] {
			if ev.Token&listenerToken != 0 {
				if l.listening {
					l.accept(int(ev.Token&^listenerToken), acceptBatch)
				}
				continue
			}
			fd := int(uint32(ev.Token))
			c := l.e.table.get(fd)
			if c.gen.Load() != uint32(ev.Token>>32) {
				continue // for a socket closed in an earlier turn (see drop)
			}
			if c.state&stOpen == 0 {
				continue // dropped earlier in this turn
			}
			if ev.Writable() && c.output() != nil {
				if !l.flush(c, fd) {
					continue
				}
			}
			if ev.Readable() {
				l.readable(c, fd)
			}
		}
		if l.e.cfg.Handler != nil {
			l.runTasks()
		}
		if l.e.cfg.TLS != nil {
			l.runTLS()
		}
		l.expire()
		l.endWaits()
		l.runResumes()
	}
}

// endTurn sends the turn's batch, then closes the descriptors dropped in
// the turn, the batch's own failures included. It reports whether there
// was anything to send.
func (l *loop) endTurn() bool {
	l.notifyClosed()
	sent := l.sendBatch()
	l.notifyClosed()
	l.reap()
	l.flushStats()
	return sent
}

// shareCPU offers the loop's CPU to other threads waiting for it, at most
// once per millisecond tick.
//
// A loop that always finds more work never sleeps, so the kernel takes its
// CPU only at a scheduler tick (4 ms at HZ=250). Meanwhile a thread woken on
// the same CPU waits: the other loop, whose connections then stall, or the
// clients. Measured on two CPUs shared with the load generator (`tcpoll
// load -c 50`, depth 1 and 16, medians of 3 to 8 runs): p99 latency fell
// from about 5 ms to 1.3–3 ms, at the same throughput and CPU per message,
// and the median rose from about 100 µs to 300 µs: shorter turns make more
// messages wait a little and fewer wait a whole tick. Against a client of
// goroutines on net.Conn, whose threads sleep often, neither moved. With no
// other thread waiting, the system call returns at once. (Those figures are
// the send(2) path's; a loop with a sendRing also yields after each batch:
// see sendBatch.)
func (l *loop) shareCPU() {
	if t := l.e.ticks(); t != l.sharedAt {
		l.sharedAt = t
		yieldCPU()
	}
}

func (l *loop) flushStats() {
	if l.bytesIn != 0 {
		l.e.st.BytesIn.Add(l.bytesIn)
		l.bytesIn = 0
	}
	if l.bytesOut != 0 {
		l.e.st.BytesOut.Add(l.bytesOut)
		l.bytesOut = 0
	}
	if l.msgs != 0 {
		l.e.st.Messages.Add(l.msgs)
		l.msgs = 0
	}
}

// timeout is how long Wait may block: until the first idle or linger
// deadline or accept retry, or for ever when there is none. Nothing wakes
// an idle loop.
func (l *loop) timeout() time.Duration {
	var next uint32
	have := false
	consider := func(at uint32) {
		if !have || int32(at-next) < 0 {
			next, have = at, true
		}
	}
	if l.idleTicks > 0 && l.active.head >= 0 {
		consider(l.e.table.get(int(l.active.head)).since + l.idleTicks)
	}
	if l.linger.head >= 0 {
		consider(l.e.table.get(int(l.linger.head)).since + uint32(lingerTime/time.Millisecond))
	}
	if l.headers.head >= 0 {
		consider(l.e.table.get(int(l.headers.head)).since + proxyTicks)
	}
	if l.handshakes.head >= 0 {
		consider(l.e.table.get(int(l.handshakes.head)).since + l.hsTicks)
	}
	if l.acceptOff {
		consider(l.acceptRetry)
	}
	if l.timers.len() > 0 {
		// A timer years away wakes the loop once in a while, harmlessly:
		// tick differences are exact only within 2^31.
		consider(uint32(min(l.timers.first().at, l.e.now()+1<<30)))
	}
	if l.awaiting > 0 || l.awaitHeaders {
		consider(l.drainAt)
	}
	if l.drainHeld {
		consider(l.heldUntil)
	}
	if l.released >= releaseAfter {
		consider(l.e.ticks() + releaseEvery) // try again when allowed
	}
	if len(l.ents) > 0 || len(l.ended) > 0 || len(l.resumes) > 0 {
		return 0 // written, ended or resumed by the last OnClose calls
	}
	if !have {
		return -1
	}
	d := int32(next - l.e.ticks())
	if d <= 0 {
		return 0
	}
	return time.Duration(d) * time.Millisecond
}

// expire drops idle and lingering connections whose time is up, and
// watches the listeners again after an accept back-off.
func (l *loop) expire() {
	if l.idleTicks == 0 && l.linger.head < 0 && l.headers.head < 0 && l.handshakes.head < 0 && !l.acceptOff && l.timers.len() == 0 {
		return
	}
	for t := l.timers.due(l.e.now()); t != nil; t = l.timers.due(l.e.now()) {
		t.f()
	}
	now := l.e.ticks()
	for l.headers.head >= 0 {
		fd := int(l.headers.head)
		c := l.e.table.get(fd)
		if int32(now-c.since) < int32(proxyTicks) {
			break
		}
		l.proxyFail(c, fd, ErrProxyTruncated)
	}
	for l.handshakes.head >= 0 {
		fd := int(l.handshakes.head)
		c := l.e.table.get(fd)
		if int32(now-c.since) < int32(l.hsTicks) {
			break
		}
		l.tlsFail(c, fd, errHandshakeTimeout)
	}
	for l.idleTicks > 0 && l.active.head >= 0 {
		fd := int(l.active.head)
		c := l.e.table.get(fd)
		if int32(now-c.since) < int32(l.idleTicks) {
			break
		}
		l.e.st.IdleClosed.Add(1)
		setWhy(c, ErrIdle)
		l.drop(c, fd, "idle")
	}
	lt := uint32(lingerTime / time.Millisecond)
	for l.linger.head >= 0 {
		fd := int(l.linger.head)
		c := l.e.table.get(fd)
		if int32(now-c.since) < int32(lt) {
			break
		}
		l.drop(c, fd, "")
	}
	if l.acceptOff && int32(now-l.acceptRetry) >= 0 {
		l.watchListeners()
	}
}
