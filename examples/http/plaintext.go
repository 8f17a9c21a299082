package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tcpoll/poll/examples/http/httpparse"
	"github.com/tcpoll/poll/server"
)

// path is the one resource served.
const path = "/plaintext"

// serverName is every answer's Server field.
const serverName = "tcpoll"

// Error and routing answers' bodies.
const (
	bodyOK       = "Hello, World!"
	bodyNotFound = "Not Found\n"
	bodyMethod   = "Method Not Allowed\n"
)

// timeFormat is the HTTP-date (RFC 9110, 5.6.7), as net/http's TimeFormat.
const timeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// stamp is what a second's answers share: the Date field, and the whole
// answer to GET /plaintext on a connection that stays open.
type stamp struct {
	date []byte // "Date: ...\r\n"
	ok   []byte
}

func newStamp(t time.Time) *stamp {
	date := t.UTC().AppendFormat([]byte("Date: "), timeFormat)
	date = append(date, "\r\n"...)
	ok := appendAnswer(nil, &stamp{date: date}, "200 OK", "", bodyOK, false, "")
	return &stamp{date: date, ok: ok}
}

// clock keeps the current stamp, made once a second by its goroutine at
// each second's start, never per request.
type clock struct {
	cur  atomic.Pointer[stamp]
	done chan struct{}
}

// startClock starts a clock; stop ends its goroutine.
func startClock() *clock {
	c := &clock{done: make(chan struct{})}
	c.cur.Store(newStamp(time.Now()))
	go c.run()
	return c
}

func (c *clock) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		t.Reset(now.Truncate(time.Second).Add(time.Second).Sub(now))
		select {
		case <-c.done:
			return
		case <-t.C:
			c.cur.Store(newStamp(time.Now()))
		}
	}
}

func (c *clock) stop() { close(c.done) }

func (c *clock) now() *stamp { return c.cur.Load() }

// appendAnswer appends an answer with status (code and reason), the
// fields every answer has, extra fields (each ending in CRLF), the
// Connection field conn unless empty, and body unless head.
func appendAnswer(out []byte, st *stamp, status, extra, body string, head bool, conn string) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = append(out, status...)
	out = append(out, "\r\nServer: "+serverName+"\r\n"...)
	out = append(out, st.date...)
	out = append(out, "Content-Type: text/plain\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n"...)
	out = append(out, extra...)
	if conn != "" {
		out = append(out, "Connection: "...)
		out = append(out, conn...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "\r\n"...)
	if !head {
		out = append(out, body...)
	}
	return out
}

// errorAnswer is the status line's end and body for a Request's error
// status.
func errorAnswer(status int) (string, string) {
	switch status {
	case 400:
		return "400 Bad Request", "Bad Request\n"
	case 431:
		return "431 Request Header Fields Too Large", "Request Header Fields Too Large\n"
	case 501:
		return "501 Not Implemented", "Not Implemented\n"
	default:
		return "505 HTTP Version Not Supported", "HTTP Version Not Supported\n"
	}
}

// session is a connection's state: its parser, the buffer its answers are
// made in, and whether it is ending.
type session struct {
	p    httpparse.Parser
	out  []byte
	done bool // a request that closes the connection was answered
}

func newSession() *session { return &session{p: httpparse.Parser{Path: path}} }

// maxKeptOut is the largest answer buffer a session keeps between reads.
const maxKeptOut = 64 << 10

