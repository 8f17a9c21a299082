package fuzz

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/tcpoll/poll/server"
)

// The reference model of the PROXY protocol: HAProxy's
// doc/proxy-protocol.txt read word by word, over the whole buffer at once,
// as a receiver that peeks at everything received so far would. It shares
// no code with server.ProxyHeader. Where the text leaves a choice, the
// model makes the one ProxyHeader documents: v2 headers over 16+536 bytes
// are refused, TLVs are skipped unread, v4-mapped sources are unmapped.

// What the model says of the bytes received so far.
const (
	refIncomplete = iota // not yet a header, not yet invalid
	refValid
	refNotHeader
	refMalformed
	refOversized
)

// refResult is the model's verdict on a connection's first bytes.
type refResult struct {
	verdict int
	n       int            // with refValid: the header's length
	src     netip.AddrPort // with refValid: the announced source
	ok      bool           // src is set
}

const (
	refV1Sig = "PROXY "
	refV2Sig = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
)

// refProxy is the model: it reads the header at the start of b.
func refProxy(b []byte) refResult {
	switch {
	case bytes.HasPrefix(b, []byte(refV2Sig)):
		return refV2(b)
	case bytes.HasPrefix(b, []byte(refV1Sig)):
		return refV1(b)
	case strings.HasPrefix(refV2Sig, string(b)), strings.HasPrefix(refV1Sig, string(b)):
		return refResult{verdict: refIncomplete} // a signature may still come
	}
	return refResult{verdict: refNotHeader}
}

// refV1 reads a version 1 line: "If the CRLF sequence is not found in the
// first 107 characters, the receiver should declare the line invalid", and
// it "must not tolerate a single CR or LF character to end the line".
func refV1(b []byte) refResult {
	const maxLine = 107
	lf := bytes.IndexByte(b, '\n')
	if lf < 0 {
		if len(b) >= maxLine {
			return refResult{verdict: refOversized}
		}
		if cr := bytes.IndexByte(b, '\r'); cr >= 0 && cr+1 < len(b) {
			return refResult{verdict: refMalformed} // a CR, then not LF
		}
		return refResult{verdict: refIncomplete}
	}
	if lf+1 > maxLine {
		return refResult{verdict: refOversized}
	}
	if lf == 0 || b[lf-1] != '\r' {
		return refResult{verdict: refMalformed}
	}
	line := string(b[:lf-1])
	if strings.Contains(line, "\r") {
		return refResult{verdict: refMalformed}
	}
	// "PROXY", then fields separated by exactly one space.
	f := strings.Split(line, " ")
	r := refResult{verdict: refValid, n: lf + 1}
	switch {
	case f[1] == "UNKNOWN":
		// "the receiver must ignore anything presented before the CRLF"
		return r
	case f[1] == "TCP4" && len(f) == 6:
		src, ok1 := refIPv4(f[2])
		_, ok2 := refIPv4(f[3])
		sport, ok3 := refPort(f[4])
		_, ok4 := refPort(f[5])
		if ok1 && ok2 && ok3 && ok4 {
			r.src, r.ok = netip.AddrPortFrom(netip.AddrFrom4(src), sport), true
			return r
		}
	case f[1] == "TCP6" && len(f) == 6:
		src, ok1 := refIPv6(f[2])
		_, ok2 := refIPv6(f[3])
		sport, ok3 := refPort(f[4])
		_, ok4 := refPort(f[5])
		if ok1 && ok2 && ok3 && ok4 {
			r.src, r.ok = netip.AddrPortFrom(netip.AddrFrom16(src).Unmap(), sport), true
			return r
		}
	}
	return refResult{verdict: refMalformed}
}

// refDecimal reads s as a decimal number of at most digits digits: "Heading
// zeroes are not permitted in front of numbers".
func refDecimal(s string, digits int) (int, bool) {
	if s == "" || len(s) > digits || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// refPort reads "a decimal integer in the range [0..65535] inclusive".
func refPort(s string) (uint16, bool) {
	v, ok := refDecimal(s, 5)
	return uint16(v), ok && v <= 65535
}

// refIPv4 reads "a series of exactly 4 integers in the range [0..255]
// inclusive written in decimal representation separated by exactly one
// dot between each other".
func refIPv4(s string) ([4]byte, bool) {
	var a [4]byte
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return a, false
	}
	for i, p := range parts {
		v, ok := refDecimal(p, 3)
		if !ok || v > 255 {
			return a, false
		}
		a[i] = byte(v)
	}
	return a, true
}

