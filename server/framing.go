package server

import (
	"bytes"
	"fmt"
	"math"
)

// Answer is what the server sends for every message. The misspelling is
// the original server's and part of the contract: clients match on these
// 24 bytes.
const Answer = "I recieved your message\n"

// Closing is what the server sends for the message "close", after which it
// closes the connection. It has no LF.
const Closing = "closing"

// closeCR is the longest run of pending bytes that can still be the
// message "close": one CR before the LF is dropped by the CR rule.
const closeCR = "close\r"

// rawPiece is the largest message of FramingRaw: the original server read
// into a 256-byte buffer and took each read as a message.
const rawPiece = 256

// Framer is the acknowledgement protocol of PROTOCOL.md as a pure state
// machine over bytes: it implements Protocol, and the answers it produces
// depend only on the byte stream, never on how it is split between calls
// (except with FramingRaw, where each Feed is a read).
//
// A Framer holds no buffer. An answer does not depend on a message's bytes
// except whether the message is "close", so a Framer keeps only the length
// of the unfinished message and whether its bytes so far are a prefix of
// "close\r". It is 12 bytes; the zero value is not usable, create one with
// NewFramer. Feed and End do not allocate when out has room for the answers.
type Framer struct {
	max      uint32 // MaxMessage
	n        uint32 // bytes of the unfinished message, at most max
	notClose bool   // the n pending bytes are not a prefix of "close\r"
	closed   bool   // "close" was answered; everything after is ignored
	raw      bool   // FramingRaw
}

// NewFramer returns a Framer for a connection's byte stream. maxMessage is
// the longest unfinished message held, as Config.MaxMessage; it panics if
// maxMessage is below MinMaxMessage (Config refuses those) and treats
// values above math.MaxInt32 as math.MaxInt32. Any framing other than
// FramingRaw is FramingLine.
func NewFramer(maxMessage int, framing Framing) *Framer {
	if maxMessage < MinMaxMessage {
		panic(fmt.Sprintf("server: NewFramer: maxMessage %d is below the minimum %d", maxMessage, MinMaxMessage))
	}
	f := newFramer(maxMessage, framing)
	return &f
}

// newFramer is NewFramer as a value, for engines that keep the Framer
// inside their own per-connection state instead of allocating it.
func newFramer(maxMessage int, framing Framing) Framer {
	if maxMessage > math.MaxInt32 {
		maxMessage = math.MaxInt32
	}
	return Framer{max: uint32(maxMessage), raw: framing == FramingRaw}
}

// Feed consumes in, appends an answer for every message it completes to
// out and returns the extended slice. After the message "close" it appends
// Closing, ignores the rest of in and returns close true; any later Feed
// appends nothing and returns close true.
func (f *Framer) Feed(out, in []byte) (_ []byte, close bool) {
	if f.closed {
		return out, true
	}
	if f.raw {
		return f.feedRaw(out, in)
	}
	for {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return f.hold(out, in), false
		}
		line := in[:i]
		in = in[i+1:]
		n := int(f.n)
		if i > int(f.max)-n {
			// Byte MaxMessage+1 of the line is not its LF: cut.
			out, line = f.cut(out, n, line)
			n = 0
			f.notClose = false
		}
		f.n = 0
		if total := n + len(line); total == 5 || total == 6 {
			if !f.notClose && string(line) == closeCR[n:total] {
				f.closed = true
				return append(out, Closing...), true
			}
		}
		f.notClose = false
		out = append(out, Answer...)
	}
}

// hold takes in, which has no LF, into the unfinished message, answering
// the pieces cut from it.
func (f *Framer) hold(out, in []byte) []byte {
	n := int(f.n)
	if len(in) > int(f.max)-n {
		out, in = f.cut(out, n, in)
		n = 0
		f.notClose = false
	}
	total := n + len(in)
	if !f.notClose && (total > len(closeCR) || string(in) != closeCR[n:total]) {
		f.notClose = true
	}
	f.n = uint32(total)
	return out
}

// cut answers the MaxMessage-byte pieces cut from a run of n pending bytes
// followed by b, which has no LF and makes the run longer than MaxMessage.
// It returns the bytes at the end of b that remain, between 1 and
// MaxMessage of them.
func (f *Framer) cut(out []byte, n int, b []byte) (_, rest []byte) {
	max := int(f.max)
	b = b[max-n:] // the first cut: the pending bytes and the head of b
	out = append(out, Answer...)
	for len(b) > max {
		b = b[max:]
		out = append(out, Answer...)
	}
	return out, b
}

