package httpparse

import (
	"fmt"
	"strings"
	"testing"
)

// wrk is TechEmpower's plaintext request as wrk sends it.
const wrk = "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\n" +
	"Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\n" +
	"Connection: keep-alive\r\n\r\n"

// event is a request Feed completed, and where its head ended.
type event struct {
	r   Request
	end int
}

// feedAll feeds the pieces to a new Parser, each until it is taken.
func feedAll(t *testing.T, pieces ...string) []event {
	t.Helper()
	p := Parser{Path: "/plaintext"}
	var evs []event
	off := 0
	for _, s := range pieces {
		b := []byte(s)
		for len(b) > 0 {
			n, r, ok := p.Feed(b)
			if n <= 0 || n > len(b) {
				t.Fatalf("Feed took %d bytes of %d", n, len(b))
			}
			b, off = b[n:], off+n
			if ok {
				evs = append(evs, event{r, off})
			}
		}
	}
	return evs
}

var (
	ok11  = Request{Method: MethodGET, Match: true, Minor: 1, KeepAlive: true}
	bad   = Request{Status: 400}
	large = Request{Status: 431}
)

// TestRequests: one request each, whole, against what RFC 9112 and the
// package's choices say.
func TestRequests(t *testing.T) {
	with := func(f func(*Request)) Request { r := ok11; f(&r); return r }
	for _, tc := range []struct {
		name, in string
		want     Request
	}{
		{"wrk", wrk, ok11},
		{"bare LF", "GET /plaintext HTTP/1.1\nHost: a\n\n", ok11},
		{"empty lines before", "\r\n\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", ok11},
		{"query", "GET /plaintext?a=b HTTP/1.1\r\nHost: a\r\n\r\n", ok11},
		{"empty Host", "GET /plaintext HTTP/1.1\r\nHost:\r\n\r\n", ok11},
		{"names any case", "GET /plaintext HTTP/1.1\r\nhOsT: a\r\ncOnNeCtIoN: ClOsE\r\n\r\n", with(func(r *Request) { r.KeepAlive = false })},
		{"close in a list", "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: x ,, close ,y\r\n\r\n", with(func(r *Request) { r.KeepAlive = false })},
		{"not close", "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: closed, clo se\r\n\r\n", ok11},
		{"1.0", "GET /plaintext HTTP/1.0\r\n\r\n", with(func(r *Request) { r.Minor, r.KeepAlive = 0, false })},
		{"1.0 keep-alive", "GET /plaintext HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", with(func(r *Request) { r.Minor = 0 })},
		{"1.0 keep-alive and close", "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", with(func(r *Request) { r.Minor, r.KeepAlive = 0, false })},
		{"1.9", "GET /plaintext HTTP/1.9\r\nHost: a\r\n\r\n", with(func(r *Request) { r.Minor = 9 })},
		{"HEAD", "HEAD /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", with(func(r *Request) { r.Method = MethodHEAD })},
		{"lower get", "get /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", with(func(r *Request) { r.Method = MethodOther })},
		{"GETS", "GETS /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", with(func(r *Request) { r.Method = MethodOther })},
		{"other path", "GET /plaintex HTTP/1.1\r\nHost: a\r\n\r\n", with(func(r *Request) { r.Match = false })},
		{"longer path", "GET /plaintext/ HTTP/1.1\r\nHost: a\r\n\r\n", with(func(r *Request) { r.Match = false })},
		{"absolute form", "GET http://a/plaintext HTTP/1.1\r\nHost: a\r\n\r\n", with(func(r *Request) { r.Match = false })},
		{"body", "POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n\r\n", with(func(r *Request) { r.Method, r.ContentLength = MethodOther, 12 })},
		{"same lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:  05 \r\n\r\n", Request{Minor: 1, KeepAlive: true, ContentLength: 5}},
		{"value with obs-text", "GET /plaintext HTTP/1.1\r\nHost: a\r\nX: \x80\xff \t x\r\n\r\n", ok11},

		{"no Host", "GET /plaintext HTTP/1.1\r\n\r\n", bad},
		{"two Hosts", "GET /plaintext HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", bad},
		{"two spaces", "GET  /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", bad},
		{"tab", "GET\t/plaintext HTTP/1.1\r\nHost: a\r\n\r\n", bad},
		{"no version", "GET /plaintext\r\nHost: a\r\n\r\n", bad},
		{"version case", "GET /plaintext http/1.1\r\nHost: a\r\n\r\n", bad},
		{"version long", "GET /plaintext HTTP/1.10\r\nHost: a\r\n\r\n", bad},
		{"space after version", "GET /plaintext HTTP/1.1 \r\nHost: a\r\n\r\n", bad},
		{"CR alone", "GET /plaintext HTTP/1.1\r\nHost: a\rb\r\n\r\n", bad},
		{"CR CR LF", "GET /plaintext HTTP/1.1\r\r\nHost: a\r\n\r\n", bad},
		{"NUL", "GET /plaintext HTTP/1.1\r\nHost: a\x00\r\n\r\n", bad},
		{"DEL", "GET /plaintext HTTP/1.1\r\nHost: a\x7f\r\n\r\n", bad},
		{"target byte", "GET /plain\x80text HTTP/1.1\r\nHost: a\r\n\r\n", bad},
		{"space before colon", "GET /plaintext HTTP/1.1\r\nHost : a\r\n\r\n", bad},
		{"no colon", "GET /plaintext HTTP/1.1\r\nHost\r\n\r\n", bad},
		{"empty name", "GET /plaintext HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", bad},
		{"obs-fold", "GET /plaintext HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", bad},
		{"space before the fields", "GET /plaintext HTTP/1.1\r\n Host: a\r\n\r\n", bad},
		{"lengths differ", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", bad},
		{"length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", bad},
		{"length sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", bad},
		{"length empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", bad},
		{"length 18 digits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000000000000\r\n\r\n", bad},
		{"length 17 digits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0099999999999999999\r\n\r\n", Request{Minor: 1, KeepAlive: true, ContentLength: maxContentLength}},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Request{Status: 501}},
		{"gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED,\r\n\r\n", Request{Status: 501}},
		{"chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", bad},
		{"chunked and length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", bad},
		{"HTTP/2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Request{Status: 505}},
		{"HTTP/0.9", "GET /plaintext\r\n", bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := feedAll(t, tc.in)
			if len(evs) != 1 || evs[0].r != tc.want {
				t.Fatalf("got %+v, want %+v", evs, tc.want)
			}
		})
	}
}

