package server

import (
	"errors"
	"net/netip"
)

// The PROXY protocol (HAProxy's doc/proxy-protocol.txt) lets a load
// balancer announce the client it relays: it sends one header first on the
// connection, a line of text (version 1) or a binary block (version 2),
// then the client's bytes. ProxyHeader reads that header as a pure state
// machine over bytes, like the Framer: it holds no buffer, so a header may
// arrive split anywhere across reads, and it never allocates.

// Errors of ProxyHeader.Feed. Each means the connection must be closed.
var (
	// ErrProxyNotHeader: the first bytes match neither the v1 signature
	// "PROXY " nor the 12-byte v2 signature.
	ErrProxyNotHeader = errors.New("server: PROXY header: not a PROXY protocol header")
	// ErrProxyMalformed: a header that breaks the specification: a v1 line
	// that is not TCP4, TCP6 or UNKNOWN with strict addresses and ports and
	// a CRLF; a v2 version other than 2, a command other than LOCAL or
	// PROXY, an unassigned family or transport, or an address block shorter
	// than its family's addresses.
	ErrProxyMalformed = errors.New("server: PROXY header: malformed")
	// ErrProxyOversized: a v1 line with no CRLF within MaxProxyV1 bytes,
	// or a v2 header whose length field announces more than MaxProxyV2.
	ErrProxyOversized = errors.New("server: PROXY header: oversized")
	// ErrProxyTruncated is never returned by Feed: it is for an engine
	// whose connection ends, or whose header deadline passes, before the
	// header is complete.
	ErrProxyTruncated = errors.New("server: PROXY header: connection ended inside the header")
)

const (
	// MaxProxyV1 is the longest v1 header, CRLF included: the
	// specification's worst case, "PROXY UNKNOWN" with two full IPv6
	// addresses and ports.
	MaxProxyV1 = 107
	// MaxProxyV2 is the longest v2 header accepted: the 16 fixed bytes and
	// up to 536 bytes of addresses and TLVs. The specification designs
	// both formats to fit in the smallest segment every TCP host must
	// accept (576 - 40 = 536 bytes), so that the header comes in one read;
	// 536 bytes after the fixed part hold the largest addresses (UNIX, 216
	// bytes) and 320 bytes of TLVs, far more than balancers send (HAProxy's
	// send-proxy-v2 sends 12 or 36 bytes, cloud balancers add a TLV of a
	// few dozen). A length field over it is rejected at once rather than
	// read to the end: bytes cost nothing to skip, but a length that lies
	// would otherwise hold the connection until the header deadline.
	MaxProxyV2 = 16 + 536
)

// The signatures. proxyV2Sig has a NUL at its fifth byte.
const (
	proxyV1Sig = "PROXY "
	proxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"
)

// Stages of a ProxyHeader.
const (
	ppStart   uint8 = iota // nothing read
	ppV1Sig                // in "PROXY "
	ppV1Proto              // in "TCP4 ", "TCP6 " or "UNKNOWN"
	ppV1Addr               // in the source or destination address
	ppV1Port               // in the source or destination port
	ppV1Rest               // in the ignored rest of an UNKNOWN line
	ppV1LF                 // after the CR that ends the line
	ppV2Sig                // in the v2 signature
	ppV2Fixed              // in version and command, family, length
	ppV2Block              // in the address block and TLVs
	ppDone                 // the header is complete
	ppFailed               // the header is invalid: see bad
)

// What ProxyHeader.bad holds: an index in proxyErrs.
const (
	badNotHeader uint8 = iota
	badMalformed
	badOversized
)

var proxyErrs = [...]error{
	badNotHeader: ErrProxyNotHeader,
	badMalformed: ErrProxyMalformed,
	badOversized: ErrProxyOversized,
}

// Where a v1 IPv6 address is, in ProxyHeader.prev.
const (
	prevStart uint8 = iota // nothing read
	prevDigit              // in a group of hex digits
	prevColon              // after a single colon
	prevGap                // after "::"
	prevDot                // in the dotted IPv4 address that ends it
)

