package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// The reference model: PROTOCOL.md read word by word, as plainly as
// possible, with no regard for speed or memory. It shares no code with the
// Framer.

// refMsg is a message of the reference model.
type refMsg struct {
	msg string // after the CR rule; for a cut piece, the raw bytes
	cut bool   // taken by a cut, not ended by LF or EOF
}

func (m refMsg) String() string { return fmt.Sprintf("{%q cut=%v}", m.msg, m.cut) }

// refLine is line framing. It returns the messages of stream, the answers
// to them, and how many bytes of stream it read: all of them, or those up
// to the end of the message "close". With eof, an unfinished message at
// the end is answered as if it ended with LF.
func refLine(stream []byte, maxMessage int, eof bool) (msgs []refMsg, out string, read int) {
	var cur []byte // the unfinished message, raw
	var sb strings.Builder
	// end completes cur as a message that ended with LF (or EOF) and
	// reports whether it was "close".
	end := func() bool {
		m := cur
		if len(m) > 0 && m[len(m)-1] == '\r' {
			m = m[:len(m)-1] // one CR right before the LF is dropped
		}
		msgs = append(msgs, refMsg{msg: string(m)})
		cur = nil
		if string(m) == "close" {
			sb.WriteString("closing")
			return true
		}
		sb.WriteString("I recieved your message\n")
		return false
	}
	for i, b := range stream {
		if b == '\n' {
			if end() {
				return msgs, sb.String(), i + 1
			}
			continue
		}
		if len(cur) == maxMessage {
			// Byte MaxMessage+1 arrived and is not LF: the first
			// MaxMessage bytes are a message, kept whole.
			msgs = append(msgs, refMsg{msg: string(cur), cut: true})
			sb.WriteString("I recieved your message\n")
			cur = nil
		}
		cur = append(cur, b)
	}
	if eof && len(cur) > 0 {
		end()
	}
	return msgs, sb.String(), len(stream)
}

// refRaw is raw framing: every read of up to 256 bytes is a message, a
// longer read counts as several, and a read of exactly "close\n" closes.
func refRaw(reads [][]byte) (msgs []refMsg, out string) {
	var sb strings.Builder
	for _, r := range reads {
		for len(r) > 0 {
			n := min(len(r), 256)
			msgs = append(msgs, refMsg{msg: string(r[:n])})
			if string(r[:n]) == "close\n" {
				sb.WriteString("closing")
				return msgs, sb.String()
			}
			sb.WriteString("I recieved your message\n")
			r = r[n:]
		}
	}
	return msgs, sb.String()
}

// maxMessage maps a fuzzed number to a MaxMessage in 16..1024, keeping
// those already in range.
func maxMessage(m uint16) int {
	n := int(m)
	if n < server.MinMaxMessage {
		return server.MinMaxMessage
	}
	if n > 1024 {
		return server.MinMaxMessage + n%(1024-server.MinMaxMessage+1)
	}
	return n
}

// pieces splits stream where cuts says: each byte of cuts is the length of
// the next piece (below 250 as is, from 250 up (b-249)*200 bytes); the
// rest of stream is the last piece. Pieces may be empty.
func pieces(stream, cuts []byte) [][]byte {
	var ps [][]byte
	for _, c := range cuts {
		n := int(c)
		if c >= 250 {
			n = (n - 249) * 200
		}
		n = min(n, len(stream))
		ps = append(ps, stream[:n])
		stream = stream[n:]
	}
	return append(ps, stream)
}

// checkShape checks that out is answers followed by at most one Closing.
func checkShape(t *testing.T, out string) {
	t.Helper()
	rest := strings.TrimSuffix(out, server.Closing)
	if len(rest)%len(server.Answer) != 0 || rest != strings.Repeat(server.Answer, len(rest)/len(server.Answer)) {
		t.Errorf("output is not answers then at most one Closing: %q", out)
	}
}

// feed runs p over ps, stopping at close. It returns the output before
// End, the output after End (unless closed) and whether Feed closed.
func feed(p server.Protocol, ps [][]byte) (beforeEnd, afterEnd string, closed bool) {
	var out []byte
	for _, b := range ps {
		out, closed = p.Feed(out, b)
		if closed {
			return string(out), string(out), true
		}
	}
	beforeEnd = string(out)
	return beforeEnd, string(p.End(out)), false
}

