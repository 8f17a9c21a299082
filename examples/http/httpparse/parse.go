// Package httpparse reads HTTP/1.1 requests (RFC 9112) as a pure state
// machine over bytes, for servers that answer from the request line and a
// few header fields and ignore bodies: examples/http's plaintext server.
//
// A Parser holds no buffer. It reads a request head a byte at a time, as
// it arrives, split anywhere between calls, and keeps only what its answer
// depends on: the method (GET, HEAD or another), whether the path is
// Parser.Path, the version, how many Host fields came, the Content-Length,
// whether Transfer-Encoding came and ends in chunked, and the Connection
// options close and keep-alive. A field name is kept while it is read, up
// to its first 17 bytes (the longest name it knows), and a list element of
// Connection or Transfer-Encoding up to 10 (the longest option it knows);
// nothing else. A Parser is 120 bytes, Path included, and Feed never
// allocates.
//
// # What it accepts
//
// The grammar is RFC 9112's, read strictly where it leaves a choice:
//
//   - Empty lines before a request line are skipped (2.2).
//   - A line ends with CRLF or with a bare LF (2.2 allows either); a CR
//     anywhere else is an error.
//   - request-line = method SP request-target SP HTTP-version, single
//     spaces (3); the method is a token (case-sensitive, so "get" is not
//     GET), the target one or more visible ASCII characters; the version
//     "HTTP/" DIGIT "." DIGIT. A major version other than 1 is answered 505.
//   - A field line is a token name, ":" with no whitespace before it
//     (5.1), optional whitespace, a value of visible characters, obs-text,
//     spaces and tabs, and optional whitespace. A line that starts with
//     whitespace, an obs-fold or whitespace before the first field (2.2,
//     5.2), is an error. Names are case-insensitive.
//   - The head (any empty lines before the request line, the request line,
//     the field lines and the blank line) may be up to MaxHead bytes; the
//     first byte past it without the head's end is answered 431.
//
// Then, once the head has ended, in this order: a major version other
// than 1 is 505; an HTTP/1.1 request without Host, or any request with
// more than one, is 400 (3.2); a Content-Length that is not 1*DIGIT (after
// optional whitespace, so no lists), is 18 digits or more after its
// leading zeros, or differs from an earlier one, is 400 (6.3, item 5;
// identical ones are one); Transfer-Encoding with Content-Length is 400
// (6.3, item 3 allows rejecting it, and it "ought to be handled as an
// error"); Transfer-Encoding whose last coding is chunked is 501 (no
// transfer coding is implemented, 6.1), and any other is 400 (6.3, item
// 4: the length cannot be determined). Every error leaves the Parser dead:
// the connection must be closed after the answer.
//
// The path is the target up to its first "?": the query is ignored. Only
// origin-form targets can match Path; absolute-form ("http://h/p") and the
// others never do.
package httpparse

// MaxHead is the longest request head read, in bytes.
const MaxHead = 8192

// maxContentLength is the largest Content-Length read: 17 digits.
const maxContentLength = 99_999_999_999_999_999

// Method is a request's method, as far as a server of one resource cares.
type Method uint8

// Methods.
const (
	MethodOther Method = iota
	MethodGET
	MethodHEAD
)

// Request is what a Parser read of one request.
type Request struct {
	// Status is 0 for a request to answer, or the error status to answer
	// it with (400, 431, 501, 505) before closing the connection. The
	// other fields are meaningful only when it is 0.
	Status int
	Method Method
	// Match says the target's path (up to "?") is Parser.Path.
	Match bool
	// Minor is the version's minor digit: HTTP/1.Minor.
	Minor uint8
	// KeepAlive says the connection stays open after the answer: an
	// HTTP/1.1 request (or later minor) without Connection: close, or an
	// HTTP/1.0 one with Connection: keep-alive and without close.
	KeepAlive bool
	// ContentLength is the body's length, which the Parser skips.
	ContentLength int64
}

