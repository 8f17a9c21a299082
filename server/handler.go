package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Handler is an application on the server's event loops, for protocols
// that are not one answer per request: chat, pub/sub, push, proxies.
// Set Config.Handler to serve one instead of a Protocol.
//
// The engine calls a Handler on the connection's loop, one call at a time
// per connection; calls for connections of different loops run at once,
// so state shared between connections needs a lock or channels. A call
// must not block: the loop serves all its connections in between.
//
// # Compared with gnet and nbio
//
// gnet's EventHandler has OnOpen, OnTraffic and OnClose too, but a write
// from another goroutine (AsyncWrite) is queued without bound, and the
// caller learns of a client that does not read only by polling
// OutboundBuffered, or when memory runs out. nbio's Conn.Write works from
// any goroutine, and is unbounded unless MaxWriteBufferSize is set, when
// the connection is closed instead. Here every write from outside the loop
// is counted at once against MaxPendingOutput with what waits unsent, and
// a write that would pass it fails at once with ErrBackpressure, leaving
// the connection open and the choice to the caller: drop the message,
// wait for room (AsyncWriteContext), or disconnect the client (Abort).
// Another goroutine never touches the socket: its write is a task on the
// connection's loop, like every Close, Abort and Run.
type Handler interface {
	// OnOpen is called once a connection is accepted (after its PROXY
	// header, with Config.ProxyProtocol, and its handshake, with
	// Config.TLS), before any OnData. Over TLS, OnData gets the plaintext
	// and writes are encrypted: the Handler is the same.
	OnOpen(c *Conn)
	// OnData is called with input as it arrives; in is valid only during
	// the call. Reading pauses while the connection's pending output is
	// at MaxPendingOutput, and resumes once it is down to half.
	OnData(c *Conn, in []byte)
	// OnClose is called once, when the connection ends, with why: io.EOF
	// when the client closed, ErrIdle, ErrServerClosed on a shutdown, the
	// socket's error on a reset, nil when the handler closed it (Close,
	// Abort), or the error given to CloseWithError. The handle fails every
	// method with ErrClosed from then on.
	OnClose(c *Conn, why error)
}

// Errors of a Conn.
var (
	// ErrClosed is returned by a method on a connection that has ended,
	// or is ending (Close, Abort, the peer's reset, a shutdown).
	ErrClosed = errors.New("server: connection closed")
	// ErrBackpressure is returned by a write that would make the
	// connection's pending output, written and not yet taken by the
	// kernel, pass Config.MaxPendingOutput. Nothing was written.
	ErrBackpressure = errors.New("server: pending output would pass MaxPendingOutput")
	// ErrIdle is OnClose's reason for a connection closed by
	// Config.IdleTimeout or its read timeout (Conn.SetReadTimeout).
	ErrIdle = errors.New("server: idle timeout")
	// ErrWriteTimeout is OnClose's reason for a connection closed by its
	// write timeout (Conn.SetWriteTimeout): a client that took none of
	// its output for that long.
	ErrWriteTimeout = errors.New("server: write timeout: the client takes nothing")
)

// Conn is a connection served by a Handler. A handle stays valid after its
// connection ends: every method then fails with ErrClosed, and none can
// reach the socket that takes the connection's descriptor number next.
//
// Write, SetValue, Value and the reading switches are for the connection's
// loop (the Handler's calls and functions given to Run); AsyncWrite,
// AsyncWriteContext, Close, CloseWithError, Abort, Run and RemoteAddr are
// safe from any goroutine.
type Conn struct {
	// pending counts the bytes written and not yet taken by the kernel,
	// queued tasks included; a write that would pass max fails.
	pending atomic.Int64
	max     int64
	// recordCost is what each record of TLS adds to a write's bytes at
	// most, on an engine that counts ciphertext (the poll engine's TLS
	// connections); 0 otherwise. See charge.
	recordCost int64
	// closed: the connection has ended or is ending; set by the loop
	// under its task queue's lock, so a write either joins the queue
	// before the end (and is sent first) or fails.
	closed atomic.Bool
	remote netip.AddrPort
	value  any
	// roomMu guards room, which the loop closes when pending output
	// falls while a writer waits (AsyncWriteContext).
	roomMu  sync.Mutex
	room    chan struct{}
	waiters atomic.Int32
	// readTimeout and writeTimeout are the connection's deadlines
	// (SetReadTimeout, SetWriteTimeout); the loop's.
	readTimeout, writeTimeout time.Duration
	eng                       connEngine
}

