package server_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"github.com/tcpoll/poll/server"
)

// v2Sig is the v2 signature, written out again rather than taken from the
// package.
const v2Sig = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"

// v2 is a v2 header: the signature, verCmd, fam, a length field of length
// and then block, which may be longer or shorter than length says.
func v2(verCmd, fam byte, length int, block ...[]byte) string {
	var b strings.Builder
	b.WriteString(v2Sig)
	b.WriteByte(verCmd)
	b.WriteByte(fam)
	b.WriteByte(byte(length >> 8))
	b.WriteByte(byte(length))
	for _, p := range block {
		b.Write(p)
	}
	return b.String()
}

// v2Block is a v2 header whose length field is the length of block.
func v2Block(verCmd, fam byte, block ...[]byte) string {
	n := 0
	for _, p := range block {
		n += len(p)
	}
	return v2(verCmd, fam, n, block...)
}

// inet is a v2 address block for IPv4 or IPv6: src, dst, then the ports.
func inet(src, dst string) []byte {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	b := append(s.Addr().AsSlice(), d.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// tlv is a v2 TLV whose length field says length.
func tlv(typ byte, length int, value string) []byte {
	return append([]byte{typ, byte(length >> 8), byte(length)}, value...)
}

// zeros is n zero bytes.
func zeros(n int) []byte { return make([]byte, n) }

const (
	ffff6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	// payload follows headers, as the first bytes of the connection.
	payload = "hello\nclose\n"
)

// proxyCase is the input in fed to a fresh ProxyHeader. A valid header
// (err nil, more false) is n bytes long and announces src ("" for none);
// an invalid one is found invalid at its nth byte; one that needs more
// bytes (more) consumes all of in.
type proxyCase struct {
	name string
	in   string
	n    int
	err  error
	more bool
	src  string
}

// valid is a proxyCase for header followed by payload.
func valid(name, header, src string) proxyCase {
	return proxyCase{name: name, in: header + payload, n: len(header), src: src}
}

// invalid is a proxyCase for in, found invalid by err at the byte bad
// (the first one in in after prefix).
func invalid(name, in string, err error, prefix string) proxyCase {
	if !strings.HasPrefix(in, prefix) {
		panic(name + ": in does not start with prefix")
	}
	return proxyCase{name: name, in: in, n: len(prefix) + 1, err: err}
}

// more is a proxyCase for in, the start of a header.
func more(name, in string) proxyCase {
	return proxyCase{name: name, in: in, n: len(in), more: true}
}

// v1Cases are version 1 lines: the specification's examples and limits,
// then every rule broken.
func v1Cases() []proxyCase {
	// A TCP6 line of exactly 107 bytes, the limit: a dotted quad makes an
	// address longer than the 39 characters of eight full groups.
	long6a := "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" // 45
	long6b := "fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4"          // 36
	line107 := "PROXY TCP6 " + long6a + " " + long6b + " 65535 65535\r\n"
	line108 := "PROXY TCP6 " + long6a + " " + long6b + "0 65535 65535\r\n"
	if len(line107) != 107 {
		panic(fmt.Sprintf("line107 is %d bytes", len(line107)))
	}
	unknown107 := "PROXY UNKNOWN " + ffff6 + " " + ffff6 + " 65535 65535\r\n"
	unknown108 := "PROXY UNKNOWN " + ffff6 + " " + ffff6 + " 65535 655355\r\n"
	const specLine = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
	tcp4 := "PROXY TCP4 1.2.3.4 5.6.7.8 "
	tcp6 := "PROXY TCP6 "
	return []proxyCase{
		// The specification's example, before an HTTP request.
		{name: "spec example", in: specLine + "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n",
			n: len(specLine), src: "192.168.0.1:56324"},
		// The specification's longest lines.
		valid("spec TCP4 longest", "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", "255.255.255.255:65535"),
		valid("spec TCP6 longest", "PROXY TCP6 "+ffff6+" "+ffff6+" 65535 65535\r\n", "["+ffff6+"]:65535"),
		valid("spec UNKNOWN short", "PROXY UNKNOWN\r\n", ""),
		valid("spec UNKNOWN worst case, 107 bytes", unknown107, ""),
		invalid("UNKNOWN, 108 bytes", unknown108, server.ErrProxyOversized, unknown108[:105]),
		valid("TCP6 of 107 bytes", line107, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
		invalid("TCP6 of 108 bytes", line108, server.ErrProxyOversized, line108[:105]),

		// What HAProxy sends.
		valid("TCP4 zeros", "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", "0.0.0.0:0"),
		valid("TCP4 loopback", "PROXY TCP4 127.0.0.2 127.0.0.1 40000 3137\r\n", "127.0.0.2:40000"),
		valid("TCP6 compressed", "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n", "[2001:db8::1]:1234"),
		valid("TCP6 v4-mapped, as inet_ntop writes it", "PROXY TCP6 ::ffff:192.0.2.1 ::ffff:192.0.2.2 1 2\r\n", "192.0.2.1:1"),
		valid("TCP6 v4-compatible stays IPv6", "PROXY TCP6 ::1.2.3.4 ::1 1 2\r\n", "[::102:304]:1"),
		valid("TCP6 dotted quad after six groups", "PROXY TCP6 1:2:3:4:5:6:1.2.3.4 :: 1 2\r\n", "[1:2:3:4:5:6:102:304]:1"),
		valid("TCP6 dotted quad after a gap", "PROXY TCP6 1::6:1.2.3.4 :: 1 2\r\n", "[1::6:102:304]:1"),
		valid("TCP6 all zeros", "PROXY TCP6 :: :: 0 0\r\n", "[::]:0"),
		valid("TCP6 loopback", "PROXY TCP6 ::1 ::1 65535 1\r\n", "[::1]:65535"),
		valid("TCP6 gap at the end", "PROXY TCP6 1:2:3:4:5:6:7:: ::1 1 2\r\n", "[1:2:3:4:5:6:7:0]:1"),
		valid("TCP6 gap at the start", "PROXY TCP6 ::2:3:4:5:6:7:8 ::1 1 2\r\n", "[0:2:3:4:5:6:7:8]:1"),
		valid("TCP6 gap in the middle", "PROXY TCP6 1:2::7:8 ::1 1 2\r\n", "[1:2::7:8]:1"),
		valid("TCP6 four-digit groups with zeros", "PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0001 ::1 1 2\r\n", "[::1]:1"),
		valid("TCP6 upper and lower case", "PROXY TCP6 ABCD:ef01:2345:6789:aBcD:EF01:2345:6789 ::1 1 2\r\n", "[abcd:ef01:2345:6789:abcd:ef01:2345:6789]:1"),
		valid("UNKNOWN with addresses", "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", ""),
		valid("UNKNOWN with a space only", "PROXY UNKNOWN \r\n", ""),
		valid("UNKNOWN with any bytes", "PROXY UNKNOWN \x00\xff\t junk \x7f\r\n", ""),

		// Not CRLF.
		invalid("LF without CR", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n", server.ErrProxyMalformed, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443"),
		invalid("CR without LF", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rGET", server.ErrProxyMalformed, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r"),
		invalid("CR CR LF", "PROXY UNKNOWN\r\r\n", server.ErrProxyMalformed, "PROXY UNKNOWN\r"),
		invalid("UNKNOWN, LF without CR", "PROXY UNKNOWN\n", server.ErrProxyMalformed, "PROXY UNKNOWN"),
		invalid("UNKNOWN rest, LF without CR", "PROXY UNKNOWN abc\ndef\r\n", server.ErrProxyMalformed, "PROXY UNKNOWN abc"),
		invalid("UNKNOWN rest, CR without LF", "PROXY UNKNOWN a\rb\r\n", server.ErrProxyMalformed, "PROXY UNKNOWN a\r"),
		invalid("UNKNOWN without end", "PROXY UNKNOWN "+strings.Repeat("x", 200), server.ErrProxyOversized, "PROXY UNKNOWN "+strings.Repeat("x", 91)),
		invalid("CR at byte 107", "PROXY UNKNOWN "+strings.Repeat("x", 92)+"\r\n", server.ErrProxyOversized, "PROXY UNKNOWN "+strings.Repeat("x", 91)),
		more("UNKNOWN, CR at byte 106", "PROXY UNKNOWN "+strings.Repeat("x", 91)+"\r"),
		more("TCP4 waiting for LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"),

		// The protocol name.
		invalid("lower case", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyNotHeader, ""),
		invalid("PROXY without space", "PROXY\r\n", server.ErrProxyNotHeader, "PROXY"),
		invalid("two spaces", "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, "PROXY "),
		invalid("TCP5", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, "PROXY TCP"),
		invalid("tcp4", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, "PROXY "),
		invalid("UDP4", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, "PROXY U"),
		invalid("TCP4 then CRLF", "PROXY TCP4\r\n", server.ErrProxyMalformed, "PROXY TCP4"),
		invalid("UNKNOWNX", "PROXY UNKNOWNX\r\n", server.ErrProxyMalformed, "PROXY UNKNOWN"),
		invalid("UNKNOW", "PROXY UNKNOW\r\n", server.ErrProxyMalformed, "PROXY UNKNOW"),

		// IPv4 addresses.
		invalid("IPv4 leading zero", tcp4[:11]+"01.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"0"),
		invalid("IPv4 octet 256", tcp4[:11]+"256.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"25"),
		invalid("IPv4 octet 1000", tcp4[:11]+"1.2.3.1000 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"1.2.3.100"),
		invalid("IPv4 three octets", tcp4[:11]+"1.2.3 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"1.2.3"),
		invalid("IPv4 five octets", tcp4[:11]+"1.2.3.4.5 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"1.2.3.4"),
		invalid("IPv4 empty octet", tcp4[:11]+"1..3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"1."),
		invalid("IPv4 leading dot", tcp4[:11]+".1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]),
		invalid("IPv4 trailing dot", tcp4[:11]+"1.2.3. 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"1.2.3."),
		invalid("IPv4 hex", tcp4[:11]+"0x1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]+"0"),
		invalid("IPv6 in TCP4", tcp4[:11]+"::1 ::1 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]),
		invalid("empty address", tcp4[:11]+" 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp4[:11]),
		invalid("address then CRLF", tcp4[:11]+"1.2.3.4\r\n", server.ErrProxyMalformed, tcp4[:11]+"1.2.3.4"),

		// Ports.
		invalid("port 65536", tcp4+"65536 2\r\n", server.ErrProxyMalformed, tcp4+"6553"),
		invalid("port 100000", tcp4+"100000 2\r\n", server.ErrProxyMalformed, tcp4+"10000"),
		invalid("port leading zero", tcp4+"01 2\r\n", server.ErrProxyMalformed, tcp4+"0"),
		invalid("dport leading zero", tcp4+"1 00\r\n", server.ErrProxyMalformed, tcp4+"1 0"),
		invalid("port negative", tcp4+"-1 2\r\n", server.ErrProxyMalformed, tcp4),
		invalid("one port", tcp4+"1\r\n", server.ErrProxyMalformed, tcp4+"1"),
		invalid("three ports", tcp4+"1 2 3\r\n", server.ErrProxyMalformed, tcp4+"1 2"),
		invalid("space before CRLF", tcp4+"1 2 \r\n", server.ErrProxyMalformed, tcp4+"1 2"),
		invalid("empty port", tcp4+" 2\r\n", server.ErrProxyMalformed, tcp4),
		invalid("empty dport", tcp4+"1 \r\n", server.ErrProxyMalformed, tcp4+"1 "),
		valid("port 65535 and 0", tcp4+"65535 0\r\n", "1.2.3.4:65535"),

		// IPv6 addresses.
		invalid("IPv4 in TCP6", tcp6+"1.2.3.4 5.6.7.8 1 2\r\n", server.ErrProxyMalformed, tcp6+"1"),
		invalid("nine groups", tcp6+"1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1:2:3:4:5:6:7:8"),
		invalid("seven groups", tcp6+"1:2:3:4:5:6:7 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1:2:3:4:5:6:7"),
		invalid("eight groups and a gap", tcp6+"1:2:3:4:5:6:7:8:: ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1:2:3:4:5:6:7:8"),
		invalid("gap and eight groups", tcp6+"1::2:3:4:5:6:7:8 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1::2:3:4:5:6:7"),
		invalid("gap, seven groups, one more", tcp6+"1:2:3:4:5:6:7::8 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1:2:3:4:5:6:7::"),
		invalid("two gaps", tcp6+"1::2::3 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1::2:"),
		invalid("three colons", tcp6+"1:::2 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1::"),
		invalid("five hex digits", tcp6+"12345:: ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1234"),
		invalid("single leading colon", tcp6+":1:2:3:4:5:6:7 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+":"),
		invalid("single colon", tcp6+": ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+":"),
		invalid("gap, then a single trailing colon", tcp6+"1::2: ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1::2:"),
		invalid("single trailing colon", tcp6+"1:2:3:4:5:6:7: ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1:2:3:4:5:6:7:"),
		invalid("not hex", tcp6+"g:: ::1 1 2\r\n", server.ErrProxyMalformed, tcp6),
		invalid("zone", tcp6+"fe80::1%eth0 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"fe80::1"),
		invalid("brackets", tcp6+"[::1] ::1 1 2\r\n", server.ErrProxyMalformed, tcp6),
		invalid("dotted quad too early", tcp6+"1:2:3:4:5:1.2.3.4 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1:2:3:4:5:1"),
		valid("dotted quad after a gap, seven groups", tcp6+"1::3:4:5:6:1.2.3.4 ::1 1 2\r\n", "[1:0:3:4:5:6:102:304]:1"),
		invalid("dotted quad after a gap, too many groups", tcp6+"1::3:4:5:6:7:1.2.3.4 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"1::3:4:5:6:7:1"),
		invalid("dotted quad leading zero", tcp6+"::ffff:01.2.3.4 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"::ffff:01"),
		invalid("dotted quad hex octet", tcp6+"::ffff:a.2.3.4 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"::ffff:a"),
		invalid("dotted quad octet 256", tcp6+"::ffff:256.2.3.4 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"::ffff:256"),
		invalid("dotted quad of three", tcp6+"::ffff:1.2.3 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"::ffff:1.2.3"),
		invalid("dotted quad then a group", tcp6+"::1.2.3.4:5 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"::1.2.3.4"),
		invalid("dotted quad after a colon", tcp6+"::ffff:.1.2.3.4 ::1 1 2\r\n", server.ErrProxyMalformed, tcp6+"::ffff:"),
		invalid("bad destination", tcp6+"::1 1::2::3 1 2\r\n", server.ErrProxyMalformed, tcp6+"::1 1::2:"),
		valid("destination is not kept", tcp6+"1:2:3:4:5:6:7:8 9:a:b:c:d:e:f:10 1 2\r\n", "[1:2:3:4:5:6:7:8]:1"),
	}
}

// v2Cases are version 2 headers: every family and command, TLVs, lengths
// that lie, unknown versions and commands.
func v2Cases() []proxyCase {
	ip4 := inet("192.168.0.1:56324", "192.168.0.11:443")
	ip6 := inet("[2001:db8::1]:1234", "[2001:db8::2]:443")
	mapped := inet("[::ffff:10.0.0.1]:5", "[::ffff:10.0.0.2]:6")
	unix := append(append(zeros(0), "/run/client.sock"...), zeros(216-len("/run/client.sock"))...)
	tlvs := [][]byte{
		tlv(0x01, 2, "h2"),                   // ALPN
		tlv(0x02, 11, "example.com"),         // AUTHORITY
		tlv(0x03, 4, "\x01\x02\x03\x04"),     // CRC32C, not checked
		tlv(0x04, 5, "\x00\x00\x00\x00\x00"), // NOOP
		tlv(0x05, 8, "uniqueid"),             // UNIQUE_ID
		tlv(0xe0, 0, ""),                     // application-specific, empty
	}
	withTLVs := append([][]byte{ip4}, tlvs...)
	fixed := func(verCmd, fam byte, length int) string { return v2(verCmd, fam, length) }
	return []proxyCase{
		// HAProxy's send-proxy-v2.
		valid("TCP over IPv4", v2Block(0x21, 0x11, ip4), "192.168.0.1:56324"),
		valid("UDP over IPv4", v2Block(0x21, 0x12, ip4), "192.168.0.1:56324"),
		valid("TCP over IPv6", v2Block(0x21, 0x21, ip6), "[2001:db8::1]:1234"),
		valid("UDP over IPv6", v2Block(0x21, 0x22, ip6), "[2001:db8::1]:1234"),
		valid("TCP over IPv6, v4-mapped", v2Block(0x21, 0x21, mapped), "10.0.0.1:5"),
		valid("UNIX stream", v2Block(0x21, 0x31, unix), ""),
		valid("UNIX datagram", v2Block(0x21, 0x32, unix), ""),
		valid("PROXY, UNSPEC", v2Block(0x21, 0x00), ""),
		valid("PROXY, UNSPEC with bytes", v2Block(0x21, 0x00, ip4), ""),
		valid("PROXY, IPv4 with UNSPEC transport", v2Block(0x21, 0x10, ip4), ""),
		valid("PROXY, IPv4 with UNSPEC transport, no addresses", v2Block(0x21, 0x10), ""),
		valid("PROXY, IPv6 with UNSPEC transport", v2Block(0x21, 0x20, ip6), ""),
		valid("PROXY, UNIX with UNSPEC transport", v2Block(0x21, 0x30), ""),
		valid("PROXY, UNSPEC family with STREAM", v2Block(0x21, 0x01), ""),
		// LOCAL: health checks, served as themselves whatever follows.
		valid("LOCAL", v2Block(0x20, 0x00), ""),
		valid("LOCAL with IPv4 addresses", v2Block(0x20, 0x11, ip4), ""),
		valid("LOCAL with IPv4 family and no addresses", v2Block(0x20, 0x11), ""),
		valid("LOCAL with IPv6 addresses and TLVs", v2Block(0x20, 0x21, append([][]byte{ip6}, tlvs...)...), ""),
		// TLVs are skipped.
		valid("TLVs", v2Block(0x21, 0x11, withTLVs...), "192.168.0.1:56324"),
		valid("IPv6 and TLVs", v2Block(0x21, 0x21, append([][]byte{ip6}, tlvs...)...), "[2001:db8::1]:1234"),
		valid("TLV whose length overruns the block, skipped unread", v2Block(0x21, 0x11, ip4, tlv(0x01, 0xffff, "ab")), "192.168.0.1:56324"),
		valid("half a TLV, skipped unread", v2Block(0x21, 0x11, ip4, []byte{0x04}), "192.168.0.1:56324"),
		valid("longest", v2Block(0x21, 0x11, ip4, zeros(server.MaxProxyV2-16-12)), "192.168.0.1:56324"),
		valid("longest UNIX", v2Block(0x21, 0x31, unix, zeros(server.MaxProxyV2-16-216)), ""),

		// Lengths that lie.
		invalid("IPv4 length 11", v2(0x21, 0x11, 11, ip4[:11]), server.ErrProxyMalformed, v2Sig+"\x21\x11\x00"),
		invalid("IPv4 length 0", v2(0x21, 0x11, 0, ip4), server.ErrProxyMalformed, v2Sig+"\x21\x11\x00"),
		invalid("IPv6 length 12", v2(0x21, 0x21, 12, ip4), server.ErrProxyMalformed, v2Sig+"\x21\x21\x00"),
		invalid("IPv6 length 35", v2(0x21, 0x21, 35, ip6), server.ErrProxyMalformed, v2Sig+"\x21\x21\x00"),
		invalid("UNIX length 215", v2(0x21, 0x31, 215, unix), server.ErrProxyMalformed, v2Sig+"\x21\x31\x00"),
		invalid("UDP over IPv6 length 0", v2(0x21, 0x22, 0), server.ErrProxyMalformed, v2Sig+"\x21\x22\x00"),
		more("IPv4 length 12, 11 bytes come", v2(0x21, 0x11, 12, ip4[:11])),
		more("IPv4 length 30, 12 bytes come", v2(0x21, 0x11, 30, ip4)),
		more("fixed part only", fixed(0x21, 0x11, 12)),
		invalid("oversized by one", v2(0x21, 0x11, server.MaxProxyV2-16+1, ip4), server.ErrProxyOversized, v2Sig+"\x21\x11\x02"),
		invalid("oversized 65535", v2(0x21, 0x11, 0xffff, ip4), server.ErrProxyOversized, v2Sig+"\x21\x11\xff"),
		invalid("LOCAL oversized", v2(0x20, 0x00, 0x1000), server.ErrProxyOversized, v2Sig+"\x20\x00\x10"),

		// Versions, commands, families, transports.
		invalid("version 1", v2Block(0x11, 0x11, ip4), server.ErrProxyMalformed, v2Sig),
		invalid("version 3", v2Block(0x31, 0x11, ip4), server.ErrProxyMalformed, v2Sig),
		invalid("version 0", v2Block(0x01, 0x11, ip4), server.ErrProxyMalformed, v2Sig),
		invalid("version 15", v2Block(0xf1, 0x11, ip4), server.ErrProxyMalformed, v2Sig),
		invalid("command 2", v2Block(0x22, 0x11, ip4), server.ErrProxyMalformed, v2Sig),
		invalid("command 15", v2Block(0x2f, 0x11, ip4), server.ErrProxyMalformed, v2Sig),
		invalid("family 4", v2Block(0x21, 0x41, ip4), server.ErrProxyMalformed, v2Sig+"\x21"),
		invalid("family 15", v2Block(0x21, 0xf1, ip4), server.ErrProxyMalformed, v2Sig+"\x21"),
		invalid("transport 3", v2Block(0x21, 0x13, ip4), server.ErrProxyMalformed, v2Sig+"\x21"),
		invalid("LOCAL, family 4", v2Block(0x20, 0x40), server.ErrProxyMalformed, v2Sig+"\x20"),

		// The signature.
		invalid("signature, last byte wrong", v2Sig[:11]+"\x0D\x21\x11\x00\x0c", server.ErrProxyNotHeader, v2Sig[:11]),
		invalid("signature, NUL missing", "\r\n\r\n\r\nQUIT\n\x21\x11", server.ErrProxyNotHeader, "\r\n\r\n"),
		invalid("blank line", "\r\n\r\nhello\n", server.ErrProxyNotHeader, "\r\n\r\n"),
		more("signature only", v2Sig),
		more("signature and version", v2Sig+"\x21"),
	}
}

// otherCases are connections that do not start with a header, or have not
// yet said.
func otherCases() []proxyCase {
	return []proxyCase{
		more("nothing", ""),
		more("P", "P"),
		more("PROXY", "PROXY"),
		more("CR", "\r"),
		invalid("HTTP", "GET / HTTP/1.1\r\n\r\n", server.ErrProxyNotHeader, ""),
		invalid("TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", server.ErrProxyNotHeader, ""),
		invalid("a message", payload, server.ErrProxyNotHeader, ""),
		invalid("LF", "\n", server.ErrProxyNotHeader, ""),
		invalid("CR LF LF", "\r\n\n", server.ErrProxyNotHeader, "\r\n"),
		invalid("PROXX", "PROXX TCP4", server.ErrProxyNotHeader, "PROX"),
		invalid("NUL", "\x00", server.ErrProxyNotHeader, ""),
	}
}

func allProxyCases() []proxyCase {
	return append(append(v1Cases(), v2Cases()...), otherCases()...)
}

// feedPieces feeds pieces to h in order until the header is done or
// invalid, checking that Feed takes all of a piece until then. It returns
// the bytes taken in all.
func feedPieces(t *testing.T, h *server.ProxyHeader, pieces ...string) (n int, done bool, err error) {
	t.Helper()
	for _, p := range pieces {
		k, d, e := h.Feed([]byte(p))
		if k < 0 || k > len(p) {
			t.Fatalf("Feed took %d bytes of %d", k, len(p))
		}
		n += k
		if d || e != nil {
			return n, d, e
		}
		if k != len(p) {
			t.Fatalf("Feed took %d bytes of %d, neither done nor failing", k, len(p))
		}
	}
	return n, false, nil
}

// check feeds c.in to h as pieces and checks the outcome.
func (c proxyCase) check(t *testing.T, how string, h *server.ProxyHeader, pieces ...string) {
	t.Helper()
	n, done, err := feedPieces(t, h, pieces...)
	wantDone := c.err == nil && !c.more
	if n != c.n || done != wantDone || err != c.err {
		t.Errorf("%s, %s: got %d, %v, %v, want %d, %v, %v", c.name, how, n, done, err, c.n, wantDone, c.err)
		return
	}
	src, ok := h.Source()
	got := ""
	if ok {
		got = src.String()
	}
	if !done && ok {
		t.Errorf("%s, %s: Source %v before the header is done", c.name, how, src)
	}
	if wantDone && got != c.src {
		t.Errorf("%s, %s: Source %q, want %q", c.name, how, got, c.src)
	}
	// Done and failed are final: Feed takes nothing and says so again.
	if done || err != nil {
		k, d, e := h.Feed([]byte("PROXY UNKNOWN\r\n"))
		if k != 0 || d != done || e != err {
			t.Errorf("%s, %s: Feed after the end: got %d, %v, %v, want 0, %v, %v", c.name, how, k, d, e, done, err)
		}
	}
}

func TestProxyHeader(t *testing.T) {
	for _, c := range allProxyCases() {
		t.Run(c.name, func(t *testing.T) {
			var h server.ProxyHeader
			c.check(t, "whole", &h, c.in)
			for i := 0; i <= len(c.in); i++ {
				h.Reset()
				c.check(t, fmt.Sprintf("split at %d", i), &h, c.in[:i], c.in[i:])
			}
			bytewise := make([]string, 0, len(c.in)+1)
			for i := range len(c.in) {
				bytewise = append(bytewise, c.in[i:i+1], "")
			}
			h.Reset()
			c.check(t, "byte by byte", &h, bytewise...)
		})
	}
}

// TestProxyHeaderPayload checks that the bytes after a header, in the same
// slice, are left for the connection.
func TestProxyHeaderPayload(t *testing.T) {
	for _, header := range []string{
		"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
		"PROXY UNKNOWN\r\n",
		v2Block(0x21, 0x11, inet("1.2.3.4:5", "6.7.8.9:10"), tlv(0x04, 3, "abc")),
		v2Block(0x20, 0x00),
	} {
		var h server.ProxyHeader
		in := []byte(header + payload)
		n, done, err := h.Feed(in)
		if !done || err != nil || string(in[n:]) != payload {
			t.Errorf("%q: got %v, %v, rest %q, want done and rest %q", header, done, err, in[n:], payload)
		}
	}
}

// TestProxyHeaderReuse feeds every case to one ProxyHeader, Reset between
// them: nothing of one connection leaks into the next.
func TestProxyHeaderReuse(t *testing.T) {
	var h server.ProxyHeader
	cases := allProxyCases()
	for range 2 {
		for _, c := range cases {
			h.Reset()
			c.check(t, "reused", &h, c.in)
		}
	}
}

// TestProxyHeaderSourceMatchesNetip checks the TCP6 addresses parsed
// byte by byte against net/netip.
func TestProxyHeaderSourceMatchesNetip(t *testing.T) {
	for _, c := range v1Cases() {
		f := strings.Fields(c.in)
		if c.err != nil || c.more || len(f) < 6 || f[1] != "TCP6" {
			continue
		}
		var h server.ProxyHeader
		h.Feed([]byte(c.in))
		src, ok := h.Source()
		want := netip.AddrPortFrom(netip.MustParseAddr(f[2]).Unmap(), src.Port())
		if !ok || src != want {
			t.Errorf("%s: got %v, %v, want %v", c.name, src, ok, want)
		}
	}
}

func TestProxyHeaderSize(t *testing.T) {
	if got, want := unsafe.Sizeof(server.ProxyHeader{}), uintptr(40); got > want {
		t.Errorf("ProxyHeader is %d bytes, want at most %d", got, want)
	}
}

func TestProxyHeaderAllocs(t *testing.T) {
	for _, c := range allProxyCases() {
		in := []byte(c.in)
		var h server.ProxyHeader
		if got := testing.AllocsPerRun(100, func() {
			h.Reset()
			h.Feed(in[:len(in)/2])
			h.Feed(in[len(in)/2:])
			h.Source()
		}); got != 0 {
			t.Errorf("%s: got %v allocs, want 0", c.name, got)
		}
	}
}

func BenchmarkProxyHeader(b *testing.B) {
	for _, c := range []struct{ name, header string }{
		{"v1-tcp4", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
		{"v1-tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n"},
		{"v1-unknown", "PROXY UNKNOWN\r\n"},
		{"v2-tcp4", v2Block(0x21, 0x11, inet("192.168.0.1:56324", "192.168.0.11:443"))},
		{"v2-tcp6", v2Block(0x21, 0x21, inet("[2001:db8::1]:1234", "[2001:db8::2]:443"))},
		{"v2-local", v2Block(0x20, 0x00)},
	} {
		b.Run(c.name, func(b *testing.B) {
			in := []byte(c.header + payload)
			var h server.ProxyHeader
			b.SetBytes(int64(len(c.header)))
			b.ReportAllocs()
			for b.Loop() {
				h.Reset()
				if _, done, _ := h.Feed(in); !done {
					b.Fatal("not done")
				}
				if _, ok := h.Source(); ok != (c.name != "v1-unknown" && c.name != "v2-local") {
					b.Fatal("wrong source")
				}
			}
		})
	}
}