// States of a Parser.
const (
	sStart   uint8 = iota // before a request line; empty lines are skipped
	sStartCR              // an empty line's CR
	sMethod               // in the method
	sTarget               // in the target
	sVersion              // in the version; n counts its bytes
	sLineCR               // the request line's CR
	sField                // at the start of a field line or the blank line
	sName                 // in a field name
	sValue                // in a field value
	sValueCR              // a field line's CR
	sEndCR                // the blank line's CR
	sBody                 // skipping a body
	sDead                 // after an error: everything is ignored
)

// Field kinds: the fields a Parser reads the values of.
const (
	fOther uint8 = iota
	fHost
	fContentLength
	fConnection
	fTransferEncoding
)

// maxName is the longest field name a Parser knows: transfer-encoding.
const maxName = 17

// maxElem is the longest list element a Parser knows: keep-alive.
const maxElem = 10

// Parser reads the requests of one connection's byte stream. Set Path
// (an origin-form path, without "?") before the first Feed; the zero
// value otherwise is ready.
type Parser struct {
	Path string

	state uint8
	head  int   // bytes of the current head so far
	body  int64 // bytes of the current body still to skip
	n     int   // bytes of the current method, target or version

	// The request so far.
	method  Method
	match   bool // the path read so far is Path's prefix
	query   bool // the target's "?" has come
	major   uint8
	minor   uint8
	hosts   uint8 // Host fields, up to 2
	cl      int64 // Content-Length
	clSeen  bool
	clBad   bool // invalid, or two that differ
	te      bool // Transfer-Encoding came
	teChunk bool // its last coding so far is chunked
	close   bool // Connection: close
	keep    bool // Connection: keep-alive

	// The field line being read.
	field   uint8 // fOther...
	nameLen uint8 // bytes of the name, even past maxName
	name    [maxName]byte
	// Content-Length's value: digits seen, then whitespace after them.
	clDigits, clAfter bool
	clVal             int64
	clOver            bool
	// A list element of Connection or Transfer-Encoding.
	elemLen uint8 // bytes in elem; maxElem+1 once it cannot match
	elemWS  bool  // whitespace after the element's first bytes
	elem    [maxElem]byte
}

// Character classes.
const (
	cTchar = 1 << iota // token
	cVchar             // visible ASCII: the target's characters
	cValue             // a field value's characters: VCHAR, obs-text, SP, HTAB
)

var class = func() (t [256]uint8) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] |= cVchar | cValue
	}
	for c := 0x80; c <= 0xff; c++ {
		t[c] |= cValue
	}
	t[' '] |= cValue
	t['\t'] |= cValue
	for c := range 256 {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			t[c] |= cTchar
		}
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] |= cTchar
	}
	return t
}()

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Feed reads in until a request's head ends. Then it returns the bytes it
// took (up to and including the head's last byte), the request, and true;
// the caller answers it and calls Feed again with the rest of in. A body
// announced by Content-Length is skipped by the Feeds that follow. If in
// ends first, Feed returns len(in) and false, keeping what it needs for
// the next call. After an error (Request.Status not 0) every later Feed
// takes all of in and returns false.
func (p *Parser) Feed(in []byte) (n int, r Request, ok bool) {
	for n < len(in) {
		switch p.state {
		case sDead:
			return len(in), Request{}, false
		case sBody:
			k := min(int64(len(in)-n), p.body)
			n += int(k)
			if p.body -= k; p.body == 0 {
				p.state = sStart
			}
			continue
		}
		// The head may take MaxHead-p.head bytes more.
		end := min(len(in), n+MaxHead-p.head)
		k, done := p.scan(in[n:end])
		n += k
		if done {
			p.head = 0
			return n, p.request(), true
		}
		if p.state == sDead {
			return n, Request{Status: 400}, true
		}
		p.head += k
		if end < len(in) {
			p.state = sDead
			return n + 1, Request{Status: 431}, true
		}
	}
	return n, Request{}, false
}