// connEngine is what an engine does for a Conn.
type connEngine interface {
	// post queues t for the connection's loop, unless the connection
	// has ended (ErrClosed). It holds the queue's lock while it checks.
	// A taskWrite's bytes are the caller's: post copies them.
	post(c *Conn, t task) error
	// write writes b on the loop: to the socket, or queued for it.
	write(c *Conn, b []byte) error
	// setReading pauses or resumes reading, on the loop.
	setReading(c *Conn, on bool)
	// afterFunc arms a timer on the connection's loop, on the loop.
	afterFunc(c *Conn, d time.Duration, f func()) *Timer
	// timeoutsChanged applies c.readTimeout and c.writeTimeout, on the
	// loop.
	timeoutsChanged(c *Conn)
}

// taskKind says what a task does.
type taskKind uint8

const (
	taskWrite taskKind = iota
	taskRun
	taskClose // graceful: pending output, then FIN
	taskAbort
)

// task is work for a connection's loop from another goroutine.
type task struct {
	kind taskKind
	b    []byte // taskWrite: the caller's bytes, counted in pending
	f    func() // taskRun
	why  error  // taskClose, taskAbort: OnClose's reason
}

// RemoteAddr is the client's address: the PROXY header's source with
// Config.ProxyProtocol, when it names one.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// SetValue keeps v with the connection, for the Handler's per-connection
// state. On the loop only.
func (c *Conn) SetValue(v any) { c.value = v }

// Value is what SetValue kept. On the loop only.
func (c *Conn) Value() any { return c.value }

// Pending is the connection's output written and not yet taken by the
// kernel, in bytes.
func (c *Conn) Pending() int { return int(c.pending.Load()) }

// Write writes b to the connection, on its loop: what the socket does not
// take at once is kept and sent as it drains. It fails with
// ErrBackpressure, writing nothing, if the pending output would pass
// MaxPendingOutput, and with ErrClosed after the end. Writes from the
// loop and AsyncWrites are each sent in their own order; an AsyncWrite
// made on the loop goes out after the loop's Writes of that turn.
func (c *Conn) Write(b []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.reserve(c.charge(len(b))); err != nil {
		return err
	}
	return c.eng.write(c, b)
}

// AsyncWrite writes a copy of b to the connection from any goroutine,
// through the connection's loop, and never blocks: it fails at once with
// ErrBackpressure if the pending output would pass MaxPendingOutput, and
// with ErrClosed once the connection has ended or is ending, or the
// server's shutdown has begun. A write that succeeded is sent before a
// graceful close's FIN.
func (c *Conn) AsyncWrite(b []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.reserve(c.charge(len(b))); err != nil {
		return err
	}
	if err := c.eng.post(c, task{kind: taskWrite, b: b}); err != nil {
		c.pending.Add(-c.charge(len(b)))
		return err
	}
	return nil
}

// AsyncWriteContext is AsyncWrite, waiting for room while the pending
// output would pass MaxPendingOutput, until ctx is done. A b longer than
// MaxPendingOutput can never fit: it fails at once with ErrBackpressure.
func (c *Conn) AsyncWriteContext(ctx context.Context, b []byte) error {
	if c.charge(len(b)) > c.max {
		return fmt.Errorf("%w: %d bytes at once, over the bound of %d", ErrBackpressure, len(b), c.max)
	}
	for {
		room := c.roomChan()
		err := c.AsyncWrite(b)
		if !errors.Is(err, ErrBackpressure) {
			c.waiters.Add(-1)
			return err
		}
		select {
		case <-room:
			c.waiters.Add(-1)
		case <-ctx.Done():
			c.waiters.Add(-1)
			return ctx.Err()
		}
	}
}

