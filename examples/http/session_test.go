package main

// The handler's per-connection logic in this process: a pure function
// from input to answers, checked on every split of a pipeline.

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// wrk is TechEmpower's plaintext request as wrk sends it.
const wrk = "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\n" +
	"Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\n" +
	"Connection: keep-alive\r\n\r\n"

// pipeline is six requests: the plaintext one, a POST whose body is
// skipped, a 404 with bare LFs, a HEAD with a one-byte body, HTTP/1.0
// with keep-alive, and a last one that closes.
const pipeline = wrk +
	"POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello\r\n\r\n\n" +
	"GET /nothing HTTP/1.1\nHost: a\n\n" +
	"HEAD /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nG" +
	"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
	"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

// pipelineAnswers is what the pipeline gets, with Date as normalize
// writes it.
const pipelineAnswers = "HTTP/1.1 200 OK\r\nServer: tcpoll\r\nDate: DATE\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!" +
	"HTTP/1.1 405 Method Not Allowed\r\nServer: tcpoll\r\nDate: DATE\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nAllow: GET\r\n\r\nMethod Not Allowed\n" +
	"HTTP/1.1 404 Not Found\r\nServer: tcpoll\r\nDate: DATE\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nNot Found\n" +
	"HTTP/1.1 405 Method Not Allowed\r\nServer: tcpoll\r\nDate: DATE\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nAllow: GET\r\n\r\n" +
	"HTTP/1.1 200 OK\r\nServer: tcpoll\r\nDate: DATE\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!" +
	"HTTP/1.1 200 OK\r\nServer: tcpoll\r\nDate: DATE\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!"

var dateField = regexp.MustCompile(`\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n`)

// normalize replaces the Date fields' values with DATE.
func normalize(s string) string { return dateField.ReplaceAllString(s, "\r\nDate: DATE\r\n") }

// answerAll runs a new session over the pieces, as OnData would, and
// returns what it answered and whether it ended the connection.
func answerAll(st *stamp, pieces ...string) (string, bool) {
	s := newSession()
	var all []byte
	end := false
	for _, p := range pieces {
		var out []byte
		out, end = s.answer(nil, []byte(p), st)
		all = append(all, out...)
	}
	return string(all), end
}

// TestAnswerSplits: the pipeline's answers are the same fed whole, byte
// by byte and cut anywhere, and end the connection after the last.
func TestAnswerSplits(t *testing.T) {
	st := newStamp(time.Now())
	got, end := answerAll(st, pipeline)
	if normalize(got) != pipelineAnswers || !end {
		t.Fatalf("whole: got %q, end %v\nwant %q, end true", normalize(got), end, pipelineAnswers)
	}
	if got, end := answerBytes(st, pipeline); normalize(got) != pipelineAnswers || !end {
		t.Errorf("byte by byte: got %q, end %v", normalize(got), end)
	}
	for i := range len(pipeline) + 1 {
		if got, end := answerAll(st, pipeline[:i], pipeline[i:]); normalize(got) != pipelineAnswers || !end {
			t.Fatalf("cut at %d: got %q, end %v", i, normalize(got), end)
		}
	}
	// Input after the closing request is discarded.
	if got, _ := answerAll(st, pipeline+wrk, wrk); normalize(got) != pipelineAnswers {
		t.Errorf("more after Connection: close: got %q", normalize(got))
	}
}

// answerBytes answers stream fed a byte at a time, so that no head is
// ever whole in one read and none is matched with the one before it.
func answerBytes(st *stamp, stream string) (string, bool) {
	var bytes []string
	for i := range len(stream) {
		bytes = append(bytes, stream[i:i+1])
	}
	return answerAll(st, bytes...)
}

// TestAnswerRepeats: a read of repeated requests is answered as the same
// requests fed a byte at a time, where none can be matched with the one
// before it: also where a head differs from the last in one byte, where a
// body is the same bytes as its head, and where a read begins with the end
// of a head that began in the last read.
func TestAnswerRepeats(t *testing.T) {
	st := newStamp(time.Now())
	post := "POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 57\r\n\r\n"
	cases := []struct {
		name    string
		pieces  []string
		answers int
	}{
		{"16 alike", []string{strings.Repeat(wrk, 16)}, 16},
		{"one byte apart", []string{wrk + wrk + strings.Replace(wrk, "/plaintext", "/plaintexT", 1) + wrk}, 4},
		{"empty lines between", []string{wrk + "\r\n" + wrk + wrk}, 3},
		{"a body that is its head", []string{post + post + wrk}, 2},
		{"a head's end, then an empty line", []string{"GET /plaintext HTTP/1.1\r\nHost: a\r\n", "\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"}, 2},
		{"then a close", []string{wrk + wrk + "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + wrk}, 3},
	}
	for _, tc := range cases {
		got, end := answerAll(st, tc.pieces...)
		want, wantEnd := answerBytes(st, strings.Join(tc.pieces, ""))
		if normalize(got) != normalize(want) || end != wantEnd {
			t.Errorf("%s: got %q, end %v\nwant %q, end %v", tc.name, normalize(got), end, normalize(want), wantEnd)
		}
		if n := strings.Count(got, "HTTP/1.1 "); n != tc.answers {
			t.Errorf("%s: %d answers, want %d", tc.name, n, tc.answers)
		}
	}
}

// FuzzAnswer: any stream, cut into two reads anywhere, is answered as it is
// fed a byte at a time.
func FuzzAnswer(f *testing.F) {
	f.Add(strings.Repeat(wrk, 3), uint16(0))
	f.Add(pipeline+pipeline, uint16(40))
	f.Add("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 48\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 48\r\n\r\n", uint16(0))
	st := newStamp(time.Now())
	f.Fuzz(func(t *testing.T, stream string, cut uint16) {
		i := int(cut) % (len(stream) + 1)
		got, end := answerAll(st, stream[:i], stream[i:])
		want, wantEnd := answerBytes(st, stream)
		if got != want || end != wantEnd {
			t.Fatalf("cut at %d: got %q, end %v\nwant %q, end %v", i, got, end, want, wantEnd)
		}
	})
}

// TestAnswerAllocs: answering 16 pipelined requests allocates nothing
// once the session's buffer has grown.
func TestAnswerAllocs(t *testing.T) {
	st := newStamp(time.Now())
	s := newSession()
	in := []byte(strings.Repeat(wrk, 16))
	out := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		out, _ = s.answer(out[:0], in[:1000], st)
		out, _ = s.answer(out[:0], in[1000:], st)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per 16 requests", allocs)
	}
}

// TestStamp: the Date field is the HTTP-date of the time given, and the
// plaintext answer is made with it.
func TestStamp(t *testing.T) {
	st := newStamp(time.Date(2026, 12, 7, 3, 4, 5, 0, time.FixedZone("X", 3600)))
	if want := "Date: Mon, 07 Dec 2026 02:04:05 GMT\r\n"; string(st.date) != want {
		t.Errorf("got %q, want %q", st.date, want)
	}
	if want := "HTTP/1.1 200 OK\r\nServer: tcpoll\r\nDate: Mon, 07 Dec 2026 02:04:05 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"; string(st.ok) != want {
		t.Errorf("got %q, want %q", st.ok, want)
	}
	c := startClock()
	defer c.stop()
	first := c.now()
	time.Sleep(1100 * time.Millisecond)
	if c.now() == first {
		t.Errorf("the clock made no new stamp in 1.1s")
	}
}
