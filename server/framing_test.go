package server_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/tcpoll/poll/server"
)

// wantOut is n answers, then Closing if closing.
func wantOut(n int, closing bool) string {
	s := strings.Repeat(server.Answer, n)
	if closing {
		s += server.Closing
	}
	return s
}

// feedAll feeds chunks to p in order, stopping at close, then calls End if eof
// and the connection is still open. It returns the output and whether Feed
// asked to close.
func feedAll(p server.Protocol, chunks [][]byte, eof bool) (string, bool) {
	var out []byte
	for _, c := range chunks {
		var closed bool
		out, closed = p.Feed(out, c)
		if closed {
			return string(out), true
		}
	}
	if eof {
		out = p.End(out)
	}
	return string(out), false
}

// splitWays returns the ways the line-framing tests feed in: whole, split at
// every single point, and byte by byte.
func splitWays(in string) map[string][][]byte {
	b := []byte(in)
	m := map[string][][]byte{"whole": {b}}
	for i := 0; i <= len(b); i++ {
		m[fmt.Sprintf("split at %d", i)] = [][]byte{b[:i], b[i:]}
	}
	var bytewise [][]byte
	for i := range b {
		bytewise = append(bytewise, b[i:i+1])
	}
	m["byte by byte"] = bytewise
	return m
}

// lineCase is a line-framing test: in fed to a fresh Framer, then End if
// eof, gives answers answers and then Closing if closing.
type lineCase struct {
	name    string
	max     int // MaxMessage; 0 means DefaultMaxMessage
	in      string
	eof     bool
	answers int
	closing bool
}

// xs is n bytes "x".
func xs(n int) string { return strings.Repeat("x", n) }

// protocolCases are the examples of PROTOCOL.md's table.
var protocolCases = []lineCase{
	{name: "hello", in: "hello\n", answers: 1},
	{name: "three in one write", in: "a\nb\nc\n", answers: 3},
	{name: "hel then lo CRLF", in: "hello\r\n", answers: 1},
	{name: "empty message", in: "\n", answers: 1},
	{name: "close", in: "close\n", closing: true},
	{name: "x close y", in: "x\nclose\ny\n", answers: 1, closing: true},
	{name: "600 bytes then LF", in: xs(600) + "\n", answers: 3},
	{name: "bye then EOF", in: "bye", eof: true, answers: 1},
	{name: "256 bytes LF", in: xs(256) + "\n", answers: 1},
	{name: "256 bytes CRLF", in: xs(256) + "\r\n", answers: 2},
	{name: "close then EOF", in: "close", eof: true, closing: true},
	{name: "EOF with nothing sent", in: "", eof: true},
}

var closeCases = []lineCase{
	{name: "close CRLF", in: "close\r\n", closing: true},
	{name: "Close", in: "Close\n", answers: 1},
	{name: "space close", in: " close\n", answers: 1},
	{name: "close space", in: "close \n", answers: 1},
	{name: "close CR CR", in: "close\r\r\n", answers: 1},
	{name: "CR close", in: "\rclose\n", answers: 1},
	{name: "clos", in: "clos\n", answers: 1},
	{name: "closed", in: "closed\n", answers: 1},
	{name: "closeclose", in: "closeclose\n", answers: 1},
	{name: "close NUL", in: "close\x00\n", answers: 1},
	{name: "NUL close", in: "\x00close\n", answers: 1},
	{name: "close CR then EOF", in: "close\r", eof: true, closing: true},
	{name: "close CR CR then EOF", in: "close\r\r", eof: true, answers: 1},
	{name: "clos then EOF", in: "clos", eof: true, answers: 1},
	{name: "hello then EOF", in: "hello", eof: true, answers: 1},
	{name: "closer then EOF", in: "closer", eof: true, answers: 1},
	{name: "xlose then EOF", in: "xlose", eof: true, answers: 1},
	{name: "close space then EOF", in: "close ", eof: true, answers: 1},
	{name: "close without LF or EOF", in: "close"},
	{name: "close CR without LF or EOF", in: "close\r"},
	{name: "close then more ignored", in: "close\nmore\nclose\n" + xs(1000), eof: true, closing: true},
	{name: "close then a partial line ignored", in: "close\npartial", eof: true, closing: true},
	{name: "close then empty line ignored", in: "close\n\n", closing: true},
	{name: "answers then close", in: "a\n\nb\r\nclose\r\nc\n", answers: 3, closing: true},
	{name: "close after a cut", max: 16, in: xs(16) + "close\n", answers: 1, closing: true},
	{name: "close CRLF after a cut", max: 16, in: xs(16) + "close\r\n", answers: 1, closing: true},
	{name: "close after two cuts", max: 16, in: xs(32) + "close\n", answers: 2, closing: true},
	{name: "close after a cut then EOF", max: 16, in: xs(16) + "close", eof: true, answers: 1, closing: true},
	{name: "close CR after a cut then EOF", max: 16, in: xs(16) + "close\r", eof: true, answers: 1, closing: true},
	{name: "close split by a cut", max: 16, in: xs(13) + "close\n", answers: 2},
	{name: "close split by a cut at c", max: 16, in: xs(15) + "close\n", answers: 2},
	{name: "cut piece ending in close", max: 16, in: xs(11) + "close" + "y\n", answers: 2},
	{name: "close filling a line", max: 16, in: xs(11) + "close\n", answers: 1},
	{name: "close after a cut CR CR", max: 16, in: xs(16) + "close\r\r\n", answers: 2},
}