// roomChan counts a waiter and returns the channel the loop closes when
// there is room; the caller uncounts itself.
func (c *Conn) roomChan() chan struct{} {
	c.waiters.Add(1)
	c.roomMu.Lock()
	defer c.roomMu.Unlock()
	if c.room == nil {
		c.room = make(chan struct{})
	}
	return c.room
}

// signalRoom wakes the writers waiting for room, when there are any. The
// loop calls it as output drains, and at the end, when the writers find
// ErrClosed.
func (c *Conn) signalRoom() {
	if c.waiters.Load() == 0 {
		return
	}
	c.roomMu.Lock()
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	c.roomMu.Unlock()
}

// charge is what a write of n bytes counts in the pending output before
// it is sent: n, and over TLS the most its records can add, one per 16
// KiB, as the loop may seal it alone. The loop settles the difference
// once it knows the ciphertext's length, so that the bound holds for the
// bytes the socket has yet to take however the writes are cut.
func (c *Conn) charge(n int) int64 {
	return int64(n) + c.recordCost*int64((n+maxPlainRecord-1)/maxPlainRecord)
}

// maxPlainRecord is the most plaintext a TLS record holds.
const maxPlainRecord = 1 << 14

// reserve counts n more bytes of pending output, unless that would pass
// the bound.
func (c *Conn) reserve(n int64) error {
	if c.pending.Add(n) > c.max {
		c.pending.Add(-n)
		return ErrBackpressure
	}
	return nil
}

// sent uncounts n bytes the kernel took, and wakes the writers waiting
// for room: each knows how much it needs.
func (c *Conn) sent(n int) {
	c.pending.Add(-int64(n))
	c.signalRoom()
}

// CloseTimeout bounds a graceful close (Conn.Close): output the client
// has not taken by then is discarded, with a reset.
const CloseTimeout = 5 * time.Second

// Close ends the connection gracefully, from any goroutine: the writes
// made before it are sent, then the FIN; input after it is discarded. A
// client that has not taken them within CloseTimeout gets a reset
// instead. OnClose gets nil.
func (c *Conn) Close() error { return c.CloseWithError(nil) }

// CloseWithError is Close, with why for OnClose (ErrBackpressure, for a
// client disconnected for not reading, say).
func (c *Conn) CloseWithError(why error) error {
	return c.eng.post(c, task{kind: taskClose, why: why})
}

// Abort ends the connection at once, from any goroutine, discarding its
// pending output; the client sees a reset if input was unread. OnClose
// gets why (nil: closed by the handler).
func (c *Conn) Abort(why error) error {
	return c.eng.post(c, task{kind: taskAbort, why: why})
}

// Run runs f on the connection's loop, from any goroutine, unless the
// connection has ended by then; f may use the loop-only methods.
func (c *Conn) Run(f func()) error {
	return c.eng.post(c, task{kind: taskRun, f: f})
}

// PauseReading stops OnData until ResumeReading: the client's input waits
// in the kernel, and its sends stall once the buffers are full. On the
// loop only.
func (c *Conn) PauseReading() { c.eng.setReading(c, false) }

// ResumeReading undoes PauseReading. On the loop only.
func (c *Conn) ResumeReading() { c.eng.setReading(c, true) }

// SetReadTimeout closes the connection, with ErrIdle, once it has sent
// nothing for d, measured from its last input (or from now, if it has sent
// none since); 0 turns it off. Like Config.IdleTimeout, but for this
// connection, and on top of it. On the loop only.
//
// On the poll engine, moving a deadline costs nothing: input only records
// its time, and the loop's timer heap holds one entry per connection,
// which finds the deadline moved when it comes due and goes back in. An
// idle connection with a deadline costs no CPU until it expires.
func (c *Conn) SetReadTimeout(d time.Duration) {
	c.readTimeout = max(d, 0)
	c.eng.timeoutsChanged(c)
}

