package server

import "sync/atomic"

// Stats are a server's counters, safe to read at any time.
type Stats struct {
	// Accepted counts connections accepted and served.
	Accepted atomic.Int64
	// Rejected counts connections closed at once because MaxConns was
	// reached.
	Rejected atomic.Int64
	// Open is the number of connections open now.
	Open atomic.Int64
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
}

// Snapshot returns the counters by name, for expvar and logs.
func (s *Stats) Snapshot() map[string]int64 {
	return map[string]int64{
		"accepted":      s.Accepted.Load(),
		"rejected":      s.Rejected.Load(),
		"open":          s.Open.Load(),
		"bytes_in":      s.BytesIn.Load(),
		"bytes_out":     s.BytesOut.Load(),
		"backpressure":  s.Backpressure.Load(),
		"idle_closed":   s.IdleClosed.Load(),
		"resets":        s.Resets.Load(),
		"accept_errors": s.AcceptErrors.Load(),
	}
}
