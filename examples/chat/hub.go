package main

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tcpoll/poll/server"
)

// errLineTooLong is OnClose's reason for a sender disconnected for a line
// over -max-line.
var errLineTooLong = errors.New("chat: line over -max-line")

// hub is the chat room, a server.Handler: the connections open now, and
// the fan-out of each line to all of them but its sender.
//
// A line is fanned out on its sender's loop with AsyncWrite, which copies
// it into each receiver's loop queue and never blocks, so no loop waits
// for another or for a client, and each receiver gets one sender's lines
// in the order they were read: they go through its own loop's queue one
// after the other. A receiver whose pending output would pass
// -max-pending (the server's MaxPendingOutput) makes AsyncWrite fail with
// ErrBackpressure: it is disconnected with Abort, which discards what it
// was still owed.
//
// The members are a copy-on-write slice: a fan-out loads it with no lock
// at all. Joining appends to it, under mu. Leaving only marks the member
// gone; once more than half are gone, the slice is copied without them.
// So a leave costs O(1) amortized, and a storm of thousands of clients
// leaving at once is not thousands of copies of the room.
type hub struct {
	maxLine int
	log     *slog.Logger

	dropped atomic.Int64 // receivers disconnected for falling behind
	tooLong atomic.Int64 // senders disconnected for a line over maxLine

	mu      sync.Mutex                // serializes joins and leaves
	members atomic.Pointer[[]*member] // read without mu
	gone    int                       // members marked left, under mu
}

// member is a connection in the room.
type member struct {
	c *server.Conn
	// dropped is set by the first loop to find the client too far
	// behind; no line is written to it from then on, so it gets each
	// sender's lines up to a point, and none after.
	dropped atomic.Bool
	// left is set when the connection has closed: fan-outs skip it
	// until the next compaction takes it out of the slice.
	left atomic.Bool
}

// session is a connection's own state, kept with SetValue: only its loop
// touches it.
type session struct {
	m    *member
	in   lines
	emit func([]byte) // fans out a run of lines from m
	done bool         // disconnected for a long line: input is ignored
}

func newHub(maxLine int, log *slog.Logger) *hub {
	h := &hub{maxLine: maxLine, log: log}
	h.members.Store(new([]*member))
	return h
}

// OnOpen adds c to the room.
func (h *hub) OnOpen(c *server.Conn) {
	m := &member{c: c}
	c.SetValue(&session{m: m, in: lines{max: h.maxLine}, emit: func(b []byte) { h.broadcast(m, b) }})
	h.join(m)
	h.log.Debug("joined", "remote", c.RemoteAddr())
}

// OnData fans out c's complete lines, and disconnects c at a line over
// maxLine.
func (h *hub) OnData(c *server.Conn, in []byte) {
	s := c.Value().(*session)
	if s.done {
		return
	}
	if !s.in.feed(in, s.emit) {
		s.done = true
		s.in = lines{}
		h.tooLong.Add(1)
		h.log.Info("disconnected a client for a line over -max-line", "remote", c.RemoteAddr(), "max_line", h.maxLine)
		c.Abort(errLineTooLong)
	}
}

// OnClose takes c out of the room; its unfinished line goes with it.
func (h *hub) OnClose(c *server.Conn, why error) {
	s, ok := c.Value().(*session)
	if !ok {
		return
	}
	h.leave(s.m)
	h.log.Debug("left", "remote", c.RemoteAddr(), "why", why)
}

// broadcast writes lines, complete lines from the member from, to every
// other member. AsyncWrite copies them; one run of lines, however many,
// is one write for each receiver.
func (h *hub) broadcast(from *member, lines []byte) {
	for _, m := range *h.members.Load() {
		if m != from && !m.dropped.Load() && !m.left.Load() {
			h.write(m, lines)
		}
	}
}

// write writes b to m, or disconnects m if it is too far behind.
// ErrClosed is no error here: m is leaving, and OnClose takes it out.
func (h *hub) write(m *member, b []byte) {
	err := m.c.AsyncWrite(b)
	if !errors.Is(err, server.ErrBackpressure) || m.dropped.Swap(true) {
		return
	}
	pending := m.c.Pending()
	if m.c.Abort(server.ErrBackpressure) != nil {
		return // it ended meanwhile
	}
	n := h.dropped.Add(1)
	h.log.Warn("disconnected a client that does not read", "remote", m.c.RemoteAddr(), "pending", pending, "write", len(b), "dropped", n)
}

// join adds m to the room.
func (h *hub) join(m *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// append writes past the end of every slice stored so far, where no
	// fan-out reads, or into a new array.
	next := append(*h.members.Load(), m)
	h.members.Store(&next)
}

// leave takes m out of the room: it marks it left, and once more than
// half the slice has left, stores a copy without them (fan-outs may still
// read the old one).
func (h *hub) leave(m *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.left.Swap(true) {
		return
	}
	h.gone++
	old := *h.members.Load()
	if 2*h.gone <= len(old) {
		return
	}
	next := make([]*member, 0, len(old)-h.gone)
	for _, o := range old {
		if !o.left.Load() {
			next = append(next, o)
		}
	}
	h.members.Store(&next)
	h.gone = 0
}

// size is the number of members.
func (h *hub) size() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(*h.members.Load()) - h.gone
}