// noGap is ProxyHeader.gap when the address has no "::".
const noGap = 0xff

// v2Proxy is the v2 command PROXY; LOCAL is 0.
const v2Proxy = 0x1

// ProxyHeader reads the PROXY protocol header that a load balancer sends
// first on a connection, version 1 or 2, recognised by its signature. It is
// a pure state machine: fixed size, no pointers, no buffer, and its answers
// do not depend on how the header is split between calls to Feed. The zero
// value is ready; Reset makes it ready again for another connection.
//
// Invalid input is rejected as early as the bytes allow: a connection that
// starts with anything but "P" or CR at its first byte; one that strays
// from a signature at the byte that differs; a v2 header at its version
// and command, family and transport, or length byte; a v1 line at the
// first byte its grammar forbids there, or at the first byte after which
// its CRLF could no longer end it within MaxProxyV1 bytes.
//
// Version 1: "PROXY TCP4 src dst sport dport\r\n", the same with TCP6, or
// "PROXY UNKNOWN" then anything but CR and LF up to the CRLF. IPv4
// addresses are dotted quads without leading zeros; IPv6 addresses are
// colon-separated groups of 1 to 4 hex digits with at most one "::" and
// optionally a dotted quad for the last 32 bits (as inet_ntop writes a
// v4-mapped address, which HAProxy sends when the two sides' families
// differ); ports are 0 to 65535 without leading zeros; fields are
// separated by exactly one space. The first CR must be followed by LF.
//
// Version 2: the signature, version 2 with command LOCAL or PROXY, a
// family (UNSPEC, INET, INET6, UNIX) and transport (UNSPEC, STREAM,
// DGRAM), and a length of at most MaxProxyV2-16 bytes, which for PROXY must
// hold the addresses the family and transport byte announce (12 bytes for
// INET, 36 for INET6, 216 for UNIX, none with an UNSPEC family or
// transport). The bytes after the addresses, TLVs, are skipped unread.
type ProxyHeader struct {
	addr   [16]byte // the source address: IPv4 in addr[:4]
	num    uint32   // v1: the number or hex group being read
	port   uint16   // the source port
	n      uint16   // header bytes read
	left   uint16   // v2: address block and TLV bytes still to come
	stage  uint8    // ppStart...
	bad    uint8    // with ppFailed: the error, badNotHeader...
	src    uint8    // with ppDone: 4 or 6 for an IPv4 or IPv6 source, else 0
	fam    uint8    // v1: 'T' in "TCP", then '4' or '6', or 'U'; v2: family and transport byte
	cmd    uint8    // v2: the command
	field  uint8    // v1: 0 source address, 1 destination, 2 source port, 3 destination port
	digits uint8    // v1: digits of num
	groups uint8    // v1 IPv6: 16-bit groups read
	gap    uint8    // v1 IPv6: the group where "::" stands, or noGap
	prev   uint8    // v1 IPv6: prevStart...
	octets uint8    // v1: octets read of a dotted quad
}

// Feed consumes header bytes from the start of p. It returns how many bytes
// of p belong to the header; done reports the header complete, and p[n:]
// is then the connection's first payload bytes. err reports an invalid
// header, one of ErrProxyNotHeader, ErrProxyMalformed and ErrProxyOversized:
// n then counts the bytes of p up to and including the one that showed it
// invalid. Until done or err, Feed consumes all of p. After done or err,
// Feed consumes nothing and reports the same again.
func (h *ProxyHeader) Feed(p []byte) (n int, done bool, err error) {
	for n < len(p) && h.stage < ppDone {
		if h.stage == ppV2Block {
			n += h.block(p[n:])
		} else {
			h.step(p[n])
			n++
		}
	}
	switch h.stage {
	case ppDone:
		return n, true, nil
	case ppFailed:
		return n, false, proxyErrs[h.bad]
	}
	return n, false, nil
}

