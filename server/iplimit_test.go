package server

import (
	"net/netip"
	"testing"
)

// TestIPLimit: an address may hold max connections at once; each release
// frees exactly one, and an address with none left is forgotten, so that
// clients that come and go do not stay in memory.
func TestIPLimit(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	l := newIPLimit(2)
	for i, want := range []bool{true, true, false} {
		if got := l.take(a); got != want {
			t.Fatalf("take %d of a = %v, want %v", i+1, got, want)
		}
	}
	if !l.take(b) {
		t.Fatal("b refused while a is at its cap")
	}
	l.release(a)
	if !l.take(a) || l.take(a) {
		t.Fatal("after one release, a must get exactly one more connection")
	}
	l.release(a)
	l.release(a)
	l.release(b)
	if n := l.len(); n != 0 {
		t.Fatalf("%d addresses tracked after every connection closed, want 0", n)
	}
	if newIPLimit(0) != nil {
		t.Fatal("newIPLimit(0) is not nil: no cap must cost nothing")
	}
	big := newIPLimit(1 << 32)
	for range 3 {
		if !big.take(a) {
			t.Fatal("a cap of 2^32 refused a connection")
		}
	}
}

// len is how many addresses hold connections.
func (l *ipLimit) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.n)
}
