//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A connection of a TLS server (Config.TLS) runs Go's own crypto/tls over
// a tlsPipe: an in-memory transport the loop fills with the ciphertext it
// reads and empties of the ciphertext crypto/tls writes. The socket stays
// the loop's alone throughout.
//
// Its handshake cannot run on the loop: crypto/tls keeps a handshake's
// first error for good, so a handshake cannot stop for want of input and
// carry on later. Once a connection's first record, its ClientHello, is
// complete, a goroutine runs the handshake, and its pipe's Read waits for
// what the loop reads next; what the goroutine writes, and the end of the
// handshake, reach the loop through its tlsQueue. Before that record is
// whole, a connection costs no goroutine, only its bytes and a place in
// the loop's handshakes list, whose deadline (Config.HandshakeTimeout)
// closes it: silent or slow clients cannot hold the handshake slots a
// healthy client needs. Garbage is refused at its first byte.
//
// After the handshake the loop decrypts and encrypts itself: the pipe's
// Read then returns errWouldBlock when it has nothing, a temporary
// net.Error that crypto/tls does not keep, and one turn's answers for a
// connection go out as one record (Config.TLS is cloned with
// DynamicRecordSizingDisabled, so a young connection's records are not cut
// to one segment each).

// maxHandshakeInput bounds what the loop reads of a client before its
// handshake ends: a ClientHello with a post-quantum key share is about
// 1.8 KB, and no flight of a client comes near this. A client may send
// its first messages right after its Finished, before the server's
// handshake has seen it: past the bound they wait in the socket.
const maxHandshakeInput = 64 << 10

// handshakeGarbage is what a full handshake leaves to the garbage
// collector on the server's side: 61 KB in 7,795 handshakes under
// bench/cmd/churn -tls-ca (expvar memstats, TLS 1.3 with the default
// post-quantum key exchange), against about 7 KB the connection keeps.
// Counted with the output buffers (see releaseMemory), it has the runtime
// return the peak to the system once handshakes quieten, so that an idle
// TLS connection costs what it holds, not the garbage of its handshake.
const handshakeGarbage = 60 << 10

// tlsRecordCost bounds what a record adds to its plaintext: 22 bytes in
// TLS 1.3 (header, content type, tag), 29 with TLS 1.2's AES-GCM, up to 57
// with a CBC suite's IV, MAC and padding.
const tlsRecordCost = 64

// maxRecordLen is the longest record a peer may send: 2^14 bytes of
// plaintext plus 2,048 of expansion (RFC 8446, 5.2; RFC 5246, 6.2.3).
const maxRecordLen = 1<<14 + 2048

// tlsConn is a connection's TLS state. fd, ended, started and finished
// are the loop's; the pipe has its own lock.
type tlsConn struct {
	tc *tls.Conn
	p  tlsPipe
	l  *loop
	fd int32
	// ended: the connection is gone; its slot may be another's.
	ended bool
	// started: a goroutine runs the handshake; waiting: t is in the
	// loop's hsWait for a slot. finished: the loop has seen the handshake
	// end and given back its slot.
	started, waiting, finished bool
	// notified: the close_notify alert is written. eof: the client's FIN
	// came during the handshake, after what the handshake may still need
	// (a client's Finished, its first message and its close_notify can
	// come in one segment with it).
	notified, eof bool
	// queued is under the loop's tlsQueue lock: t waits in it.
	queued bool
}

// tlsQueue carries handshake goroutines' output and ends to their loop.
type tlsQueue struct {
	mu    sync.Mutex
	items []*tlsConn
	spare []*tlsConn
}