var edgeCases = []lineCase{
	{name: "nothing"},
	{name: "only LFs", in: "\n\n\n", answers: 3},
	{name: "CRLF alone", in: "\r\n", answers: 1},
	{name: "CR CR LF", in: "\r\r\n", answers: 1},
	{name: "CR alone then EOF", in: "\r", eof: true, answers: 1},
	{name: "NUL", in: "\x00\n", answers: 1},
	{name: "NULs", in: "\x00\x00\x00\x00\x00\n\x00\n", answers: 2},
	{name: "invalid UTF-8", in: "\xff\xfe\xc3\n\x80\n", answers: 2},
	{name: "UTF-8", in: "héllo wörld ✓\n", answers: 1},
	{name: "no LF no EOF", in: "abc"},
	{name: "unfinished held, not answered", in: "a\nb\nc", answers: 2},
	{name: "unfinished then EOF", in: "a\nb\nc", eof: true, answers: 3},
	{name: "LF then EOF", in: "a\n", eof: true, answers: 1},
	{name: "long unfinished then EOF", in: xs(600), eof: true, answers: 3},
	{name: "long unfinished no EOF", in: xs(600), answers: 2},
	{name: "exactly max unfinished no EOF", in: xs(512), answers: 1},
	{name: "cut then CR kept", max: 16, in: xs(15) + "\r" + "y\n", answers: 2},
	{name: "CR at the cut then LF", max: 16, in: xs(15) + "\r\n", answers: 1},
	{name: "CR past the cut then LF", max: 16, in: xs(16) + "\r\n", answers: 2},
	{name: "CR CR at the cut", max: 16, in: xs(15) + "\r\r\n", answers: 2},
	{name: "many short after long", max: 16, in: xs(40) + "\na\nb\n" + xs(17) + "\n", answers: 3 + 2 + 2},
	{name: "custom 1000: 2500", max: 1000, in: xs(2500) + "\n", answers: 3},
}

// boundaryCases checks the lengths around MaxMessage for max, with LF, with
// CRLF and with EOF.
func boundaryCases(max int) []lineCase {
	var cs []lineCase
	for _, c := range []struct {
		desc      string
		n         int
		lf, crlf  int // answers with LF, with CRLF
		eofAnswer int // answers with EOF and no LF
	}{
		{"max-1", max - 1, 1, 1, 1},
		{"max", max, 1, 2, 1},
		{"max+1", max + 1, 2, 2, 2},
		{"2max", 2 * max, 2, 3, 2},
		{"2max+1", 2*max + 1, 3, 3, 3},
	} {
		name := fmt.Sprintf("max %d, %s", max, c.desc)
		cs = append(cs,
			lineCase{name: name + " LF", max: max, in: xs(c.n) + "\n", answers: c.lf},
			lineCase{name: name + " CRLF", max: max, in: xs(c.n) + "\r\n", answers: c.crlf},
			lineCase{name: name + " EOF", max: max, in: xs(c.n), eof: true, answers: c.eofAnswer},
			lineCase{name: name + " LF then hi", max: max, in: xs(c.n) + "\nhi\n", answers: c.lf + 1},
		)
	}
	return cs
}

func allLineCases() []lineCase {
	var cs []lineCase
	cs = append(cs, protocolCases...)
	cs = append(cs, closeCases...)
	cs = append(cs, edgeCases...)
	for _, max := range []int{16, 17, 256, 1000} {
		cs = append(cs, boundaryCases(max)...)
	}
	return cs
}

func (c lineCase) maxMessage() int {
	if c.max == 0 {
		return server.DefaultMaxMessage
	}
	return c.max
}

