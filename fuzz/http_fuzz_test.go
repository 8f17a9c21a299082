package fuzz

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/tcpoll/poll/examples/http/httpparse"
)

// The reference model of HTTP/1.1 request heads: RFC 9112 read word by
// word over the whole stream at once, line by line, with strings, as
// plainly as possible. It shares no code with httpparse. Where the RFC
// leaves a choice, it makes the one httpparse documents (bare LF accepted,
// no obs-fold, Content-Length lists refused, Transfer-Encoding 501 or
// 400).

// refPath is the path the parser and the model match.
const refPath = "/plaintext"

// refEvent is a request the model reads: its verdict, and for a request
// to answer, the offset just past its head.
type refEvent struct {
	r   httpparse.Request
	end int
}

func (e refEvent) String() string { return fmt.Sprintf("%+v@%d", e.r, e.end) }

// refLines splits the head at the start of s into its request line and
// field lines, skipping the empty lines before the request line: each
// line ends with LF, and one CR before the LF is not part of it (RFC 9112,
// 2.2). It returns the head's length, or complete false if s ends first.
func refLines(s string) (reqLine string, fields []string, n int, complete bool) {
	i := 0
	next := func() (string, bool) {
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			return "", false
		}
		line := s[i : i+j]
		i += j + 1
		return strings.TrimSuffix(line, "\r"), true
	}
	for {
		line, ok := next()
		if !ok {
			return "", nil, 0, false
		}
		if line != "" {
			reqLine = line
			break
		}
	}
	for {
		line, ok := next()
		if !ok {
			return "", nil, 0, false
		}
		if line == "" {
			return reqLine, fields, i, true
		}
		fields = append(fields, line)
	}
}

func isTchar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	for i := range len(s) {
		if !isTchar(s[i]) {
			return false
		}
	}
	return s != ""
}

// asciiLower lowers A-Z only: field values may hold any byte.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// refElements is a comma-separated list's elements, whitespace trimmed,
// empty ones dropped (RFC 9110, 5.6.1), lowered.
func refElements(values []string) []string {
	var out []string
	for _, e := range strings.Split(strings.Join(values, ","), ",") {
		if e = strings.Trim(e, " \t"); e != "" {
			out = append(out, asciiLower(e))
		}
	}
	return out
}

// refHead judges a complete head, as refLines cut it: whether its syntax
// is RFC 9112's and, if so, the request or its error status.
func refHead(reqLine string, fields []string) (syntaxOK bool, r httpparse.Request) {
	// request-line = method SP request-target SP HTTP-version
	parts := strings.Split(reqLine, " ")
	if len(parts) != 3 || !isToken(parts[0]) || parts[1] == "" {
		return false, r
	}
	for i := range len(parts[1]) {
		if c := parts[1][i]; c < 0x21 || c > 0x7e {
			return false, r
		}
	}
	v := parts[2]
	if len(v) != 8 || !strings.HasPrefix(v, "HTTP/") || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return false, r
	}
	// field-line = field-name ":" OWS field-value OWS
	values := map[string][]string{}
	for _, f := range fields {
		name, value, ok := strings.Cut(f, ":")
		if !ok || !isToken(name) {
			return false, r // includes a line starting with whitespace
		}
		for i := range len(value) {
			c := value[i]
			if c != ' ' && c != '\t' && (c < 0x21 || c == 0x7f) {
				return false, r
			}
		}
		name = asciiLower(name)
		values[name] = append(values[name], strings.Trim(value, " \t"))
	}

	// Then, in the order httpparse documents.
	minor := v[7] - '0'
	cls := values["content-length"]
	te, hasTE := values["transfer-encoding"]
	clBad := false
	for _, cl := range cls {
		digits := cl != ""
		for i := range len(cl) {
			digits = digits && '0' <= cl[i] && cl[i] <= '9'
		}
		if !digits || len(strings.TrimLeft(cl, "0")) > 17 || strings.TrimLeft(cl, "0") != strings.TrimLeft(cls[0], "0") {
			clBad = true
		}
	}
	switch {
	case v[5] != '1':
		r.Status = 505
	case len(values["host"]) == 0 && minor > 0, len(values["host"]) > 1:
		r.Status = 400
	case clBad:
		r.Status = 400
	case hasTE && len(cls) > 0:
		r.Status = 400
	case hasTE:
		codings := refElements(te)
		if len(codings) > 0 && codings[len(codings)-1] == "chunked" {
			r.Status = 501
		} else {
			r.Status = 400
		}
	}
	if r.Status != 0 {
		return true, r
	}
	switch parts[0] {
	case "GET":
		r.Method = httpparse.MethodGET
	case "HEAD":
		r.Method = httpparse.MethodHEAD
	}
	path, _, _ := strings.Cut(parts[1], "?")
	r.Match = path == refPath
	r.Minor = minor
	conn := refElements(values["connection"])
	close, keep := false, false
	for _, o := range conn {
		close = close || o == "close"
		keep = keep || o == "keep-alive"
	}
	r.KeepAlive = !close && (minor > 0 || keep)
	if len(cls) > 0 {
		for _, c := range strings.TrimLeft(cls[0], "0") {
			r.ContentLength = r.ContentLength*10 + int64(c-'0')
		}
	}
	return true, r
}