// errWouldBlock is the pipe's Read when the loop has no more ciphertext:
// temporary, so crypto/tls keeps no error and reads on next time.
var errWouldBlock = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "server: no more TLS input yet" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// tlsPipe is crypto/tls's transport: a net.Conn over memory.
type tlsPipe struct {
	mu   sync.Mutex
	cond sync.Cond // the handshake goroutine waits on it for input
	// in is ciphertext crypto/tls has not read. During the handshake it is
	// the pipe's own; after it, borrowed says it is the loop's read buffer,
	// lent for one call (see feed and keep).
	in       []byte
	borrowed bool
	// out is what the handshake wrote, for the loop to send; after the
	// handshake, crypto/tls writes into sink, which the loop provides for
	// each call.
	out  []byte
	sink []byte
	// onLoop: the handshake is over, and the loop alone uses the pipe.
	// eof: the client sent its FIN; Read says io.EOF once in is empty.
	onLoop, eof bool
	closed      bool
	// done and err: the handshake ended, and how.
	done bool
	err  error
	t    *tlsConn
}

func (p *tlsPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.in) == 0 {
		switch {
		case p.closed:
			return 0, net.ErrClosed
		case p.eof:
			return 0, io.EOF
		case p.onLoop:
			return 0, errWouldBlock
		}
		p.cond.Wait()
	}
	n := copy(b, p.in)
	p.in = p.in[n:]
	if len(p.in) == 0 && !p.borrowed {
		p.in = nil // an idle connection holds no input buffer
	}
	return n, nil
}

func (p *tlsPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.onLoop {
		p.sink = append(p.sink, b...)
		p.mu.Unlock()
		return len(b), nil
	}
	if p.closed {
		p.mu.Unlock()
		return 0, net.ErrClosed
	}
	p.out = append(p.out, b...)
	p.mu.Unlock()
	p.t.l.postTLS(p.t)
	return len(b), nil
}

func (p *tlsPipe) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

// The pipe has no addresses or deadlines of its own: the loop bounds the
// handshake (Config.HandshakeTimeout), and after it nothing waits.
func (p *tlsPipe) LocalAddr() net.Addr                { return pipeAddr{} }
func (p *tlsPipe) RemoteAddr() net.Addr               { return pipeAddr{} }
func (p *tlsPipe) SetDeadline(t time.Time) error      { return nil }
func (p *tlsPipe) SetReadDeadline(t time.Time) error  { return nil }
func (p *tlsPipe) SetWriteDeadline(t time.Time) error { return nil }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "tcp" }
func (pipeAddr) String() string  { return "loop" }

// feed offers in, the loop's read buffer, to crypto/tls for one call; keep
// must follow before the buffer is reused.
func (p *tlsPipe) feed(in []byte) {
	p.mu.Lock()
	if len(p.in) == 0 {
		p.in, p.borrowed = in, true
	} else {
		p.in = append(p.in, in...)
	}
	p.mu.Unlock()
}

// keep copies what crypto/tls left of a lent buffer: input that waits
// while the connection's reading is paused.
func (p *tlsPipe) keep() {
	p.mu.Lock()
	if p.borrowed {
		p.borrowed = false
		p.in = bytes.Clone(p.in)
		if len(p.in) == 0 {
			p.in = nil
		}
	}
	p.mu.Unlock()
}

// tlsConn is the connection's TLS state, or nil.
func (c *conn) tlsConn() *tlsConn {
	if c.x == nil {
		return nil
	}
	return c.x.tls
}

// startTLS begins the handshake stage of a connection just admitted: it
// leaves the active list for the handshakes list, whose deadline bounds
// the handshake.
func (l *loop) startTLS(c *conn, fd int) {
	t := &tlsConn{l: l, fd: int32(fd)}
	t.p.t = t
	t.p.cond.L = &t.p.mu
	t.tc = tls.Server(&t.p, l.e.cfg.TLS)
	l.ext(c).tls = t
	if h := c.handle(); h != nil {
		// Before OnOpen: every write the Handler makes is charged for
		// its records.
		h.recordCost = tlsRecordCost
	}
	l.active.remove(l.e, fd)
	c.state |= stHandshake
	c.since = l.e.ticks()
	l.handshakes.pushBack(l.e, fd)
}