// check runs c's input through newP split every way and compares.
func (c lineCase) check(t *testing.T, newP func() server.Protocol) {
	t.Helper()
	want := wantOut(c.answers, c.closing)
	for how, chunks := range splitWays(c.in) {
		got, closed := feedAll(newP(), chunks, c.eof)
		if got != want {
			t.Errorf("%s, %s: got %q, want %q", c.name, how, got, want)
		}
		// Feed asks to close after "close" ends with LF; a "close" that
		// ends at EOF is answered by End, and the engine closes anyway.
		if closed && !c.closing {
			t.Errorf("%s, %s: Feed asked to close without closing", c.name, how)
		}
		if c.closing && !c.eof && !closed {
			t.Errorf("%s, %s: Feed did not ask to close after closing", c.name, how)
		}
	}
}

func TestFramerLine(t *testing.T) {
	for _, c := range allLineCases() {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, func() server.Protocol { return server.NewFramer(c.maxMessage(), server.FramingLine) })
		})
	}
}

func TestFramerSize(t *testing.T) {
	if got, want := unsafe.Sizeof(server.Framer{}), uintptr(16); got > want {
		t.Errorf("Framer is %d bytes, want at most %d", got, want)
	}
}

func TestFramerAfterClose(t *testing.T) {
	f := server.NewFramer(server.DefaultMaxMessage, server.FramingLine)
	out, closed := f.Feed(nil, []byte("a\nclose\nb\n"))
	if got, want := string(out), wantOut(1, true); got != want || !closed {
		t.Fatalf("got %q, %v, want %q, true", got, closed, want)
	}
	out, closed = f.Feed(nil, []byte("c\nclose\n"))
	if len(out) != 0 || !closed {
		t.Errorf("Feed after close: got %q, %v, want nothing, true", out, closed)
	}
	if out = f.End(nil); len(out) != 0 {
		t.Errorf("End after close: got %q, want nothing", out)
	}
}

func TestFramerEndTwice(t *testing.T) {
	f := server.NewFramer(server.DefaultMaxMessage, server.FramingLine)
	out, _ := f.Feed(nil, []byte("abc"))
	out = f.End(out)
	out = f.End(out)
	if got, want := string(out), wantOut(1, false); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFramerAppends(t *testing.T) {
	f := server.NewFramer(server.DefaultMaxMessage, server.FramingLine)
	out, _ := f.Feed([]byte("prefix:"), []byte("a\n"))
	if got, want := string(out), "prefix:"+server.Answer; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFramerFeedDoesNotWriteIn(t *testing.T) {
	in := []byte("a\r\nclose\r\n" + xs(600))
	orig := bytes.Clone(in)
	for _, framing := range []server.Framing{server.FramingLine, server.FramingRaw} {
		server.NewFramer(16, framing).Feed(nil, in)
		server.NewTracingFramer(16, framing, func([]byte, bool) {}).Feed(nil, in)
	}
	if !bytes.Equal(in, orig) {
		t.Errorf("Feed changed its input")
	}
}

func TestNewFramerPanicsBelowMin(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("NewFramer(%d) did not panic", server.MinMaxMessage-1)
		}
	}()
	server.NewFramer(server.MinMaxMessage-1, server.FramingLine)
}

func TestFramerHugeMax(t *testing.T) {
	f := server.NewFramer(1<<40, server.FramingLine)
	out, _ := f.Feed(nil, []byte(xs(100000)+"\n"+xs(100)))
	out = f.End(out)
	if got, want := string(out), wantOut(2, false); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// rawCase is a raw-framing test: each chunk is one read.
type rawCase struct {
	name    string
	chunks  []string
	answers int
	closing bool
}

func TestFramerRaw(t *testing.T) {
	for _, c := range []rawCase{
		{name: "hello", chunks: []string{"hello\n"}, answers: 1},
		{name: "no LF needed", chunks: []string{"hello"}, answers: 1},
		{name: "each read is a message", chunks: []string{"hel", "lo\r\n"}, answers: 2},
		{name: "LFs do not split", chunks: []string{"a\nb\nc\n"}, answers: 1},
		{name: "close", chunks: []string{"close\n"}, closing: true},
		{name: "close without LF", chunks: []string{"close"}, answers: 1},
		{name: "close CRLF", chunks: []string{"close\r\n"}, answers: 1},
		{name: "close split", chunks: []string{"clo", "se\n"}, answers: 2},
		{name: "close then more ignored", chunks: []string{"a", "close\n", "b"}, answers: 1, closing: true},
		{name: "close in a longer read", chunks: []string{"x\nclose\n"}, answers: 1},
		{name: "256 bytes", chunks: []string{xs(256)}, answers: 1},
		{name: "257 bytes", chunks: []string{xs(257)}, answers: 2},
		{name: "600 bytes", chunks: []string{xs(600)}, answers: 3},
		{name: "close after 256 bytes in one read", chunks: []string{xs(256) + "close\n", "ignored"}, answers: 1, closing: true},
		{name: "close and more after 256 bytes in one read", chunks: []string{xs(256) + "close\nmore"}, answers: 2},
		{name: "close after 255 bytes in one read", chunks: []string{xs(255) + "close\n"}, answers: 2},
		{name: "empty read", chunks: []string{""}},
		{name: "NUL", chunks: []string{"\x00"}, answers: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var chunks [][]byte
			for _, s := range c.chunks {
				chunks = append(chunks, []byte(s))
			}
			want := wantOut(c.answers, c.closing)
			for _, p := range []server.Protocol{
				server.NewFramer(server.DefaultMaxMessage, server.FramingRaw),
				server.NewTracingFramer(server.DefaultMaxMessage, server.FramingRaw, func([]byte, bool) {}),
			} {
				got, closed := feedAll(p, chunks, true)
				if got != want || closed != c.closing {
					t.Errorf("%T: got %q, %v, want %q, %v", p, got, closed, want, c.closing)
				}
			}
		})
	}
}

