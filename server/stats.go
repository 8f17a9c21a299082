package server

import "sync/atomic"

// answered counts the messages a built-in Framer answered in out: a run of
// Answers, and Closing at the end when the connection is to close.
func answered(out []byte, closing bool) int64 {
	n := int64(len(out) / len(Answer))
	if closing && len(out)%len(Answer) == len(Closing) {
		n++
	}
	return n
}

// Stats are a server's counters, safe to read at any time.
type Stats struct {
	// Accepted counts connections accepted and served.
	Accepted atomic.Int64
	// Rejected counts connections closed at once because MaxConns was
	// reached.
	Rejected atomic.Int64
	// Open is the number of connections open now.
	Open atomic.Int64
	// Messages counts messages answered, "close" included. Engines count
	// them for the built-in protocol only: another Protocol's answers are
	// opaque to them.
	Messages atomic.Int64
	// BytesIn and BytesOut count bytes read from and written to clients.
	BytesIn, BytesOut atomic.Int64
	// Backpressure counts the times reading from a client was paused
	// because its unread answers passed MaxPendingOutput.
	Backpressure atomic.Int64
	// IdleClosed counts connections closed by IdleTimeout.
	IdleClosed atomic.Int64
	// Resets counts connections ended by a reset or another socket error.
	Resets atomic.Int64
	// AcceptErrors counts failed accepts, EMFILE and ENFILE included.
	AcceptErrors atomic.Int64
	// ProxyErrors counts connections closed because they did not begin
	// with a valid PROXY protocol header in time (Config.ProxyProtocol).
	ProxyErrors atomic.Int64
	// RejectedPerIP counts connections closed at once because their client
	// address had Config.MaxConnsPerIP open already.
	RejectedPerIP atomic.Int64
	// TLSErrors counts connections closed because their TLS handshake
	// failed or did not end within Config.HandshakeTimeout, and
	// established ones closed for a TLS error (a bad record or alert).
	TLSErrors atomic.Int64
}

// Snapshot returns the counters by name, for expvar and logs.
func (s *Stats) Snapshot() map[string]int64 {
	return map[string]int64{
		"accepted":        s.Accepted.Load(),
		"rejected":        s.Rejected.Load(),
		"open":            s.Open.Load(),
		"messages":        s.Messages.Load(),
		"bytes_in":        s.BytesIn.Load(),
		"bytes_out":       s.BytesOut.Load(),
		"backpressure":    s.Backpressure.Load(),
		"idle_closed":     s.IdleClosed.Load(),
		"resets":          s.Resets.Load(),
		"accept_errors":   s.AcceptErrors.Load(),
		"proxy_errors":    s.ProxyErrors.Load(),
		"rejected_per_ip": s.RejectedPerIP.Load(),
		"tls_errors":      s.TLSErrors.Load(),
	}
}