// tlsInput takes ciphertext read from a TLS connection: the handshake's,
// or records to decrypt and hand on. It reports whether the connection
// reads on.
func (l *loop) tlsInput(c *conn, fd int, t *tlsConn, in []byte) bool {
	if c.state&stHandshake != 0 {
		l.handshakeInput(c, fd, t, in)
		return c.state&stOpen != 0
	}
	t.p.feed(in)
	ok := l.decrypt(c, fd, t)
	t.p.keep()
	return ok
}

// decrypt hands on the plaintext of the records crypto/tls can complete,
// no more at a time than the answers to it leave room for, as readSize
// does for a socket: crypto/tls keeps the rest. Like a read of the socket,
// once a turn: when more may wait, the loop comes back to it next turn
// (resumes), as the level-triggered poller would for a socket, so that
// the turn's answers are sent, and the connection paused if the client
// does not take them, before more are made. The records of one read go on
// together, so their answers go out as one record. It reports whether the
// connection reads on.
func (l *loop) decrypt(c *conn, fd int, t *tlsConn) bool {
	for {
		if !t.reading(c) {
			return c.state&stOpen != 0
		}
		if l.plain == nil {
			l.plain = make([]byte, plainSize)
		}
		limit := min(l.readSize(c), len(l.plain))
		n := 0
		var err error
		for err == nil && n < limit {
			var m int
			m, err = t.tc.Read(l.plain[n:limit])
			n += m
		}
		fatal := err != nil && err != errWouldBlock && err != io.EOF
		if b := t.p.sink; len(b) > 0 {
			t.p.sink = nil
			if fatal {
				// The alert crypto/tls wrote about the bad record: the last
				// word on a connection about to close.
				l.sendLast(c, fd, b)
			} else if !l.writeRaw(c, fd, b) {
				// crypto/tls answered a message of the client's own (a TLS
				// 1.3 KeyUpdate asking for ours): it goes before anything
				// sealed with the new keys.
				return false
			}
		}
		if n > 0 {
			// Whether it reads on is t.reading's to say: with eof, the EOF
			// is still to be handed on.
			l.deliver(c, fd, l.plain[:n])
		}
		if c.state&stOpen == 0 {
			return false
		}
		switch {
		case err == nil:
			if !t.reading(c) {
				return false
			}
			if c.state&stDraining != 0 {
				// A shutdown drain answers all it read before its FIN, and
				// sends each answer as it goes (queue): on with the rest.
				continue
			}
			l.resumes = append(l.resumes, token(c.gen.Load(), fd))
			return true
		case err == errWouldBlock:
			return t.reading(c)
		case err == io.EOF:
			// The client's close_notify, or the FIN that came with the
			// handshake's end: it sends nothing more.
			if t.reading(c) {
				c.state |= stEOF
				l.finish(c, fd, true)
			}
			return false
		default:
			l.tlsFail(c, fd, err)
			return false
		}
	}
}

// plainSize is the decryption scratch: four records' plaintext, as much
// as the 64 KiB a read of the socket takes at most.
const plainSize = 4 << 14

// reading reports whether decrypt may hand the connection more input: it
// is open and not paused, and reads on, or its FIN came with the
// handshake's end (eof) and the input before it is still being handed on.
func (t *tlsConn) reading(c *conn) bool {
	s := c.state
	if s&(stOpen|stPaused|stHeld) != stOpen {
		return false
	}
	return s&stNoRead == 0 || t.eof && s&stClosing == 0
}

// tlsResume decrypts input held while the connection's reading was
// paused: the socket may have nothing more to say, so no event would.
func (l *loop) tlsResume(c *conn, fd int) {
	if t := c.tlsConn(); t != nil && c.state&stHandshake == 0 {
		l.decrypt(c, fd, t)
	}
}