// TestFramerRawLongRead checks that a read of more than 256 bytes is
// answered as several 256-byte reads of the same data.
func TestFramerRawLongRead(t *testing.T) {
	in := []byte(xs(256) + "close\n" + xs(1000))
	for n := 0; n <= len(in); n++ {
		long, _ := feedAll(server.NewFramer(16, server.FramingRaw), [][]byte{in[:n]}, true)
		var reads [][]byte
		for b := in[:n]; len(b) > 0; b = b[min(len(b), 256):] {
			reads = append(reads, b[:min(len(b), 256)])
		}
		short, _ := feedAll(server.NewFramer(16, server.FramingRaw), reads, true)
		if long != short {
			t.Fatalf("%d bytes: one read gave %q, 256-byte reads gave %q", n, long, short)
		}
	}
}

// traced is a message as TracingFramer reports it.
type traced struct {
	msg string
	cut bool
}

func (t traced) String() string { return fmt.Sprintf("{%q cut=%v}", t.msg, t.cut) }

func newTracer(max int, framing server.Framing, log *[]traced) *server.TracingFramer {
	return server.NewTracingFramer(max, framing, func(msg []byte, cut bool) {
		if framing == server.FramingLine && len(msg) > max {
			panic(fmt.Sprintf("traced message of %d bytes, over MaxMessage %d", len(msg), max))
		}
		*log = append(*log, traced{string(msg), cut})
	})
}

// TestTracingFramerLine checks that TracingFramer answers as Framer does
// and traces one message per answer, however the input is split.
func TestTracingFramerLine(t *testing.T) {
	for _, c := range allLineCases() {
		t.Run(c.name, func(t *testing.T) {
			var log []traced
			c.check(t, func() server.Protocol {
				log = log[:0]
				return newTracer(c.maxMessage(), server.FramingLine, &log)
			})
			want := c.answers
			if c.closing {
				want++
			}
			var wantLog []traced
			for how, chunks := range splitWays(c.in) {
				log = log[:0]
				feedAll(newTracer(c.maxMessage(), server.FramingLine, &log), chunks, c.eof)
				if len(log) != want {
					t.Errorf("%s: traced %d messages, want %d: %v", how, len(log), want, log)
				}
				if wantLog == nil {
					wantLog = append([]traced{}, log...)
				} else if !slices.Equal(log, wantLog) {
					t.Errorf("%s: traced %v, want %v", how, log, wantLog)
				}
				if c.closing && (len(log) == 0 || log[len(log)-1] != traced{"close", false}) {
					t.Errorf("%s: traced %v, want close last", how, log)
				}
			}
		})
	}
}