// feedRaw answers each rawPiece-byte piece of in as one message.
func (f *Framer) feedRaw(out, in []byte) ([]byte, bool) {
	for len(in) > 0 {
		p := in[:min(len(in), rawPiece)]
		in = in[len(p):]
		if string(p) == "close\n" {
			f.closed = true
			return append(out, Closing...), true
		}
		out = append(out, Answer...)
	}
	return out, false
}

// End answers the unfinished message, if any, as if it ended with LF: the
// CR rule applies, and a pending "close" or "close\r" gets Closing. With
// nothing pending, after "close", or with FramingRaw, it appends nothing.
func (f *Framer) End(out []byte) []byte {
	if f.closed || f.n == 0 {
		return out
	}
	n := f.n
	f.n = 0
	if !f.notClose && (n == 5 || n == 6) {
		f.closed = true
		return append(out, Closing...)
	}
	f.notClose = false
	return append(out, Answer...)
}

// TracingFramer is a Framer that also reports every message it answers,
// for debug logging. It keeps the unfinished message, at most MaxMessage
// bytes, in a buffer that grows with the bytes held, never ahead of them:
// a client that sent one byte costs a few bytes, whatever MaxMessage. Once
// the buffer has reached a connection's longest message, Feed and End do
// not allocate when out has room for the answers. Its answers are exactly
// a Framer's.
type TracingFramer struct {
	f     Framer
	buf   []byte
	trace func(msg []byte, cut bool)
}

// NewTracingFramer returns a TracingFramer that calls trace once for every
// message, in order, before Feed or End returns. msg is the message's bytes
// after the CR rule (with FramingRaw, the piece as read); cut is true for a
// piece cut from a line longer than MaxMessage. trace must not retain msg.
// maxMessage and framing are as for NewFramer.
func NewTracingFramer(maxMessage int, framing Framing, trace func(msg []byte, cut bool)) *TracingFramer {
	return &TracingFramer{f: *NewFramer(maxMessage, framing), trace: trace}
}

// Feed is Framer.Feed, tracing each message it completes.
func (t *TracingFramer) Feed(out, in []byte) (_ []byte, close bool) {
	if !t.f.closed {
		if t.f.raw {
			t.traceRaw(in)
		} else {
			t.traceLine(in)
		}
	}
	return t.f.Feed(out, in)
}

// traceRaw traces the pieces FramingRaw makes of in, up to "close\n".
func (t *TracingFramer) traceRaw(in []byte) {
	for len(in) > 0 {
		p := in[:min(len(in), rawPiece)]
		in = in[len(p):]
		t.trace(p, false)
		if string(p) == "close\n" {
			return
		}
	}
}

// traceLine traces the messages of in completed by an LF or a cut, up to
// "close", and keeps the unfinished rest in t.buf.
func (t *TracingFramer) traceLine(in []byte) {
	max := int(t.f.max)
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		seg := in
		if i >= 0 {
			seg, in = in[:i], in[i+1:]
		} else {
			in = nil
		}
		for len(t.buf)+len(seg) > max {
			k := max - len(t.buf)
			t.hold(seg[:k])
			seg = seg[k:]
			t.trace(t.buf, true)
			t.buf = t.buf[:0]
		}
		t.hold(seg)
		if i >= 0 && t.line() {
			return
		}
	}
}

// hold appends b to the unfinished message. The buffer grows with what
// arrives, doubling, but never past MaxMessage, which traceLine keeps the
// message within.
func (t *TracingFramer) hold(b []byte) {
	if need := len(t.buf) + len(b); need > cap(t.buf) {
		nb := make([]byte, len(t.buf), min(max(2*cap(t.buf), need, 64), int(t.f.max)))
		copy(nb, t.buf)
		t.buf = nb
	}
	t.buf = append(t.buf, b...)
}

// line traces the unfinished message as a complete one and reports whether
// it was "close".
func (t *TracingFramer) line() bool {
	msg := t.buf
	if len(msg) > 0 && msg[len(msg)-1] == '\r' {
		msg = msg[:len(msg)-1]
	}
	t.trace(msg, false)
	t.buf = t.buf[:0]
	return string(msg) == "close"
}

// End is Framer.End, tracing the unfinished message it answers.
func (t *TracingFramer) End(out []byte) []byte {
	if !t.f.closed && !t.f.raw && len(t.buf) > 0 {
		t.line()
	}
	return t.f.End(out)
}