// resumeLater has the loop decrypt a handled connection's held input once
// the Handler's call that resumed its reading has returned: at once, an
// OnData could run within another, its input overwritten.
func (l *loop) resumeLater(c *conn, fd int) {
	if t := c.tlsConn(); t != nil && c.state&stHandshake == 0 {
		l.resumes = append(l.resumes, token(c.gen.Load(), fd))
	}
}

// handshakeInput gathers a handshake's input. The first record, the
// ClientHello, is checked as it comes and gathered on the loop; once it is
// whole, a goroutine takes the handshake on (see startHandshake).
func (l *loop) handshakeInput(c *conn, fd int, t *tlsConn, in []byte) {
	p := &t.p
	p.mu.Lock()
	p.in = append(p.in, in...)
	p.cond.Signal()
	var bad error
	whole := false
	if !t.started {
		// A record header: type 22 (handshake), version 3.x, length.
		h := p.in
		switch {
		case h[0] != 22:
			bad = errors.New("tls: first record is not a handshake record")
		case len(h) >= 2 && h[1] != 3:
			bad = errors.New("tls: first record has a version other than 3.x")
		case len(h) >= 5:
			n := int(h[3])<<8 | int(h[4])
			if n == 0 || n > maxRecordLen {
				bad = errors.New("tls: first record's length is out of range")
			}
			whole = len(h) >= 5+n
		}
	}
	p.mu.Unlock()
	switch {
	case bad != nil:
		l.tlsFail(c, fd, bad)
	case whole:
		l.startHandshake(t)
	}
}

// handshakeEOF takes the client's FIN during the handshake: the handshake
// goes on with what came before it, and the connection reads no more.
// Should the handshake succeed, established hands on the rest of the input
// and then the EOF.
func (l *loop) handshakeEOF(c *conn, fd int) {
	t := c.x.tls
	if t.silent() {
		// Not a byte: a balancer's TCP health check, not a failed
		// handshake.
		l.drop(c, fd, "")
		return
	}
	t.eof = true
	t.p.mu.Lock()
	t.p.eof = true
	t.p.cond.Signal()
	t.p.mu.Unlock()
	c.state |= stNoRead
	l.setInterest(c, fd)
	if !t.started {
		// The hello is whole or never will be: the handshake says which.
		l.startHandshake(t)
	}
}

// room is how much more of the client's input the handshake may hold.
func (t *tlsConn) room() int {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	return max(maxHandshakeInput-len(t.p.in), 0)
}

// silent reports whether the client has sent nothing yet. Without a
// handshake goroutine, the pipe is the loop's alone.
func (t *tlsConn) silent() bool {
	return !t.started && !t.waiting && len(t.p.in) == 0
}

// tlsEOF takes the client's FIN on an established connection: the input
// before it may still wait in crypto/tls or the pipe (decrypt hands on no
// more at a time than answers leave room for), so the EOF is the pipe's,
// handed on after it.
func (l *loop) tlsEOF(c *conn, fd int) {
	t := c.x.tls
	t.eof = true
	t.p.mu.Lock()
	t.p.eof = true
	t.p.mu.Unlock()
	c.state |= stNoRead
	l.setInterest(c, fd)
	l.decrypt(c, fd, t)
}

// startHandshake starts t's handshake goroutine, or queues t until a
// handshake ends if MaxHandshakes run already.
func (l *loop) startHandshake(t *tlsConn) {
	if t.started || t.waiting {
		return
	}
	if !l.takeSlot() {
		t.waiting = true
		l.hsWait = append(l.hsWait, t)
		l.e.hsWaiting.Add(1)
		return
	}
	t.started = true
	go t.handshake()
}

// takeSlot counts one more handshake in flight, unless MaxHandshakes are.
func (l *loop) takeSlot() bool {
	if l.e.hsBusy.Add(1) > int64(l.e.cfg.MaxHandshakes) {
		l.e.hsBusy.Add(-1)
		return false
	}
	return true
}