// TestLimit: a head of MaxHead bytes is read, one of MaxHead+1 is 431 at
// its last byte, and a syntax error within the limit is 400 even past it.
func TestLimit(t *testing.T) {
	pad := func(n int) string {
		h := "GET /plaintext HTTP/1.1\r\nHost: a\r\nX: "
		return h + strings.Repeat("x", n-len(h)-4) + "\r\n\r\n"
	}
	if evs := feedAll(t, pad(MaxHead)); len(evs) != 1 || evs[0].r != ok11 || evs[0].end != MaxHead {
		t.Errorf("%d bytes: got %+v", MaxHead, evs)
	}
	if evs := feedAll(t, pad(MaxHead+1)); len(evs) != 1 || evs[0].r != large || evs[0].end != MaxHead+1 {
		t.Errorf("%d bytes: got %+v", MaxHead+1, evs)
	}
	if evs := feedAll(t, strings.Repeat("\r\n", MaxHead)); len(evs) != 1 || evs[0].r != large {
		t.Errorf("empty lines: got %+v", evs)
	}
	if evs := feedAll(t, "GET /plaintext HTTP/1.1\r\nX: \x00"+strings.Repeat("x", MaxHead)); len(evs) != 1 || evs[0].r != bad {
		t.Errorf("NUL, then more than MaxHead: got %+v", evs)
	}
	// The limit is per request: a second head has its own.
	two := pad(MaxHead) + pad(MaxHead)
	if evs := feedAll(t, two[:5000], two[5000:]); len(evs) != 2 || evs[1].r != ok11 {
		t.Errorf("two heads of MaxHead: got %+v", evs)
	}
}

// pipeline is five requests, with bodies, a bare-LF one and a HEAD.
var pipeline = wrk +
	"POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello\r\n\r\n\n" +
	"GET /nothing HTTP/1.1\nHost: a\n\n" +
	"HEAD /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nG" +
	"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
	"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"

// TestSplits: the pipeline gives the same requests, ending at the same
// bytes, fed whole, byte by byte, and cut at every point into two and
// into three pieces.
func TestSplits(t *testing.T) {
	whole := feedAll(t, pipeline)
	if len(whole) != 6 {
		t.Fatalf("whole: %d requests, want 6: %+v", len(whole), whole)
	}
	want := fmt.Sprint(whole)
	var bytes []string
	for i := range len(pipeline) {
		bytes = append(bytes, pipeline[i:i+1])
	}
	if got := fmt.Sprint(feedAll(t, bytes...)); got != want {
		t.Errorf("byte by byte:\n got %s\nwant %s", got, want)
	}
	for i := range len(pipeline) + 1 {
		if got := fmt.Sprint(feedAll(t, pipeline[:i], pipeline[i:])); got != want {
			t.Fatalf("cut at %d:\n got %s\nwant %s", i, got, want)
		}
		for j := i; j <= len(pipeline); j += 7 {
			if got := fmt.Sprint(feedAll(t, pipeline[:i], pipeline[i:j], pipeline[j:])); got != want {
				t.Fatalf("cut at %d and %d:\n got %s\nwant %s", i, j, got, want)
			}
		}
	}
}

// TestAllocs: reading requests allocates nothing, whole or in pieces.
func TestAllocs(t *testing.T) {
	in := []byte(strings.Repeat(wrk, 16) + pipeline)
	p := Parser{Path: "/plaintext"}
	allocs := testing.AllocsPerRun(100, func() {
		p = Parser{Path: "/plaintext"}
		for b := in; len(b) > 0; {
			n, _, _ := p.Feed(b[:min(len(b), 7)])
			b = b[n:]
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run of %d requests", allocs, 22)
	}
}

// BenchmarkFeed reads TechEmpower's request, 16 pipelined in one read.
func BenchmarkFeed(b *testing.B) {
	in := []byte(strings.Repeat(wrk, 16))
	p := Parser{Path: "/plaintext"}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		for rest := in; len(rest) > 0; {
			n, _, _ := p.Feed(rest)
			rest = rest[n:]
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*16), "ns/request")
}