// Source returns the client address the header announced. ok is false
// until the header is complete, and for v2 LOCAL, v1 UNKNOWN, and families
// other than IPv4 and IPv6 (UNSPEC, UNIX) or an UNSPEC transport: the
// connection is then served as itself. A v4-mapped IPv6 address
// (::ffff:a.b.c.d) is returned as the IPv4 address it maps.
func (h *ProxyHeader) Source() (addr netip.AddrPort, ok bool) {
	if h.stage != ppDone {
		return netip.AddrPort{}, false
	}
	switch h.src {
	case 4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(h.addr[:4])), h.port), true
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom16(h.addr).Unmap(), h.port), true
	}
	return netip.AddrPort{}, false
}

// Reset makes h ready for a new connection.
func (h *ProxyHeader) Reset() { *h = ProxyHeader{} }

func (h *ProxyHeader) fail(bad uint8) {
	h.stage, h.bad = ppFailed, bad
}

// step reads one byte of any stage but ppV2Block.
func (h *ProxyHeader) step(c byte) {
	i := h.n
	h.n++
	switch h.stage {
	case ppStart:
		switch c {
		case proxyV1Sig[0]:
			h.stage = ppV1Sig
		case proxyV2Sig[0]:
			h.stage = ppV2Sig
		default:
			h.fail(badNotHeader)
		}
		return
	case ppV2Sig:
		if c != proxyV2Sig[i] {
			h.fail(badNotHeader)
		} else if int(h.n) == len(proxyV2Sig) {
			h.stage = ppV2Fixed
		}
		return
	case ppV2Fixed:
		h.fixed(i, c)
		return
	case ppV1Sig:
		if c != proxyV1Sig[i] {
			h.fail(badNotHeader)
		} else if int(h.n) == len(proxyV1Sig) {
			h.stage = ppV1Proto
		}
	case ppV1Proto:
		h.proto(i, c)
	case ppV1Addr:
		if h.fam == '4' || h.prev == prevDot {
			h.dotted(c)
		} else {
			h.hex6(c)
		}
	case ppV1Port:
		h.portByte(c)
	case ppV1Rest:
		switch c {
		case '\r':
			h.stage = ppV1LF
		case '\n':
			h.fail(badMalformed)
		}
	case ppV1LF:
		if c != '\n' {
			h.fail(badMalformed)
			return
		}
		h.stage = ppDone
		switch h.fam {
		case '4':
			h.src = 4
		case '6':
			h.src = 6
		}
		return
	}
	// The line goes on: it needs its CRLF, or the LF after its CR, within
	// MaxProxyV1 bytes.
	need := 2
	if h.stage == ppV1LF {
		need = 1
	}
	if h.stage != ppFailed && int(h.n)+need > MaxProxyV1 {
		h.fail(badOversized)
	}
}

// proto reads byte i of a v1 line, c, after "PROXY ".
func (h *ProxyHeader) proto(i uint16, c byte) {
	const tcp, unknown = "TCP", "UNKNOWN"
	k := int(i) - len(proxyV1Sig) // position in the protocol name
	switch {
	case k == 0 && c == tcp[0]:
		h.fam = 'T'
	case k == 0 && c == unknown[0]:
		h.fam = 'U'
	case k == 0:
		h.fail(badMalformed)
	case h.fam == 'T' && k < len(tcp):
		if c != tcp[k] {
			h.fail(badMalformed)
		}
	case h.fam == 'T': // "TCP" then 4 or 6
		if c != '4' && c != '6' {
			h.fail(badMalformed)
		}
		h.fam = c
	case h.fam == '4' || h.fam == '6': // then a space
		if c != ' ' {
			h.fail(badMalformed)
			return
		}
		h.stage = ppV1Addr
		h.startAddr()
	case k < len(unknown): // h.fam == 'U'
		if c != unknown[k] {
			h.fail(badMalformed)
		}
	default: // "UNKNOWN" then a space or the CRLF
		switch c {
		case ' ':
			h.stage = ppV1Rest
		case '\r':
			h.stage = ppV1LF
		default:
			h.fail(badMalformed)
		}
	}
}

// startAddr makes h ready for an address.
func (h *ProxyHeader) startAddr() {
	h.num, h.digits, h.groups, h.octets = 0, 0, 0, 0
	h.gap, h.prev = noGap, prevStart
}