// refCompletions end an unfinished head wherever it stops: in the empty
// lines before it, the method, the target, the version, a field's name
// or value, or a line's CR.
var refCompletions = func() []string {
	const fields = "\r\nHost: x\r\n\r\n"
	c := []string{
		"GET / HTTP/1.1" + fields,
		"\nGET / HTTP/1.1" + fields,
		"\n\r\n", "\r\n", "\r\n\r\n", ":\r\n\r\n", "\n",
		"/ HTTP/1.1" + fields,
	}
	v := " HTTP/1.1"
	for j := range len(v) + 1 {
		c = append(c, v[j:]+fields)
	}
	return c
}()

// refViable reports whether the unfinished head s can still become one
// of valid syntax: whether some way of ending it does.
func refViable(s string) bool {
	for _, c := range refCompletions {
		// A completion may leave garbage unfinished (" " + "\r\n"):
		// then it is no valid head either.
		reqLine, fields, _, complete := refLines(s + c)
		if complete {
			if ok, _ := refHead(reqLine, fields); ok {
				return true
			}
		}
	}
	return false
}

// refHTTP is the model: the requests of stream, each with its verdict,
// up to the first error. A request's body, by its Content-Length, is
// skipped; a head of more than MaxHead bytes, or unfinished at more, is
// 431 unless its first MaxHead bytes could begin no valid head (400).
func refHTTP(stream []byte) []refEvent {
	s := string(stream)
	var events []refEvent
	for pos := 0; pos < len(s); {
		rest := s[pos:]
		reqLine, fields, n, complete := refLines(rest)
		if n > httpparse.MaxHead || !complete && len(rest) > httpparse.MaxHead {
			status := 431
			if !refViable(rest[:httpparse.MaxHead]) {
				status = 400
			}
			return append(events, refEvent{r: httpparse.Request{Status: status}})
		}
		if !complete {
			if !refViable(rest) {
				events = append(events, refEvent{r: httpparse.Request{Status: 400}})
			}
			return events
		}
		ok, r := refHead(reqLine, fields)
		if !ok {
			r = httpparse.Request{Status: 400}
		}
		if r.Status != 0 {
			return append(events, refEvent{r: r})
		}
		pos += n
		events = append(events, refEvent{r: r, end: pos})
		if r.ContentLength > int64(len(s)-pos) {
			return events
		}
		pos += int(r.ContentLength)
	}
	return events
}