// refIPv6 reads "series of sets of 4 hexadecimal digits (upper or lower
// case) delimited by colons between each other, with the acceptance of one
// double colon sequence to replace the largest acceptable range of
// consecutive zeroes. The total number of decoded bits must exactly be
// 128." Sets may be shorter than 4 digits, as inet_ntop writes them, and
// the last 32 bits may be a dotted quad, as inet_ntop writes a v4-mapped
// address.
func refIPv6(s string) ([16]byte, bool) {
	var a [16]byte
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Contains(s[i+1:], ".") {
		v4, ok := refIPv4(s[i+1:])
		if !ok {
			return a, false
		}
		const hex = "0123456789abcdef"
		g := func(hi, lo byte) string {
			return string([]byte{hex[hi>>4], hex[hi&15], hex[lo>>4], hex[lo&15]})
		}
		s = s[:i+1] + g(v4[0], v4[1]) + ":" + g(v4[2], v4[3])
	}
	var groups []string
	if strings.Contains(s, ":::") || strings.Count(s, "::") > 1 {
		return a, false
	}
	if head, tail, gap := strings.Cut(s, "::"); gap {
		var h, t []string
		if head != "" {
			h = strings.Split(head, ":")
		}
		if tail != "" {
			t = strings.Split(tail, ":")
		}
		if len(h)+len(t) > 7 { // the gap replaces at least one set
			return a, false
		}
		groups = append(groups, h...)
		for range 8 - len(h) - len(t) {
			groups = append(groups, "0")
		}
		groups = append(groups, t...)
	} else {
		groups = strings.Split(s, ":")
	}
	if len(groups) != 8 {
		return a, false
	}
	for i, g := range groups {
		if len(g) < 1 || len(g) > 4 {
			return a, false
		}
		v := 0
		for _, c := range []byte(g) {
			switch {
			case '0' <= c && c <= '9':
				v = v<<4 | int(c-'0')
			case 'a' <= c && c <= 'f':
				v = v<<4 | int(c-'a'+10)
			case 'A' <= c && c <= 'F':
				v = v<<4 | int(c-'A'+10)
			default:
				return a, false
			}
		}
		a[2*i], a[2*i+1] = byte(v>>8), byte(v)
	}
	return a, true
}

// refV2 reads a version 2 header, which starts with the signature: the
// 13th byte is version 2 and command LOCAL (0) or PROXY (1); the 14th a
// family 0 to 3 and a transport 0 to 2; then a 16-bit length, of which the
// addresses take "2*4 + 2*2 = 12 bytes" for 0x11 and 0x12, "2*16 + 2*2 = 36
// bytes" for 0x21 and 0x22, "2*108 = 216 bytes" for 0x31 and 0x32; the
// header is "always exactly 16 + this value".
func refV2(b []byte) refResult {
	if len(b) > 12 && (b[12]>>4 != 2 || b[12]&15 > 1) {
		return refResult{verdict: refMalformed}
	}
	if len(b) > 13 && (b[13]>>4 > 3 || b[13]&15 > 2) {
		return refResult{verdict: refMalformed}
	}
	if len(b) < 16 {
		return refResult{verdict: refIncomplete}
	}
	proxy := b[12]&15 == 1
	length := int(b[14])<<8 | int(b[15])
	if length > 536 {
		return refResult{verdict: refOversized}
	}
	addrs := map[byte]int{0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}[b[13]]
	if proxy && length < addrs {
		return refResult{verdict: refMalformed}
	}
	if len(b) < 16+length {
		return refResult{verdict: refIncomplete}
	}
	r := refResult{verdict: refValid, n: 16 + length}
	if proxy {
		switch addrs {
		case 12:
			r.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), uint16(b[24])<<8|uint16(b[25]))
			r.ok = true
		case 36:
			r.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[16:32])).Unmap(), uint16(b[48])<<8|uint16(b[49]))
			r.ok = true
		}
	}
	return r
}

// refErrs maps the model's invalid verdicts to ProxyHeader's errors.
var refErrs = map[int]error{
	refNotHeader: server.ErrProxyNotHeader,
	refMalformed: server.ErrProxyMalformed,
	refOversized: server.ErrProxyOversized,
}

// proxyResult is what a ProxyHeader said of a connection's first bytes.
type proxyResult struct {
	n    int
	done bool
	err  error
	src  netip.AddrPort
	ok   bool
}