func FuzzFraming(f *testing.F) {
	// stream, MaxMessage (clamped to 16..1024), raw framing, piece lengths.
	// PROTOCOL.md's examples.
	f.Add([]byte("hello\n"), uint16(256), false, []byte{})
	f.Add([]byte("a\nb\nc\n"), uint16(256), false, []byte{})
	f.Add([]byte("hello\r\n"), uint16(256), false, []byte{3})
	f.Add([]byte("\n"), uint16(256), false, []byte{})
	f.Add([]byte("close\n"), uint16(256), false, []byte{})
	f.Add([]byte("x\nclose\ny\n"), uint16(256), false, []byte{})
	f.Add(append(bytes.Repeat([]byte("x"), 600), '\n'), uint16(256), false, []byte{100, 200})
	f.Add([]byte("bye"), uint16(256), false, []byte{})
	f.Add(append(bytes.Repeat([]byte("x"), 256), '\n'), uint16(256), false, []byte{})
	f.Add(append(bytes.Repeat([]byte("x"), 256), "\r\n"...), uint16(256), false, []byte{})
	f.Add([]byte("close"), uint16(256), false, []byte{})
	f.Add([]byte{}, uint16(256), false, []byte{})
	// Long lines and a CR at the cut, with MaxMessage 16.
	f.Add([]byte("0123456789abcdef0123456789abcdef\n"), uint16(16), false, []byte{})
	f.Add([]byte("0123456789abcdef0123456789abcdef0\n"), uint16(16), false, []byte{16, 1})
	f.Add([]byte("0123456789abcde\r\n0123456789abcdef\r\n"), uint16(16), false, []byte{15, 1, 1})
	f.Add([]byte("0123456789abcde\r\r\n"), uint16(16), false, []byte{})
	// close variants: CRLF, split, case, spaces, a CR too many, after a
	// cut, split by a cut, at EOF, followed by more.
	f.Add([]byte("close\r\n"), uint16(256), false, []byte{5})
	f.Add([]byte("close\r"), uint16(256), false, []byte{2})
	f.Add([]byte("hello"), uint16(256), false, []byte{})
	f.Add([]byte("Close\n close\nclose \nclose\r\r\n"), uint16(256), false, []byte{})
	f.Add([]byte("0123456789abcdefclose\r\n"), uint16(16), false, []byte{})
	f.Add([]byte("0123456789abcclose\n"), uint16(16), false, []byte{})
	f.Add([]byte("close\nmore\nclose\n"), uint16(256), false, []byte{1, 1, 1, 1, 1, 1, 1})
	// Binary messages.
	f.Add([]byte("\x00\xff\xfe\n\r\r\n\x00close\n"), uint16(1000), false, []byte{})
	// Raw framing: reads of all sizes, close alone or not in its read.
	f.Add([]byte("hello\nclose\n"), uint16(256), true, []byte{6})
	f.Add([]byte("hello\nclose\n"), uint16(256), true, []byte{})
	f.Add(append(bytes.Repeat([]byte("x"), 256), "close\n"...), uint16(256), true, []byte{250})
	f.Add([]byte("close\r\nclose"), uint16(256), true, []byte{7})

	f.Fuzz(func(t *testing.T, stream []byte, maxMsg uint16, raw bool, cuts []byte) {
		m := maxMessage(maxMsg)
		ps := pieces(stream, cuts)
		var traced []refMsg
		trace := func(msg []byte, cut bool) {
			if !raw && (len(msg) > m || cap(msg) > m) {
				t.Errorf("TracingFramer holds %d bytes (cap %d), over MaxMessage %d", len(msg), cap(msg), m)
			}
			traced = append(traced, refMsg{msg: string(msg), cut: cut})
		}

		if raw {
			wantMsgs, want := refRaw(ps)
			got, after, _ := feed(server.NewFramer(m, server.FramingRaw), ps)
			if got != want || after != want {
				t.Errorf("Framer: got %q, then %q after EOF, want %q", got, after, want)
			}
			got, after, _ = feed(server.NewTracingFramer(m, server.FramingRaw, trace), ps)
			if got != want || after != want {
				t.Errorf("TracingFramer: got %q, then %q after EOF, want %q", got, after, want)
			}
			if !slices.Equal(traced, wantMsgs) {
				t.Errorf("traced %v, want %v", traced, wantMsgs)
			}
			checkShape(t, got)
			if len(got) > len(stream)*server.MaxExpansion {
				t.Errorf("%d bytes out for %d in, over MaxExpansion", len(got), len(stream))
			}
			return
		}

		_, wantBefore, _ := refLine(stream, m, false)
		wantMsgs, want, read := refLine(stream, m, true)
		// Feed closes after a "close" ended by LF; End answers one at EOF.
		wantClosed := strings.HasSuffix(wantBefore, server.Closing)
		for _, c := range []struct {
			how string
			p   server.Protocol
			ps  [][]byte
		}{
			{"whole", server.NewFramer(m, server.FramingLine), [][]byte{stream}},
			{"in pieces", server.NewFramer(m, server.FramingLine), ps},
			{"traced in pieces", server.NewTracingFramer(m, server.FramingLine, trace), ps},
		} {
			before, after, closed := feed(c.p, c.ps)
			if before != wantBefore {
				t.Errorf("%s, before EOF: got %q, want %q", c.how, before, wantBefore)
			}
			if after != want {
				t.Errorf("%s, after EOF: got %q, want %q", c.how, after, want)
			}
			if closed != wantClosed {
				t.Errorf("%s: got close %v, want %v", c.how, closed, wantClosed)
			}
			checkShape(t, after)
			if len(after) > read*server.MaxExpansion {
				t.Errorf("%s: %d bytes out for %d in, over MaxExpansion", c.how, len(after), read)
			}
		}
		if !slices.Equal(traced, wantMsgs) {
			t.Errorf("traced %v, want %v", traced, wantMsgs)
		}
	})
}

