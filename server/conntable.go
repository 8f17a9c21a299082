//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/tcpoll/poll"
)

// conn is a connection's state: 40 bytes in the table, the
// acknowledgement protocol's Framer included, and for a connection that
// needs more, its connExt. The read buffer belongs to the loop.
type conn struct {
	// gen is the slot's generation, the upper half of the poll token. It
	// changes when the descriptor closes, so an event still queued for
	// the closed socket (see drop) never reaches the connection that gets
	// the number next, in this loop or another. It is also the slot's
	// only synchronisation between loops (see loop), so the race detector
	// sees any other crossing.
	gen      atomic.Uint32
	state    uint16
	interest poll.Interest
	// since is the tick of the last input (active list) or of the FIN
	// (linger list).
	since      uint32
	prev, next int32 // list links, descriptor numbers; -1 ends
	// fr is the protocol state when the server runs the built-in
	// protocol; another Protocol's value lives in the connExt.
	fr Framer
	// x is the rest, for a connection that has more; nil for an idle one
	// of the built-in protocol.
	x *connExt
}

// connExt is what a connection has beyond the common 40 bytes, in one
// place: output waiting for the socket, another Protocol, a Handler's
// handle (its queued writes and timers with it), the PROXY header parser,
// the address counted against MaxConnsPerIP and the TLS state. A loop
// keeps the ones it frees for its next connections.
type connExt struct {
	out   *outBuf      // output the socket has not taken yet
	proto Protocol     // Config.NewProtocol's value
	h     *pollConn    // the Handler's handle
	hdr   *ProxyHeader // until the PROXY header is complete
	ip    netip.Addr   // counted in the engine's ipLimit, when valid
	tls   *tlsConn     // with Config.TLS
}

// empty reports whether x holds nothing.
func (x *connExt) empty() bool {
	return x.out == nil && x.proto == nil && x.h == nil && x.hdr == nil && !x.ip.IsValid() && x.tls == nil
}

// output is the connection's output waiting for the socket, or nil.
func (c *conn) output() *outBuf {
	if c.x == nil {
		return nil
	}
	return c.x.out
}

// handle is the connection's Handler handle, or nil.
func (c *conn) handle() *pollConn {
	if c.x == nil {
		return nil
	}
	return c.x.h
}

func (c *conn) pending() int {
	o := c.output()
	if o == nil {
		return 0
	}
	return len(o.b) - o.off
}

// reset clears the connection's state but keeps its generation. The loop
// has taken back its connExt.
func (c *conn) reset() {
	c.state, c.interest, c.since = 0, 0, 0
	c.prev, c.next = -1, -1
	c.fr, c.x = Framer{}, nil
}

const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	dirSize   = 1 << 14 // 16M descriptors
)

// connTable maps descriptor numbers to connections. Descriptors are small
// dense integers, so a two-level array beats a map: no hashing, no
// per-entry allocation, and chunks are allocated only as numbers get used.
// Loops share it; each touches only the slots of its own connections,
// from accept to close(2).
type connTable struct {
	dir [dirSize]atomic.Pointer[[chunkSize]conn]
	// grow serialises making chunks. The kernel hands out the lowest free
	// numbers, so loops accepting at once cross into a new chunk together;
	// without it each made the chunk, and the losers' 40 KB, every page
	// touched, stayed in RSS until a collection and the scavenger returned
	// it. At 10,000 idle connections (bench/cmd/idleconns, four fresh
	// servers each way) that was 49–60 B per connection with two loops,
	// and is 41–48 B with it; one loop takes 40 B.
	grow sync.Mutex
}

// get returns the slot of a descriptor known to be in the table.
func (t *connTable) get(fd int) *conn {
	return &t.dir[fd>>chunkBits].Load()[fd&(chunkSize-1)]
}

// slot returns the slot for fd, allocating its chunk if needed.
func (t *connTable) slot(fd int) (*conn, error) {
	if fd < 0 || fd >= dirSize*chunkSize {
		return nil, fmt.Errorf("server: descriptor %d out of range", fd)
	}
	d := &t.dir[fd>>chunkBits]
	ch := d.Load()
	if ch == nil {
		t.grow.Lock()
		if ch = d.Load(); ch == nil {
			ch = new([chunkSize]conn)
			for i := range ch {
				ch[i].prev, ch[i].next = -1, -1
			}
			d.Store(ch)
		}
		t.grow.Unlock()
	}
	return &ch[fd&(chunkSize-1)], nil
}

// list is a doubly linked list of connections threaded through the table.
type list struct{ head, tail int32 }

func newList() list { return list{-1, -1} }

func (l *list) pushBack(e *pollEngine, fd int) {
	c := e.table.get(fd)
	c.prev, c.next = l.tail, -1
	if l.tail >= 0 {
		e.table.get(int(l.tail)).next = int32(fd)
	} else {
		l.head = int32(fd)
	}
	l.tail = int32(fd)
}

func (l *list) remove(e *pollEngine, fd int) {
	c := e.table.get(fd)
	if c.prev >= 0 {
		e.table.get(int(c.prev)).next = c.next
	} else if l.head == int32(fd) {
		l.head = c.next
	}
	if c.next >= 0 {
		e.table.get(int(c.next)).prev = c.prev
	} else if l.tail == int32(fd) {
		l.tail = c.prev
	}
	c.prev, c.next = -1, -1
}

// outBuf holds answers the socket has not taken yet.
type outBuf struct {
	b   []byte
	off int
}

func (o *outBuf) bytes() []byte { return o.b[o.off:] }

// consume drops n written bytes and reports whether none are left.
func (o *outBuf) consume(n int) bool {
	o.off += n
	return o.off == len(o.b)
}

// append queues p. The buffer never grows past limit beyond what it must
// hold, so one slow client costs at most about MaxPendingOutput.
func (o *outBuf) append(p []byte, limit int) {
	if o.off > 0 && len(o.b)+len(p) > cap(o.b) {
		// Reuse the written prefix before growing.
		o.b = o.b[:copy(o.b, o.b[o.off:])]
		o.off = 0
	}
	if need := len(o.b) + len(p); need > cap(o.b) {
		nb := make([]byte, len(o.b), min(max(2*cap(o.b), need, 4<<10), max(limit, need)))
		copy(nb, o.b)
		o.b = nb
	}
	o.b = append(o.b, p...)
}

func nextGen(g uint32) uint32 {
	g++
	if g >= 1<<31 || g == 0 {
		g = 1
	}
	return g
}