// scan runs the head's state machine over in. It returns the bytes taken
// and whether the head ended with the last of them; a syntax error leaves
// the Parser dead, with the bad byte taken.
func (p *Parser) scan(in []byte) (int, bool) {
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch p.state {
		case sStart:
			switch {
			case c == '\n':
			case c == '\r':
				p.state = sStartCR
			case class[c]&cTchar != 0:
				p.begin()
				p.name[0] = c // the method is matched when it ends
				p.n = 1
				p.state = sMethod
			default:
				return p.fail(i)
			}
		case sStartCR:
			if c != '\n' {
				return p.fail(i)
			}
			p.state = sStart
		case sMethod:
			switch {
			case class[c]&cTchar != 0:
				if p.n < 4 {
					p.name[p.n] = c
				}
				p.n++
			case c == ' ':
				switch {
				case p.n == 3 && string(p.name[:3]) == "GET":
					p.method = MethodGET
				case p.n == 4 && string(p.name[:4]) == "HEAD":
					p.method = MethodHEAD
				}
				p.n, p.match, p.query = 0, true, false
				p.state = sTarget
			default:
				return p.fail(i)
			}
		case sTarget:
			// The path's bytes, as far as they match Path.
			for ; i < len(in) && !p.query && class[in[i]]&cVchar != 0; i++ {
				c := in[i]
				if c == '?' {
					p.match = p.match && p.n == len(p.Path)
					p.query = true
				} else {
					p.match = p.match && p.n < len(p.Path) && p.Path[p.n] == c
				}
				p.n++
			}
			// The query's.
			for ; i < len(in) && class[in[i]]&cVchar != 0; i++ {
				p.n++
			}
			if i == len(in) {
				return i, false
			}
			if in[i] != ' ' || p.n == 0 {
				return p.fail(i)
			}
			if !p.query {
				p.match = p.match && p.n == len(p.Path)
			}
			p.n = 0
			p.state = sVersion
		case sVersion:
			switch {
			case p.n < 5:
				if c != "HTTP/"[p.n] {
					return p.fail(i)
				}
			case p.n == 5 || p.n == 7:
				if c < '0' || c > '9' {
					return p.fail(i)
				}
				if p.n == 5 {
					p.major = c - '0'
				} else {
					p.minor = c - '0'
				}
			case p.n == 6:
				if c != '.' {
					return p.fail(i)
				}
			case c == '\r':
				p.state = sLineCR
			case c == '\n':
				p.state = sField
			default:
				return p.fail(i)
			}
			p.n++
		case sLineCR:
			if c != '\n' {
				return p.fail(i)
			}
			p.state = sField
		case sField:
			switch {
			case c == '\n':
				return i + 1, true
			case c == '\r':
				p.state = sEndCR
			case class[c]&cTchar != 0:
				p.name[0] = lower(c)
				p.nameLen = 1
				p.state = sName
			default:
				return p.fail(i)
			}
		case sName:
			for ; i < len(in) && class[in[i]]&cTchar != 0; i++ {
				if p.nameLen < maxName {
					p.name[p.nameLen] = lower(in[i])
				}
				if p.nameLen <= maxName {
					p.nameLen++
				}
			}
			if i == len(in) {
				return i, false
			}
			if in[i] != ':' {
				return p.fail(i)
			}
			p.startValue()
			p.state = sValue
		case sValue:
			if p.field == fOther || p.field == fHost {
				for i < len(in) && class[in[i]]&cValue != 0 {
					i++
				}
			} else {
				for ; i < len(in) && class[in[i]]&cValue != 0; i++ {
					p.valueByte(in[i])
				}
			}
			if i == len(in) {
				return i, false
			}
			switch in[i] {
			case '\r':
				p.state = sValueCR
			case '\n':
				p.endValue()
				p.state = sField
			default:
				return p.fail(i)
			}
		case sValueCR:
			if c != '\n' {
				return p.fail(i)
			}
			p.endValue()
			p.state = sField
		case sEndCR:
			if c != '\n' {
				return p.fail(i)
			}
			return i + 1, true
		}
	}
	return len(in), false
}

// Fresh reports whether the Parser is between requests, with no body to
// skip and nothing of the next request read but empty lines. Input that
// Feed, from such a state, takes up to the end of a head with no body
// parses to the same Request again from a Fresh state with no empty lines
// read: those count towards MaxHead, and a head that ended within it after
// them ends within it without them.
func (p *Parser) Fresh() bool { return p.state == sStart }