func FuzzProxyHeader(f *testing.F) {
	// The connection's first bytes, and piece lengths as for FuzzFraming.
	v2 := func(s ...string) []byte { return []byte(refV2Sig + strings.Join(s, "")) }
	// The specification's example and longest lines.
	f.Add([]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"), []byte{})
	f.Add([]byte("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), []byte{20})
	f.Add([]byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), []byte{50})
	f.Add([]byte("PROXY UNKNOWN\r\n"), []byte{})
	f.Add([]byte("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\nhello\n"), []byte{106})
	// One byte over 107, LF without CR, CR without LF, no end.
	f.Add([]byte("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n"), []byte{})
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), []byte{})
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n"), []byte{})
	f.Add([]byte("PROXY UNKNOWN "+strings.Repeat("x", 120)), []byte{60})
	// IPv6 forms, dotted quads, strict numbers.
	f.Add([]byte("PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 443\r\nhello\n"), []byte{1, 1, 1})
	f.Add([]byte("PROXY TCP6 1:2:3:4:5:6:1.2.3.4 1::8 0 65535\r\n"), []byte{})
	f.Add([]byte("PROXY TCP6 1:2:3:4:5:6:7:: ::2:3:4:5:6:7:8 1 2\r\n"), []byte{})
	f.Add([]byte("PROXY TCP6 1::2::3 ::1 1 2\r\n"), []byte{})
	f.Add([]byte("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), []byte{})
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), []byte{})
	// v2: TCP over IPv4 and IPv6, with TLVs, LOCAL, UNIX.
	f.Add(v2("\x21\x11\x00\x0c", "\xc0\xa8\x00\x01\xc0\xa8\x00\x0b\xdc\x04\x01\xbb", "hello\n"), []byte{13})
	f.Add(v2("\x21\x21\x00\x24", strings.Repeat("\x20\x01\x0d\xb8", 8), "\x04\xd2\x01\xbb"), []byte{16, 4})
	f.Add(v2("\x21\x11\x00\x19", "\x7f\x00\x00\x02\x7f\x00\x00\x01\x9c\x40\x0c\x41", "\x01\x00\x02h2", "\x04\x00\x05\x00\x00\x00\x00\x00"), []byte{})
	f.Add(v2("\x20\x00\x00\x00", "hello\n"), []byte{})
	f.Add(v2("\x21\x31\x00\xd8", strings.Repeat("\x00", 216)), []byte{100})
	// Lengths that lie, oversized, unknown versions, commands, families.
	f.Add(v2("\x21\x11\x00\x0b", "\x7f\x00\x00\x02\x7f\x00\x00\x01\x9c\x40\x0c"), []byte{})
	f.Add(v2("\x21\x11\x00\x20", "\x7f\x00\x00\x02\x7f\x00\x00\x01\x9c\x40\x0c\x41"), []byte{})
	f.Add(v2("\x21\x11\x02\x19"), []byte{})
	f.Add(v2("\x11\x11\x00\x0c"), []byte{})
	f.Add(v2("\x22\x11\x00\x0c"), []byte{})
	f.Add(v2("\x21\x41\x00\x0c"), []byte{})
	// Not a header.
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), []byte{})
	f.Add([]byte("\r\n\r\nhello\n"), []byte{})
	f.Add([]byte{}, []byte{})

	f.Fuzz(checkProxy)
}

// checkProxy checks a ProxyHeader against the model on in, fed whole and
// cut into pieces as cuts says.
func checkProxy(t *testing.T, in, cuts []byte) {
	want := refProxy(in)
	var h server.ProxyHeader
	whole := feedProxy(t, &h, in, [][]byte{in})
	switch want.verdict {
	case refValid:
		if !whole.done || whole.n != want.n || whole.src != want.src || whole.ok != want.ok {
			t.Errorf("got %+v, want a header of %d bytes from %v (%v)", whole, want.n, want.src, want.ok)
		}
	case refIncomplete:
		if whole.done || whole.err == nil && whole.n != len(in) {
			t.Errorf("got %+v, want it waiting for more", whole)
		}
	default:
		if whole.err == nil {
			t.Errorf("got %+v, want %v", whole, refErrs[want.verdict])
		}
	}
	// Signatures and v2 headers are judged byte for byte alike.
	if (whole.err == server.ErrProxyNotHeader) != (want.verdict == refNotHeader) {
		t.Errorf("got %v, want %v", whole.err, refErrs[want.verdict])
	}
	if bytes.HasPrefix(in, []byte(refV2Sig)) && whole.err != refErrs[want.verdict] {
		t.Errorf("v2: got %v, want %v", whole.err, refErrs[want.verdict])
	}
	// Done or invalid no later than the model: the bytes before the
	// last one taken were still an unfinished header.
	if whole.done || whole.err != nil {
		if v := refProxy(in[:whole.n-1]).verdict; v != refIncomplete {
			t.Errorf("%d bytes end the header, but the model judged the first %d already (%d)", whole.n, whole.n-1, v)
		}
	}

	// The same, in pieces, on the same ProxyHeader after Reset.
	h.Reset()
	if got := feedProxy(t, &h, in, pieces(in, cuts)); got != whole {
		t.Errorf("in pieces: got %+v, whole: %+v", got, whole)
	}
}

