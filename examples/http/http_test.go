package main

// The http command as a process (built once by TestMain, with -race when
// the tests have it), spoken to over TCP: every rule of the doc comment.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// dial connects to addr; the test's cleanup closes the connection.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn)
}

// response is an answer as read off the wire.
type response struct {
	status int
	fields []string // "Name: value", in order
	body   string
	raw    string
}

// field is the value of the field name, and whether it came.
func (r *response) field(name string) (string, bool) {
	for _, f := range r.fields {
		if n, v, _ := strings.Cut(f, ": "); strings.EqualFold(n, name) {
			return v, true
		}
	}
	return "", false
}

// readResponse reads an answer: status line, fields, CRLFs throughout,
// and a body of its Content-Length, which every answer must have; with
// head, no body.
func readResponse(br *bufio.Reader, head bool) (*response, error) {
	var raw strings.Builder
	line := func() (string, error) {
		s, err := br.ReadString('\n')
		raw.WriteString(s)
		if err != nil {
			return "", fmt.Errorf("after %q: %w", raw.String(), err)
		}
		if !strings.HasSuffix(s, "\r\n") {
			return "", fmt.Errorf("line %q does not end with CRLF", s)
		}
		return s[:len(s)-2], nil
	}
	status, err := line()
	if err != nil {
		return nil, err
	}
	r := &response{}
	if v, code, ok := strings.Cut(status, " "); !ok || v != "HTTP/1.1" || len(code) < 4 {
		return nil, fmt.Errorf("status line %q", status)
	}
	if r.status, err = strconv.Atoi(status[9:12]); err != nil {
		return nil, fmt.Errorf("status line %q", status)
	}
	for {
		f, err := line()
		if err != nil {
			return nil, err
		}
		if f == "" {
			break
		}
		r.fields = append(r.fields, f)
	}
	cl, ok := r.field("Content-Length")
	n, err := strconv.Atoi(cl)
	if !ok || err != nil {
		return nil, fmt.Errorf("no Content-Length in %q", raw.String())
	}
	if !head {
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("body of %d bytes: %w", n, err)
		}
		r.body = string(b)
		raw.Write(b)
	}
	r.raw = raw.String()
	return r, nil
}