// fail makes the Parser dead at in[i], a byte the grammar refuses.
func (p *Parser) fail(i int) (int, bool) {
	p.state = sDead
	return i + 1, false
}

// begin starts a request.
func (p *Parser) begin() {
	p.method, p.major, p.minor, p.hosts = MethodOther, 0, 0, 0
	p.cl, p.clSeen, p.clBad = 0, false, false
	p.te, p.teChunk, p.close, p.keep = false, false, false, false
}

// startValue classifies the field whose name has ended, and prepares to
// read its value.
func (p *Parser) startValue() {
	p.field = fOther
	if p.nameLen <= maxName {
		switch string(p.name[:p.nameLen]) {
		case "host":
			p.field = fHost
			p.hosts = min(p.hosts+1, 2)
		case "content-length":
			p.field = fContentLength
			p.clDigits, p.clAfter, p.clVal, p.clOver = false, false, 0, false
		case "connection":
			p.field = fConnection
			p.elemLen, p.elemWS = 0, false
		case "transfer-encoding":
			p.field = fTransferEncoding
			p.te = true
			p.elemLen, p.elemWS = 0, false
		}
	}
}

// valueByte reads a byte of a Content-Length, Connection or
// Transfer-Encoding value (a value character: not CR or LF).
func (p *Parser) valueByte(c byte) {
	ws := c == ' ' || c == '\t'
	if p.field == fContentLength {
		switch {
		case ws:
			p.clAfter = p.clDigits
		case '0' <= c && c <= '9' && !p.clAfter:
			p.clDigits = true
			if p.clVal = p.clVal*10 + int64(c-'0'); p.clVal > maxContentLength {
				p.clOver = true
				p.clVal = maxContentLength + 1 // stays over, never overflows
			}
		default:
			p.clOver = true // not 1*DIGIT
		}
		return
	}
	switch {
	case c == ',':
		p.endElem()
	case ws:
		p.elemWS = p.elemLen > 0
	case p.elemWS || p.elemLen >= maxElem:
		p.elemLen = maxElem + 1 // whitespace inside, or too long
	default:
		p.elem[p.elemLen] = lower(c)
		p.elemLen++
	}
}

// endElem ends a list element of Connection or Transfer-Encoding. Empty
// elements are ignored, as lists allow (RFC 9110, 5.6.1).
func (p *Parser) endElem() {
	if p.elemLen > 0 {
		var e string
		if p.elemLen <= maxElem {
			e = string(p.elem[:p.elemLen])
		}
		if p.field == fConnection {
			p.close = p.close || e == "close"
			p.keep = p.keep || e == "keep-alive"
		} else {
			p.teChunk = e == "chunked"
		}
	}
	p.elemLen, p.elemWS = 0, false
}

// endValue ends a field line.
func (p *Parser) endValue() {
	switch p.field {
	case fContentLength:
		switch {
		case p.clOver || !p.clDigits:
			p.clBad = true
		case p.clSeen && p.cl != p.clVal:
			p.clBad = true
		}
		p.cl, p.clSeen = p.clVal, true
	case fConnection, fTransferEncoding:
		p.endElem()
	}
}

// request judges the head that has ended, and sets the Parser to skip its
// body.
func (p *Parser) request() Request {
	status := 0
	switch {
	case p.major != 1:
		status = 505
	case p.hosts == 0 && p.minor > 0, p.hosts > 1:
		status = 400
	case p.clBad:
		status = 400
	case p.te && p.clSeen:
		status = 400
	case p.te && p.teChunk:
		status = 501
	case p.te:
		status = 400
	}
	if status != 0 {
		p.state = sDead
		return Request{Status: status}
	}
	r := Request{
		Method:        p.method,
		Match:         p.match,
		Minor:         p.minor,
		KeepAlive:     !p.close && (p.minor > 0 || p.keep),
		ContentLength: p.cl,
	}
	p.state = sStart
	if p.cl > 0 {
		p.body = p.cl
		p.state = sBody
	}
	return r
}
