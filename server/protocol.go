package server

import "net/netip"

// Protocol is the per-connection side of a server. An engine reads a
// connection's bytes, hands them to the connection's Protocol value and
// writes what it returns; it never looks inside. Engines call a Protocol
// value from one goroutine at a time.
type Protocol interface {
	// Feed consumes in, which it must not retain, appends the answers to
	// out and returns the extended slice. It returns close true once the
	// connection must be closed after the answers are written; Feed is not
	// called again after that. An engine bounds the memory a client that
	// does not read can cost by assuming Feed appends at most MaxExpansion
	// bytes per input byte.
	Feed(out, in []byte) (_ []byte, close bool)
	// End is called once when the client has half-closed: it appends the
	// answer to any unfinished message and returns the extended slice.
	End(out []byte) []byte
}

// RemoteAddrSetter is implemented by a Protocol value that wants its
// client's address. The engine calls SetRemoteAddr once, before the first
// Feed, with the peer's address, or with the PROXY header's source address
// when Config.ProxyProtocol is on and the header names one.
type RemoteAddrSetter interface {
	SetRemoteAddr(netip.AddrPort)
}

// MaxExpansion is the most output a Protocol may produce per input byte
// (one answer for a message that is a lone LF).
const MaxExpansion = len(Answer)