// mustRead reads an answer, failing the test if it cannot.
func mustRead(t *testing.T, br *bufio.Reader, head bool) *response {
	t.Helper()
	r, err := readResponse(br, head)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkEOF reads until the connection ends, and fails the test unless it
// ends with a FIN (not a reset, not a timeout) and nothing more.
func checkEOF(t *testing.T, c *net.TCPConn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(br); len(b) > 0 || err != nil {
		t.Errorf("after the answer: read %q, %v; want a FIN", b, err)
	}
}

// checkOpen fails the test unless the connection is still open with
// nothing to read for 100ms.
func checkOpen(t *testing.T, c *net.TCPConn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if b, err := br.ReadByte(); !isTimeout(err) {
		t.Errorf("read %q, %v; want the connection open and quiet", b, err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// send writes s, failing the test if it cannot.
func send(t *testing.T, c *net.TCPConn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// TestPlaintext: GET /plaintext gets exactly TechEmpower's answer, with
// the date of now, and the connection stays open for the next request.
func TestPlaintext(t *testing.T) {
	p := startHTTP(t)
	c := dial(t, p.Addr)
	br := bufio.NewReader(c)
	for range 3 {
		send(t, c, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
		r := mustRead(t, br, false)
		date, _ := r.field("Date")
		want := []string{"Server: tcpoll", "Date: " + date, "Content-Type: text/plain", "Content-Length: 13"}
		if r.status != 200 || r.body != "Hello, World!" || strings.Join(r.fields, "|") != strings.Join(want, "|") {
			t.Errorf("got %q", r.raw)
		}
		d, err := time.Parse(timeFormat, date)
		if err != nil || d.Sub(time.Now()).Abs() > 2*time.Second {
			t.Errorf("Date %q (%v): want the HTTP-date of now, %v", date, err, time.Now().UTC())
		}
	}
	checkOpen(t, c, br)
}

// TestPipelined: the six requests of pipeline, sent in one write, byte by
// byte, and cut in two at every byte, get their six answers in order, and
// the connection ends after the last, which asks for it.
func TestPipelined(t *testing.T) {
	p := startHTTP(t)
	exchange := func(pieces ...string) {
		t.Helper()
		c := dial(t, p.Addr)
		c.SetNoDelay(true)
		for _, s := range pieces {
			send(t, c, s)
			if len(pieces) == 2 {
				time.Sleep(time.Millisecond) // likely two reads
			}
		}
		b, err := io.ReadAll(c)
		if got := normalize(string(b)); got != pipelineAnswers || err != nil {
			t.Fatalf("cut into %d: got %q, %v\nwant %q", len(pieces), got, err, pipelineAnswers)
		}
		c.Close()
	}
	exchange(pipeline)
	var bytes []string
	for i := range len(pipeline) {
		bytes = append(bytes, pipeline[i:i+1])
	}
	exchange(bytes...)
	for i := 1; i < len(pipeline); i++ {
		exchange(pipeline[:i], pipeline[i:])
	}
	// 16 deep, as TechEmpower's wrk does, many times over.
	c := dial(t, p.Addr)
	br := bufio.NewReader(c)
	for range 100 {
		send(t, c, strings.Repeat(wrk, 16))
		for range 16 {
			if r := mustRead(t, br, false); r.status != 200 || r.body != "Hello, World!" {
				t.Fatalf("got %q", r.raw)
			}
		}
	}
}

// TestConnectionClose: Connection: close is answered with Connection:
// close, then a FIN, and what the client sends after it is discarded.
func TestConnectionClose(t *testing.T) {
	p := startHTTP(t)
	c := dial(t, p.Addr)
	br := bufio.NewReader(c)
	send(t, c, "GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"+wrk)
	r := mustRead(t, br, false)
	if v, _ := r.field("Connection"); r.status != 200 || v != "close" || r.body != "Hello, World!" {
		t.Errorf("got %q", r.raw)
	}
	checkEOF(t, c, br)
}

// TestHTTP10: an HTTP/1.0 request is answered, then the connection
// closed; with Connection: keep-alive it stays open, and the answer says
// so.
func TestHTTP10(t *testing.T) {
	p := startHTTP(t)
	c := dial(t, p.Addr)
	br := bufio.NewReader(c)
	send(t, c, "GET /plaintext HTTP/1.0\r\n\r\n")
	r := mustRead(t, br, false)
	if v, _ := r.field("Connection"); r.status != 200 || v != "close" {
		t.Errorf("got %q", r.raw)
	}
	checkEOF(t, c, br)

	c = dial(t, p.Addr)
	br = bufio.NewReader(c)
	for range 2 {
		send(t, c, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		r = mustRead(t, br, false)
		if v, _ := r.field("Connection"); r.status != 200 || v != "keep-alive" || r.body != "Hello, World!" {
			t.Errorf("got %q", r.raw)
		}
	}
	checkOpen(t, c, br)
}

// TestRouting: other paths are 404 and other methods 405 with Allow: GET,
// each with a Content-Length, HEAD's without a body; a body is skipped,
// even when it comes in pieces; the connection stays open throughout.
func TestRouting(t *testing.T) {
	p := startHTTP(t)
	c := dial(t, p.Addr)
	c.SetNoDelay(true)
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		req    string
		head   bool
		status int
		allow  bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, 404, false},
		{"GET /plaintext/x HTTP/1.1\r\nHost: x\r\n\r\n", false, 404, false},
		{"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", false, 404, false},
		{"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", false, 405, true},
		{"PUT /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false, 405, true},
		{"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n", true, 405, true},
		{"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n", true, 404, false},
		{"GET /plaintext?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", false, 200, false},
	} {
		send(t, c, tc.req)
		r := mustRead(t, br, tc.head)
		allow, ok := r.field("Allow")
		if r.status != tc.status || ok != tc.allow || ok && allow != "GET" {
			t.Errorf("%q: got %q", tc.req, r.raw)
		}
	}
	// A body in pieces, then the next request in the same piece as its
	// end.
	for _, s := range []string{"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Le", "ngth: 20\r\n\r\n0123456789", "01234", "56789GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"} {
		send(t, c, s)
		time.Sleep(5 * time.Millisecond)
	}
	if r := mustRead(t, br, false); r.status != 405 {
		t.Errorf("got %q", r.raw)
	}
	if r := mustRead(t, br, false); r.status != 200 {
		t.Errorf("got %q", r.raw)
	}
	checkOpen(t, c, br)
}

// TestBareLF: lines ending in LF alone are read as CRLF ones.
func TestBareLF(t *testing.T) {
	p := startHTTP(t)
	c := dial(t, p.Addr)
	br := bufio.NewReader(c)
	send(t, c, "GET /plaintext HTTP/1.1\nHost: x\n\nGET /plaintext HTTP/1.1\r\nHost: x\n\r\n")
	for range 2 {
		if r := mustRead(t, br, false); r.status != 200 {
			t.Errorf("got %q", r.raw)
		}
	}
	checkOpen(t, c, br)
}

// TestErrors: each error is answered with its status, a Content-Length
// and Connection: close, after the answers to the requests before it;
// then the connection ends with a FIN, while the client goes on sending
// (64 KiB more, which the server discards instead of resetting).
func TestErrors(t *testing.T) {
	p := startHTTP(t)
	pad := func(n int) string {
		h := "GET /plaintext HTTP/1.1\r\nHost: a\r\nX: "
		return h + strings.Repeat("x", n-len(h)-4) + "\r\n\r\n"
	}
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no Host in 1.1", "GET /plaintext HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad request line", "GET /plaintext  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad method", "G(T /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad version", "GET /plaintext HTTP/1.x\r\nHost: a\r\n\r\n", 400},
		{"space before colon", "GET /plaintext HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"obs-fold", "GET /plaintext HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400},
		{"CR alone", "GET /plaintext HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
		{"NUL", "GET /plaintext HTTP/1.1\r\nHost: a\x00\r\n\r\n", 400},
		{"no colon", "GET /plaintext HTTP/1.1\r\nHost\r\n\r\n", 400},
		{"lengths differ", "POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nab", 400},
		{"length not a number", "POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"length and chunked", "POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"chunked", "POST /plaintext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
		{"gzip", "POST /plaintext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"head of 8 KiB and 1 byte", pad(8193), 431},
		{"endless head", "GET /plaintext HTTP/1.1\r\nX: " + strings.Repeat("x", 9000), 431},
		{"HTTP/2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, p.Addr)
			br := bufio.NewReader(c)
			send(t, c, wrk+tc.req)
			var wg sync.WaitGroup
			wg.Go(func() {
				junk := bytes.Repeat([]byte("GET /plaintext HTTP/1.1\r\n"), 64<<10/25)
				c.Write(junk) // fails once the server has gone: that is fine
			})
			if r := mustRead(t, br, false); r.status != 200 {
				t.Errorf("before: got %q", r.raw)
			}
			r := mustRead(t, br, false)
			status, body := errorAnswer(tc.status)
			if v, _ := r.field("Connection"); r.status != tc.status || v != "close" || r.body != body || !strings.HasSuffix(status, r.raw[13:strings.Index(r.raw, "\r\n")]) {
				t.Errorf("got %q, want %s", r.raw, status)
			}
			checkEOF(t, c, br)
			wg.Wait()
		})
	}
	// A head of exactly 8 KiB is read.
	c := dial(t, p.Addr)
	br := bufio.NewReader(c)
	send(t, c, pad(8192))
	if r := mustRead(t, br, false); r.status != 200 {
		t.Errorf("8 KiB head: got %q", r.raw)
	}
}

// TestNoRead: a client pipelines 4 MB of requests without reading, which
// would be answered with 17 MB: the server holds what it cannot send
// without failing or dropping it, and once the client reads, every answer
// comes, in order.
func TestNoRead(t *testing.T) {
	p := startHTTP(t)
	c := dial(t, p.Addr)
	c.SetDeadline(time.Now().Add(120 * time.Second))
	req := "GET /plaintext HTTP/1.1\nHost:\n\n" // 31 bytes, for 129
	n := 4 << 20 / len(req)
	done := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, strings.Repeat(req, n))
		done <- err
	}()
	time.Sleep(time.Second) // the client reads nothing meanwhile
	br := bufio.NewReaderSize(c, 64<<10)
	for i := range n {
		r, err := readResponse(br, false)
		if err != nil || r.status != 200 || r.body != "Hello, World!" {
			t.Fatalf("answer %d of %d: %v", i, n, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkOpen(t, c, br)
	if log := p.Stop(t); !strings.Contains(log, "held=") || strings.Contains(log, "held=0") {
		t.Errorf("the server never held answers for the client:\n%s", log)
	}
}