// freeSlot ends a handshake's count, and has the loops with handshakes
// waiting start them: a slot freed in one loop is any loop's.
func (l *loop) freeSlot() {
	l.e.hsBusy.Add(-1)
	l.startWaiting()
	if l.e.hsWaiting.Load() > 0 {
		for _, o := range l.e.loops {
			if o != l {
				o.p.Wake()
			}
		}
	}
}

// handshake runs on its own goroutine. The loop ends it, should the
// connection end first, by closing the pipe.
func (t *tlsConn) handshake() {
	err := t.tc.Handshake()
	t.p.mu.Lock()
	t.p.done, t.p.err = true, err
	t.p.mu.Unlock()
	t.l.postTLS(t)
}

// postTLS tells t's loop that t has output or has ended its handshake.
func (l *loop) postTLS(t *tlsConn) {
	q := &l.tlsq
	q.mu.Lock()
	if t.queued {
		q.mu.Unlock()
		return
	}
	t.queued = true
	q.items = append(q.items, t)
	wake := len(q.items) == 1
	q.mu.Unlock()
	if wake {
		l.p.Wake()
	}
}

// runTLS sends what handshake goroutines wrote and takes up the
// connections whose handshake ended.
func (l *loop) runTLS() {
	if len(l.hsWait) > 0 {
		l.startWaiting() // another loop may have freed a slot
	}
	q := &l.tlsq
	q.mu.Lock()
	ts := q.items
	q.items, q.spare = q.spare[:0], ts
	for _, t := range ts {
		t.queued = false
	}
	q.mu.Unlock()
	for i, t := range ts {
		ts[i] = nil
		p := &t.p
		p.mu.Lock()
		out, done, err := p.out, p.done, p.err
		p.out = nil
		if done {
			p.onLoop = true
		}
		p.mu.Unlock()
		// The goroutine can queue t again after this turn took it and
		// before it read done: the end is taken up once, the first time
		// it is seen, or the connection would be made active twice.
		justDone := done && !t.finished
		if justDone {
			t.finished = true
			l.freeSlot()
			l.released += handshakeGarbage
		}
		if t.ended {
			continue
		}
		fd := int(t.fd)
		c := l.e.table.get(fd)
		if justDone && err != nil {
			// The alert that says why, if crypto/tls wrote one, goes
			// straight out: the batch sends nothing for a connection
			// dropped before the turn ends.
			l.sendLast(c, fd, out)
			l.tlsFail(c, fd, err)
			continue
		}
		if len(out) > 0 && !l.writeRaw(c, fd, out) {
			continue
		}
		if justDone {
			l.established(c, fd, t)
		}
	}
}

// startWaiting starts the handshakes that waited for a slot, in the
// order their ClientHellos came, as slots allow. Those whose connection
// ended meanwhile leave the queue.
func (l *loop) startWaiting() {
	for len(l.hsWait) > 0 {
		t := l.hsWait[0]
		if !t.ended {
			if !l.takeSlot() {
				return
			}
			t.started = true
			go t.handshake()
		}
		t.waiting = false
		l.hsWait[0] = nil
		l.hsWait = l.hsWait[1:]
		l.e.hsWaiting.Add(-1)
	}
	l.hsWait = nil
}

// established makes a connection whose handshake succeeded active: its
// Handler hears of it, and input that came with the client's Finished is
// handed on.
func (l *loop) established(c *conn, fd int, t *tlsConn) {
	l.handshakes.remove(l.e, fd)
	c.state &^= stHandshake
	c.since = l.e.ticks()
	l.active.pushBack(l.e, fd)
	if h := c.handle(); h != nil {
		h.opened = true
		l.e.cfg.Handler.OnOpen(&h.Conn)
		if c.state&stOpen == 0 {
			return
		}
	}
	if c.state&stPaused != 0 {
		// Paused for input held past maxHandshakeInput, or for the
		// handshake's output: the input may go on, the output as it
		// drains (resume).
		if l.resume(c, fd); c.state&stOpen == 0 {
			return
		}
	}
	// With eof, the socket is not read again: decrypt hands on what came
	// before the FIN, then takes the EOF from the pipe (now or after a
	// pause), as from the socket.
	l.decrypt(c, fd, t)
	if c.state&stOpen == 0 || t.eof {
		return
	}
	if l.drain != nil {
		// The handshake ended during a shutdown: answer what is left in
		// the socket too. Also when decrypt stopped reading, paused by its
		// answers: startDrain marks the connection, so that it closes
		// once it reads on, instead of serving on past the shutdown.
		l.startDrain(c, fd)
	}
}