// SetWriteTimeout closes the connection at once, with ErrWriteTimeout,
// once output has waited for d without the kernel taking any of it: a
// client that accepts nothing. The wait counts from the last progress or
// from the call, whichever is later; any progress restarts it; 0 turns it
// off. On the loop only.
func (c *Conn) SetWriteTimeout(d time.Duration) {
	c.writeTimeout = max(d, 0)
	c.eng.timeoutsChanged(c)
}

// Timer is a function that runs on a connection's loop once its time has
// come (Conn.AfterFunc).
type Timer struct {
	f   func()
	at  int64 // the engine's clock
	idx int   // in its heap; -1 once run or stopped
	h   *timerHeap
}

// Stop cancels the timer and reports whether it was pending. On the
// connection's loop only.
func (t *Timer) Stop() bool {
	if t.idx < 0 {
		return false
	}
	t.h.remove(t)
	return true
}

// AfterFunc runs f on the connection's loop once d has passed, unless the
// connection has ended by then or the timer was stopped. On the loop only.
// A timer outliving its connection holds f until its time: stop long ones
// in OnClose.
// The poll engine keeps a loop's timers in one heap and reads its earliest
// once a turn to bound its wait: no goroutine and no runtime timer per
// connection, arming and stopping in O(log n), nothing at all while idle.
// The stdnet engine, a goroutine per connection already, arms one runtime
// timer per connection for the earliest of its timers.
func (c *Conn) AfterFunc(d time.Duration, f func()) *Timer { return c.eng.afterFunc(c, d, f) }

// timerHeap is a loop's timers, earliest first: a binary heap kept in
// chunks of timerChunk entries rather than one slice, so that growing it
// to tens of thousands of timers copies nothing and leaves no garbage
// arrays behind. A slice grown by append leaves some four times its final
// size as garbage on the way, which with 10,000 idle connections each
// holding a deadline was 26-46 bytes of RSS a connection, against 8 for
// the entries themselves (bench/cmd/idleconns on bench/peers/handlersrv).
type timerHeap struct {
	chunks []*[timerChunk]*Timer
	n      int
}

const timerChunk = 1024

func (h *timerHeap) at(i int) **Timer { return &h.chunks[i/timerChunk][i%timerChunk] }

// len is the number of timers.
func (h *timerHeap) len() int { return h.n }

// first is the earliest timer; the heap must not be empty.
func (h *timerHeap) first() *Timer { return *h.at(0) }

func (h *timerHeap) push(t *Timer) {
	if h.n == len(h.chunks)*timerChunk {
		h.chunks = append(h.chunks, new([timerChunk]*Timer))
	}
	t.h = h
	t.idx = h.n
	*h.at(h.n) = t
	h.n++
	h.up(t.idx)
}

// due removes and returns the earliest timer if its time is now or past.
func (h *timerHeap) due(now int64) *Timer {
	if h.n == 0 || h.first().at > now {
		return nil
	}
	t := h.first()
	h.remove(t)
	return t
}

func (h *timerHeap) remove(t *Timer) {
	i, last := t.idx, h.n-1
	if i != last {
		m := *h.at(last)
		*h.at(i) = m
		m.idx = i
	}
	*h.at(last) = nil
	h.n--
	if h.n%timerChunk == 0 && len(h.chunks) > h.n/timerChunk+1 {
		// Keep one empty chunk, so a timer that comes and goes at a
		// chunk's edge does not make and drop it each time.
		h.chunks[len(h.chunks)-1] = nil
		h.chunks = h.chunks[:len(h.chunks)-1]
	}
	if i != last {
		h.down(i)
		h.up(i)
	}
	t.idx = -1
}

func (h *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if (*h.at(p)).at <= (*h.at(i)).at {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *timerHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= h.n {
			return
		}
		m := l
		if r := l + 1; r < h.n && (*h.at(r)).at < (*h.at(l)).at {
			m = r
		}
		if (*h.at(i)).at <= (*h.at(m)).at {
			return
		}
		h.swap(i, m)
		i = m
	}
}

func (h *timerHeap) swap(i, j int) {
	a, b := h.at(i), h.at(j)
	*a, *b = *b, *a
	(*a).idx, (*b).idx = i, j
}
