package server

import (
	"net/netip"
	"sync"
	"time"
)

// ProxyHeaderTimeout bounds how long a connection may take to send its
// PROXY protocol header (Config.ProxyProtocol): a balancer sends it with
// the connection's first segment, so only a client trickling bytes, the
// slowloris of headers, takes longer.
const ProxyHeaderTimeout = 3 * time.Second

// ipLimit counts the open connections of each client address, for
// Config.MaxConnsPerIP. Loops share it; it is touched only when the cap is
// set, once as a connection opens and once as it closes.
type ipLimit struct {
	max int // any int: no address can have more than 2^31 open
	mu  sync.Mutex
	n   map[netip.Addr]int32
}

func newIPLimit(max int) *ipLimit {
	if max == 0 {
		return nil
	}
	return &ipLimit{max: max, n: make(map[netip.Addr]int32)}
}

// take counts a connection from a, unless a has max open already.
func (l *ipLimit) take(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int(l.n[a]) >= l.max {
		return false
	}
	l.n[a]++
	return true
}

// release uncounts a connection from a.
func (l *ipLimit) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[a]--; l.n[a] <= 0 {
		delete(l.n, a)
	}
}