// decimal adds the digit c to the decimal number being read, which may
// have no leading zero and must not pass most.
func (h *ProxyHeader) decimal(c byte, most uint32) {
	if h.digits > 0 && h.num == 0 {
		h.fail(badMalformed)
		return
	}
	h.num = h.num*10 + uint32(c-'0')
	h.digits++
	if h.num > most {
		h.fail(badMalformed)
	}
}

// dotted reads c in a dotted quad: a TCP4 address, or the end of a TCP6
// one, which then has h.groups groups before it.
func (h *ProxyHeader) dotted(c byte) {
	switch {
	case '0' <= c && c <= '9':
		h.decimal(c, 255)
	case c == '.':
		if h.digits == 0 || h.octets == 3 {
			h.fail(badMalformed)
			return
		}
		h.octet()
	case c == ' ':
		if h.digits == 0 || h.octets != 3 {
			h.fail(badMalformed)
			return
		}
		h.octet()
		if h.fam == '6' {
			h.groups += 2
		}
		h.endAddr()
	default:
		h.fail(badMalformed)
	}
}

// octet takes the octet just read.
func (h *ProxyHeader) octet() {
	if h.field == 0 {
		h.addr[2*int(h.groups)+int(h.octets)] = byte(h.num)
	}
	h.octets++
	h.num, h.digits = 0, 0
}

// hex6 reads c in a TCP6 address before any dotted quad.
func (h *ProxyHeader) hex6(c byte) {
	// The most groups the address can still have: 8, or 7 beside a "::",
	// which stands for at least one.
	most := uint8(8)
	if h.gap != noGap {
		most = 7
	}
	if v, ok := unhex(c); ok {
		if h.digits == 0 && (h.prev == prevColon && h.groups == 0 || h.groups == most) {
			// A group after a single leading colon, or one too many.
			h.fail(badMalformed)
			return
		}
		if h.digits == 4 {
			h.fail(badMalformed)
			return
		}
		h.num = h.num<<4 | uint32(v)
		h.digits++
		h.prev = prevDigit
		return
	}
	switch c {
	case ':':
		switch h.prev {
		case prevStart:
			h.prev = prevColon
		case prevDigit:
			h.group()
			if h.groups == most { // nothing may follow, not even "::"
				h.fail(badMalformed)
				return
			}
			h.prev = prevColon
		case prevColon:
			if h.gap != noGap {
				h.fail(badMalformed)
				return
			}
			h.gap = h.groups
			h.prev = prevGap
		default: // ":::"
			h.fail(badMalformed)
		}
	case '.':
		// The digits read were the first octet of a dotted quad, which
		// must end the address as its last two groups.
		dec, ok := decimalOctet(h.num, h.digits)
		if h.prev != prevDigit || !ok || h.gap == noGap && h.groups != 6 || h.groups+2 > most {
			h.fail(badMalformed)
			return
		}
		h.num = dec
		h.prev = prevDot
		h.octet()
	case ' ':
		switch h.prev {
		case prevDigit:
			h.group()
		case prevGap:
		default:
			h.fail(badMalformed)
			return
		}
		if h.gap == noGap && h.groups != 8 {
			h.fail(badMalformed)
			return
		}
		h.endAddr()
	default:
		h.fail(badMalformed)
	}
}

// group takes the hex group just read.
func (h *ProxyHeader) group() {
	if h.field == 0 {
		h.addr[2*h.groups] = byte(h.num >> 8)
		h.addr[2*h.groups+1] = byte(h.num)
	}
	h.groups++
	h.num, h.digits = 0, 0
}

// endAddr ends an address: the groups after a "::" of the source move to
// the end, and the next field starts.
func (h *ProxyHeader) endAddr() {
	if h.field == 0 && h.fam == '6' && h.gap != noGap {
		at, end := 2*int(h.gap), 2*int(h.groups)
		tail := end - at
		copy(h.addr[16-tail:], h.addr[at:end])
		clear(h.addr[at : 16-tail])
	}
	h.field++
	h.startAddr()
	if h.field == 2 {
		h.stage = ppV1Port
	}
}