// encrypt encrypts plaintext for the connection into the loop's scratch.
func (l *loop) encrypt(t *tlsConn, plain []byte) ([]byte, error) {
	t.p.sink = l.sealed[:0]
	_, err := t.tc.Write(plain)
	out := t.p.sink
	t.p.sink = nil
	if cap(out) <= maxSealed {
		l.sealed = out[:0]
	}
	return out, err
}

// maxSealed bounds the encryption scratch a loop keeps between calls.
const maxSealed = 256 << 10

// notify sends the close_notify alert of a connection about to send its
// FIN, straight to the socket: the connection's output is empty, and the
// turn's batch may be the caller. It reports whether closeGracefully may
// go on to the FIN now; if not, the alert waits in the output, and flush
// comes back once it is written.
func (l *loop) notify(c *conn, fd int, t *tlsConn) bool {
	if t.notified || c.state&stHandshake != 0 {
		return true
	}
	t.notified = true
	t.p.sink = l.alert[:0]
	t.tc.CloseWrite()
	b := t.p.sink
	t.p.sink = nil
	l.alert = b[:0]
	if len(b) == 0 {
		return true
	}
	if h := c.handle(); h != nil {
		h.pending.Add(int64(len(b))) // sent uncounts it
	}
	n, err := send(fd, b)
	if err != nil && err != unix.EAGAIN {
		l.fail(c, fd, err)
		return false
	}
	n = max(n, 0)
	l.bytesOut += int64(n)
	c.sent(n)
	if n == len(b) {
		return true
	}
	l.keep(c, fd, b[n:])
	return false
}

// writeRaw writes ciphertext no Write counted, the handshake's: for a
// handled connection it is counted in its pending output first, as
// MaxPendingOutput bounds what the socket has yet to take and sent
// uncounts just that.
func (l *loop) writeRaw(c *conn, fd int, b []byte) bool {
	if h := c.handle(); h != nil {
		h.pending.Add(int64(len(b)))
	}
	return l.writeOut(c, fd, b)
}

// sendLast makes one attempt to send b, the last bytes of a connection
// the caller then drops: a TLS alert. Not behind output still waiting:
// the alert would cut into a record.
func (l *loop) sendLast(c *conn, fd int, b []byte) {
	if len(b) == 0 || c.output() != nil {
		return
	}
	if n, err := send(fd, b); err == nil {
		l.bytesOut += int64(n)
	}
}

// tlsFail closes a connection whose TLS failed: a handshake that failed
// or took too long, a bad record or alert.
func (l *loop) tlsFail(c *conn, fd int, err error) {
	l.e.st.TLSErrors.Add(1)
	setWhy(c, err)
	if l.logConns {
		l.e.connErr.Log("fd", fd, "err", err)
	}
	l.drop(c, fd, "tls")
}

// endTLS ends a connection's TLS at its drop: a handshake goroutine still
// waiting for input gives up.
func (l *loop) endTLS(t *tlsConn) {
	t.ended = true
	t.p.Close()
	t.p.mu.Lock()
	t.p.in = nil // held until hsWait reaches it, otherwise
	t.p.mu.Unlock()
}

// errHandshakeTimeout ends a handshake not done within HandshakeTimeout.
var errHandshakeTimeout = errors.New("tls: handshake not done within HandshakeTimeout")