// testServer is a server started on first use and never stopped: it
// lives as long as the fuzzing process.
type testServer struct {
	once   sync.Once
	addr   string
	engine string
	err    error
}

// servers are the servers FuzzServer talks to: MaxMessage 16 and the
// default.
var servers = map[int]*testServer{16: {}, server.DefaultMaxMessage: {}}

func serverAddr(t *testing.T, maxMessage int) string {
	t.Helper()
	ts := servers[maxMessage]
	ts.once.Do(func() {
		s, err := server.New(server.Config{Addr: "127.0.0.1:0", MaxMessage: maxMessage})
		if err != nil {
			ts.err = err
			return
		}
		go s.Serve(context.Background())
		ts.addr, ts.engine = s.Addr().String(), s.Engine()
	})
	if ts.err != nil {
		t.Fatalf("starting a server: %v", ts.err)
	}
	return ts.addr
}

// serverEngine names the engine the servers of this build run on.
func serverEngine(t *testing.T, maxMessage int) string {
	serverAddr(t, maxMessage)
	return servers[maxMessage].engine
}

func FuzzServer(f *testing.F) {
	// stream, MaxMessage 16 (else 256), piece lengths: each piece is one
	// write, with a pause after it.
	f.Add([]byte("hello\n"), false, []byte{})
	f.Add([]byte("hello\r\n"), false, []byte{3})
	f.Add([]byte("a\nb\nc\n\n"), false, []byte{1, 1, 1})
	f.Add([]byte("x\nclose\ny\n"), false, []byte{})
	f.Add([]byte("bye"), false, []byte{})
	f.Add([]byte("close"), false, []byte{})
	f.Add([]byte("clo"), false, []byte{2})
	f.Add([]byte{}, false, []byte{})
	f.Add(append(bytes.Repeat([]byte("x"), 600), '\n'), false, []byte{100, 200})
	f.Add(append(bytes.Repeat([]byte("x"), 256), "\r\n"...), false, []byte{255})
	f.Add([]byte("0123456789abcde\r\n0123456789abcdef\r\nclose\r\n"), true, []byte{15, 1, 1})
	f.Add([]byte("0123456789abcdefclose"), true, []byte{16})
	f.Add(bytes.Repeat([]byte("0123456789abcde\n"), 4096), true, []byte{250, 255})

	f.Fuzz(func(t *testing.T, stream []byte, small bool, cuts []byte) {
		m := server.DefaultMaxMessage
		if small {
			m = 16
		}
		// evio closes a connection at EOF before its Closed callback runs
		// (evio_unix.go, loopRead: a read of 0 bytes goes straight to
		// loopCloseConn), so no engine on it can answer a message pending
		// at EOF: that one difference is pinned here, the rest must agree.
		_, want, read := refLine(stream, m, serverEngine(t, m) != "evio")
		// A client that writes past "close" may be reset by the server's
		// kernel before it reads the answers; the model says what such
		// bytes do (nothing), so they are not sent.
		stream = stream[:read]
		if len(cuts) > 64 {
			cuts = cuts[:64]
		}

		conn, err := net.Dial("tcp", serverAddr(t, m))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))

		type result struct {
			got []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			got, err := io.ReadAll(conn)
			done <- result{got, err}
		}()
		closing := strings.HasSuffix(want, server.Closing)
		var werr error
		for i, p := range pieces(stream, cuts) {
			if i > 0 {
				time.Sleep(50 * time.Microsecond)
			}
			if _, werr = conn.Write(p); werr != nil {
				break
			}
		}
		if werr == nil {
			werr = conn.(*net.TCPConn).CloseWrite()
		}
		if werr != nil && !closing {
			t.Errorf("writing: %v", werr)
		}
		r := <-done
		// After closing, the server's kernel resets the connection if our
		// FIN arrives after its close; the answers were read before.
		if r.err != nil && !(closing && errors.Is(r.err, syscall.ECONNRESET)) {
			t.Errorf("reading: %v", r.err)
		}
		if string(r.got) != want {
			t.Errorf("got %d bytes %.200q, want %d bytes %.200q", len(r.got), r.got, len(want), want)
		}
	})
}