// feedHTTP runs a Parser over ps, as a server would: each piece fed until
// it is taken. Errors' offsets are kept, unlike the model's.
func feedHTTP(ps [][]byte) []refEvent {
	p := httpparse.Parser{Path: refPath}
	var events []refEvent
	off := 0
	for _, b := range ps {
		for len(b) > 0 {
			n, r, ok := p.Feed(b)
			if n <= 0 || n > len(b) {
				panic(fmt.Sprintf("Feed took %d bytes of %d", n, len(b)))
			}
			b = b[n:]
			off += n
			if ok {
				events = append(events, refEvent{r: r, end: off})
			}
		}
	}
	return events
}

func FuzzHTTPRequest(f *testing.F) {
	// stream, piece lengths (see pieces).
	// TechEmpower's request, as wrk sends it, twice pipelined.
	wrk := "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\nConnection: keep-alive\r\n\r\n"
	f.Add([]byte(wrk+wrk), []byte{})
	f.Add([]byte(wrk+wrk), []byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	// Versions, keep-alive and close, bare LF, empty lines before.
	f.Add([]byte("GET /plaintext HTTP/1.0\r\n\r\nGET /plaintext HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), []byte{26})
	f.Add([]byte("GET /plaintext HTTP/1.1\nHost: a\nConnection: x, close\n\n"), []byte{})
	f.Add([]byte("\r\n\nGET /plaintext?x=1 HTTP/1.1\r\nhost:\r\n\r\n"), []byte{1, 1})
	// Methods and paths; a body skipped, then the next request.
	f.Add([]byte("POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloHEAD /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), []byte{60, 3})
	f.Add([]byte("get /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintextx HTTP/1.1\r\nHost: a\r\n\r\nGET http://a/plaintext HTTP/1.1\r\nHost: a\r\n\r\n"), []byte{})
	// Errors: no Host, two, bad lines, obs-fold, space before the colon,
	// CR alone, NUL, versions.
	f.Add([]byte("GET /plaintext HTTP/1.1\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), []byte{})
	f.Add([]byte("GET  /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext HTTP/1.1\r\nHost : a\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext HTTP/1.1\r\nHost: a\rb\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext HTTP/1.1\r\nHost: a\x00\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext HTTP/2.0\r\nHost: a\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext HTTP/1.12\r\nHost: a\r\n\r\n"), []byte{})
	f.Add([]byte("GET /plaintext\r\n\r\n"), []byte{})
	// Content-Length and Transfer-Encoding.
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 003\r\n\r\nabc"), []byte{})
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"), []byte{})
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"), []byte{})
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000000000000\r\n\r\n"), []byte{})
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n"), []byte{})
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), []byte{})
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"), []byte{})
	// The limit: a head of exactly MaxHead bytes, one more, and longer.
	pad := func(n int) []byte {
		h := "GET /plaintext HTTP/1.1\r\nHost: a\r\nX: "
		return []byte(h + strings.Repeat("x", n-len(h)-4) + "\r\n\r\n")
	}
	f.Add(pad(httpparse.MaxHead), []byte{})
	f.Add(pad(httpparse.MaxHead+1), []byte{255, 255})
	f.Add(append(bytes.Repeat([]byte("\r\n"), httpparse.MaxHead/2), "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"...), []byte{})

	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		want := refHTTP(stream)
		whole := feedHTTP([][]byte{stream})
		if !sameEvents(whole, want) {
			t.Fatalf("fed whole:\n got %v\nwant %v", whole, want)
		}
		if split := feedHTTP(pieces(stream, cuts)); fmt.Sprint(split) != fmt.Sprint(whole) {
			t.Fatalf("in pieces:\n got %v\nwhole %v", split, whole)
		}
	})
}

// sameEvents compares the parser's events with the model's: errors by
// status only (the model does not say at which byte).
func sameEvents(got, want []refEvent) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.r.Status != 0 {
			g.end = 0
		}
		if g != w {
			return false
		}
	}
	return true
}