// answer reads in, one read's input, and appends the answers to all the
// requests it completes, in order, to out. It reports whether the
// connection is to close once they are sent: after an error, or a request
// that does not keep the connection. Input after that request is
// discarded, by this call and every later one.
//
// A pipelining client usually sends the same request over and over. A head
// identical, byte for byte, to the one just parsed, read from the same
// state (Parser.Fresh, with no body to skip after either), is the same
// request, so it is not parsed again. Only a head that began and ended in
// this read is remembered, as a slice of in, which lives until the call
// returns.
func (s *session) answer(out, in []byte, st *stamp) ([]byte, bool) {
	var last []byte // the last head parsed, if it can be matched
	var lastReq httpparse.Request
	for len(in) > 0 && !s.done {
		var n int
		var r httpparse.Request
		var ok bool
		if len(last) > 0 && bytes.HasPrefix(in, last) {
			n, r, ok = len(last), lastReq, true
		} else {
			fresh := s.p.Fresh()
			n, r, ok = s.p.Feed(in)
			last = nil
			if ok && fresh && r.ContentLength == 0 {
				last, lastReq = in[:n], r
			}
		}
		in = in[n:]
		if !ok {
			break
		}
		if r.Status != 0 {
			status, body := errorAnswer(r.Status)
			out = appendAnswer(out, st, status, "", body, false, "close")
			s.done = true
			break
		}
		conn := ""
		if !r.KeepAlive {
			conn = "close"
			s.done = true
		} else if r.Minor == 0 {
			conn = "keep-alive"
		}
		head := r.Method == httpparse.MethodHEAD
		switch {
		case !r.Match:
			out = appendAnswer(out, st, "404 Not Found", "", bodyNotFound, head, conn)
		case r.Method != httpparse.MethodGET:
			out = appendAnswer(out, st, "405 Method Not Allowed", "Allow: GET\r\n", bodyMethod, head, conn)
		case conn == "":
			out = append(out, st.ok...)
		default:
			out = appendAnswer(out, st, "200 OK", "", bodyOK, false, conn)
		}
	}
	return out, s.done
}

// plaintext is the server.Handler.
type plaintext struct {
	clock      *clock
	maxPending int // the server's MaxPendingOutput
	held       atomic.Int64
}

// OnOpen gives the connection its session.
func (h *plaintext) OnOpen(c *server.Conn) { c.SetValue(newSession()) }

// OnData answers the requests in, all of them with one Write, and closes
// the connection after an answer that ends it.
func (h *plaintext) OnData(c *server.Conn, in []byte) {
	s := c.Value().(*session)
	if s.done {
		return // closing: what comes now is discarded
	}
	out, end := s.answer(s.out[:0], in, h.clock.now())
	if cap(out) <= maxKeptOut {
		s.out = out[:0]
	} else {
		s.out = nil
	}
	h.send(c, out, end)
}

// send writes out, and closes the connection after it if end. Answers are
// larger than requests (a 31-byte request gets 129 bytes), while the engine
// reads as much input as there is room for in MaxPendingOutput: so out
// may not fit. Then what fits is written, reading pauses, and a goroutine
// writes the rest as room frees (AsyncWriteContext, which waits on the
// loop's signal, with no polling), then resumes reading on the loop. Only
// a client that pipelines without reading gets there.
func (h *plaintext) send(c *server.Conn, out []byte, end bool) {
	room := h.maxPending - c.Pending()
	if len(out) > room {
		h.held.Add(1)
		if room > 0 {
			h.write(c, out[:room])
		}
		rest := bytes.Clone(out[max(room, 0):])
		c.PauseReading()
		go func() {
			for len(rest) > 0 {
				k := min(len(rest), h.maxPending/2)
				if c.AsyncWriteContext(context.Background(), rest[:k]) != nil {
					return // the connection ended
				}
				rest = rest[k:]
			}
			if end {
				c.Close()
			} else {
				c.Run(c.ResumeReading)
			}
		}()
		return
	}
	if len(out) > 0 && !h.write(c, out) {
		return
	}
	if end {
		c.Close()
	}
}

// write writes b on the loop. It cannot fail for want of room (send made
// sure of it); if the connection has ended, there is nothing to do.
func (h *plaintext) write(c *server.Conn, b []byte) bool {
	err := c.Write(b)
	if err != nil && !errors.Is(err, server.ErrClosed) {
		c.Abort(err)
	}
	return err == nil
}

// OnClose has nothing to clean up.
func (h *plaintext) OnClose(c *server.Conn, why error) {}