// portByte reads c in a port.
func (h *ProxyHeader) portByte(c byte) {
	switch {
	case '0' <= c && c <= '9':
		h.decimal(c, 0xffff)
	case c == ' ' && h.field == 2 && h.digits > 0:
		h.port = uint16(h.num)
		h.field = 3
		h.num, h.digits = 0, 0
	case c == '\r' && h.field == 3 && h.digits > 0:
		h.stage = ppV1LF
	default:
		h.fail(badMalformed)
	}
}

// fixed reads byte i of a v2 header, c, after the signature.
func (h *ProxyHeader) fixed(i uint16, c byte) {
	switch i {
	case 12:
		if c>>4 != 2 || c&0xf > v2Proxy {
			h.fail(badMalformed)
			return
		}
		h.cmd = c & 0xf
	case 13:
		if c>>4 > 3 || c&0xf > 2 {
			h.fail(badMalformed)
			return
		}
		h.fam = c
	case 14:
		h.left = uint16(c) << 8
	case 15:
		h.left |= uint16(c)
		switch {
		case h.left > MaxProxyV2-16:
			h.fail(badOversized)
		case h.cmd == v2Proxy && h.left < v2AddrLen(h.fam):
			h.fail(badMalformed)
		case h.left == 0:
			h.stage = ppDone
		default:
			h.stage = ppV2Block
		}
	}
}

// block reads the address block and TLVs from p and returns how many bytes
// of p it took. It keeps the source address and port of an IPv4 or IPv6
// PROXY header and skips every other byte.
func (h *ProxyHeader) block(p []byte) int {
	k := min(len(p), int(h.left))
	if a := h.ipLen(); a > 0 {
		pos := int(h.n) - 16 // where p starts in the block
		if pos < a {
			copy(h.addr[pos:a], p[:k])
		}
		// The source port is at 2a and 2a+1, after both addresses.
		for j := max(pos, 2*a); j < min(pos+k, 2*a+2); j++ {
			if j == 2*a {
				h.port = uint16(p[j-pos])<<8 | h.port&0xff
			} else {
				h.port = h.port&0xff00 | uint16(p[j-pos])
			}
		}
	}
	h.n += uint16(k)
	h.left -= uint16(k)
	if h.left == 0 {
		h.stage = ppDone
		switch h.ipLen() {
		case 4:
			h.src = 4
		case 16:
			h.src = 6
		}
	}
	return k
}

// ipLen is the length of the source address to keep from a v2 block: 4 or
// 16 for a PROXY command over TCP or UDP on IPv4 or IPv6, else 0.
func (h *ProxyHeader) ipLen() int {
	if h.cmd != v2Proxy {
		return 0
	}
	switch h.fam {
	case 0x11, 0x12:
		return 4
	case 0x21, 0x22:
		return 16
	}
	return 0
}

// v2AddrLen is the size of the addresses a v2 family and transport byte
// announces, from the specification's list; the UNSPEC family or transport
// carries none that a receiver may use.
func v2AddrLen(fam uint8) uint16 {
	switch fam {
	case 0x11, 0x12: // TCP, UDP over IPv4: 2*4 + 2*2
		return 12
	case 0x21, 0x22: // TCP, UDP over IPv6: 2*16 + 2*2
		return 36
	case 0x31, 0x32: // UNIX stream, datagram: 2*108
		return 216
	}
	return 0
}

// unhex returns the value of the hex digit c.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decimalOctet reads the hex group num of digits digits as the decimal
// octet its digits spell: up to 3 decimal digits, no leading zero, at most
// 255.
func decimalOctet(num uint32, digits uint8) (uint32, bool) {
	if digits == 0 || digits > 3 || digits > 1 && num>>(4*(digits-1)) == 0 {
		return 0, false
	}
	var dec uint32
	for s := 4 * int(digits-1); s >= 0; s -= 4 {
		d := num >> s & 0xf
		if d > 9 {
			return 0, false
		}
		dec = dec*10 + d
	}
	return dec, dec <= 255
}