func TestTracingFramerMessages(t *testing.T) {
	for _, c := range []struct {
		name    string
		framing server.Framing
		chunks  []string
		eof     bool
		want    []traced
	}{
		{
			name:   "CR rule",
			chunks: []string{"a\r\n", "b\n", "\r\n", "c\r\r\n"},
			want:   []traced{{"a", false}, {"b", false}, {"", false}, {"c\r", false}},
		},
		{
			name:   "cuts keep CR",
			chunks: []string{xs(15) + "\r" + xs(20) + "\r\n"},
			want:   []traced{{xs(15) + "\r", true}, {xs(16), true}, {"xxxx", false}},
		},
		{
			name:   "close after a cut",
			chunks: []string{xs(16), "close\r", "\nignored\n"},
			want:   []traced{{xs(16), true}, {"close", false}},
		},
		{
			name:   "EOF",
			chunks: []string{"a\nclo", "se\r"},
			eof:    true,
			want:   []traced{{"a", false}, {"close", false}},
		},
		{
			name:   "EOF with nothing pending",
			chunks: []string{"a\n"},
			eof:    true,
			want:   []traced{{"a", false}},
		},
		{
			name:    "raw",
			framing: server.FramingRaw,
			chunks:  []string{"a\r\n", xs(300), "close\n", "ignored"},
			eof:     true,
			want:    []traced{{"a\r\n", false}, {xs(256), false}, {xs(44), false}, {"close\n", false}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log []traced
			tf := newTracer(16, c.framing, &log)
			f := server.NewFramer(16, c.framing)
			var chunks [][]byte
			for _, s := range c.chunks {
				chunks = append(chunks, []byte(s))
			}
			got, gotClosed := feedAll(tf, chunks, c.eof)
			want, wantClosed := feedAll(f, chunks, c.eof)
			if got != want || gotClosed != wantClosed {
				t.Errorf("TracingFramer gave %q, %v; Framer gave %q, %v", got, gotClosed, want, wantClosed)
			}
			if !slices.Equal(log, c.want) {
				t.Errorf("traced %v, want %v", log, c.want)
			}
		})
	}
}

// shortInput is 4 KiB of 16-byte messages, LF included.
var shortInput = bytes.Repeat([]byte("0123456789abcde\n"), 256)

func TestFramerAllocs(t *testing.T) {
	long := []byte(xs(1000) + "\r\n" + xs(200) + "\n" + xs(100))
	for _, c := range []struct {
		name string
		p    server.Protocol
		in   []byte
	}{
		{"Framer short", server.NewFramer(256, server.FramingLine), shortInput},
		{"Framer long", server.NewFramer(256, server.FramingLine), long},
		{"Framer raw", server.NewFramer(256, server.FramingRaw), long},
		{"TracingFramer short", server.NewTracingFramer(256, server.FramingLine, func([]byte, bool) {}), shortInput},
		{"TracingFramer long", server.NewTracingFramer(256, server.FramingLine, func([]byte, bool) {}), long},
		{"TracingFramer raw", server.NewTracingFramer(256, server.FramingRaw, func([]byte, bool) {}), long},
	} {
		out := make([]byte, 0, len(c.in)*server.MaxExpansion)
		c.p.Feed(out, c.in) // warm up
		if got := testing.AllocsPerRun(100, func() {
			c.p.Feed(out[:0], c.in)
			c.p.End(out[:0])
		}); got != 0 {
			t.Errorf("%s: got %v allocs per Feed, want 0", c.name, got)
		}
	}
}

// TestFramerMaxExpansion checks the bound engines rely on.
func TestFramerMaxExpansion(t *testing.T) {
	for _, in := range []string{"\n", "\n\n\n", "\r\n", xs(16), xs(17), xs(33) + "\n"} {
		f := server.NewFramer(16, server.FramingLine)
		out, _ := f.Feed(nil, []byte(in))
		if len(out) > len(in)*server.MaxExpansion {
			t.Errorf("%q: %d bytes out, over %d per byte in", in, len(out), server.MaxExpansion)
		}
	}
}

func BenchmarkFramingShort(b *testing.B) {
	f := server.NewFramer(server.DefaultMaxMessage, server.FramingLine)
	out := make([]byte, 0, len(shortInput)/16*len(server.Answer))
	b.SetBytes(int64(len(shortInput)))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = f.Feed(out[:0], shortInput)
	}
}

func BenchmarkFramingLong(b *testing.B) {
	for _, n := range []int{200, 1000} {
		b.Run(fmt.Sprintf("%d-byte lines", n), func(b *testing.B) {
			in := bytes.Repeat([]byte(xs(n-1)+"\n"), 4096/n+1)
			f := server.NewFramer(server.DefaultMaxMessage, server.FramingLine)
			out := make([]byte, 0, len(in)*server.MaxExpansion)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				out, _ = f.Feed(out[:0], in)
			}
		})
	}
}

func BenchmarkTracingFramerShort(b *testing.B) {
	f := server.NewTracingFramer(server.DefaultMaxMessage, server.FramingLine, func([]byte, bool) {})
	out := make([]byte, 0, len(shortInput)/16*len(server.Answer))
	b.SetBytes(int64(len(shortInput)))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = f.Feed(out[:0], shortInput)
	}
}