// TestProxyHeaderNeighbours checks every header one edit away from the
// seeds' valid headers: each byte replaced by every value, each byte
// removed, and an interesting byte inserted anywhere; and every prefix.
func TestProxyHeaderNeighbours(t *testing.T) {
	v2 := func(s ...string) string { return refV2Sig + strings.Join(s, "") }
	headers := []string{
		"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
		"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 443\r\n",
		"PROXY TCP6 1:2:3:4:5:6:1.2.3.4 1::8 0 65535\r\n",
		"PROXY TCP6 1:2:3:4:5:6:7:: ::2:3:4:5:6:7:8 1 2\r\n",
		"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4 65535 65535\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		v2("\x21\x11\x00\x0c", "\xc0\xa8\x00\x01\xc0\xa8\x00\x0b\xdc\x04\x01\xbb"),
		v2("\x21\x21\x00\x24", strings.Repeat("\x20\x01\x0d\xb8", 8), "\x04\xd2\x01\xbb"),
		v2("\x21\x11\x00\x19", "\x7f\x00\x00\x02\x7f\x00\x00\x01\x9c\x40\x0c\x41", "\x01\x00\x02h2", "\x04\x00\x05\x00\x00\x00\x00\x00"),
		v2("\x20\x00\x00\x00"),
	}
	const insert = "0123456789abcdefABCDEFgx:. \r\n\x00\xffPTU"
	cuts := []byte{1, 7, 2}
	// check checks b followed by a payload.
	check := func(b []byte) {
		checkProxy(t, append(bytes.Clone(b), "hello\n"...), cuts)
	}
	for _, hd := range headers {
		h := []byte(hd)
		for i := range h {
			checkProxy(t, h[:i:i], cuts)
			for c := range 256 {
				b := bytes.Clone(h)
				b[i] = byte(c)
				check(b)
			}
			check(append(bytes.Clone(h[:i]), h[i+1:]...))
			for _, c := range []byte(insert) {
				check(append(append(bytes.Clone(h[:i]), c), h[i:]...))
			}
		}
		if t.Failed() {
			return
		}
	}
}

// feedProxy feeds ps, the pieces of in, to h until the header is done or
// invalid. Between pieces it checks that the model also says the bytes so
// far are an unfinished header; at the end, that Feed now takes nothing
// and says the same again.
func feedProxy(t *testing.T, h *server.ProxyHeader, in []byte, ps [][]byte) proxyResult {
	t.Helper()
	var r proxyResult
	for _, p := range ps {
		k, done, err := h.Feed(p)
		if k < 0 || k > len(p) {
			t.Fatalf("Feed took %d bytes of %d", k, len(p))
		}
		r.n += k
		if done && err != nil {
			t.Fatalf("Feed said done and %v", err)
		}
		if done || err != nil {
			r.done, r.err = done, err
			break
		}
		if k != len(p) {
			t.Fatalf("Feed took %d bytes of %d, neither done nor failing", k, len(p))
		}
		if v := refProxy(in[:r.n]).verdict; v != refIncomplete {
			t.Errorf("Feed waits for more after %d bytes, the model says %d", r.n, v)
		}
	}
	r.src, r.ok = h.Source()
	if !r.done && r.ok {
		t.Errorf("Source %v before the header is done", r.src)
	}
	if r.err != nil && r.err != server.ErrProxyNotHeader && r.err != server.ErrProxyMalformed && r.err != server.ErrProxyOversized {
		t.Errorf("unexpected error %v", r.err)
	}
	if r.done || r.err != nil {
		if k, done, err := h.Feed(in); k != 0 || done != r.done || err != r.err {
			t.Errorf("Feed after the end: got %d, %v, %v, want 0, %v, %v", k, done, err, r.done, r.err)
		}
	}
	return r
}
