package server_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// TestTLSWaitingHelloSendsMore: with both handshake slots held, a client
// whose ClientHello waits for one sends more before the server's answer
// (ChangeCipherSpec records, as TLS 1.3's middlebox compatibility lets
// it). Its handshake starts once, when a slot frees, and gives it back at
// its end. Were it started once per record, the second start would run a
// second goroutine on the same connection and keep a slot for ever: then
// one stalled client would be enough to hold a healthy one for its whole
// deadline.
func TestTLSWaitingHelloSendsMore(t *testing.T) {
	const deadline = 3 * time.Second
	s, ok := tlsServer(t, server.Config{MaxHandshakes: 2, HandshakeTimeout: deadline})
	if !ok {
		return
	}
	st := s.Stats()
	hello := clientHello(t)
	stall := func() *client {
		c := dial(t, s.Addr())
		c.send(string(hello))
		c.c.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := c.c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("no ServerHello for a whole ClientHello: %v", err)
		}
		return c
	}
	a, b := stall(), stall()
	in := st.BytesIn.Load()
	waiter := dial(t, s.Addr())
	waiter.send(string(hello))
	waitFor(t, "the server to read the waiting ClientHello", func() bool { return st.BytesIn.Load() >= in+int64(len(hello)) })
	for i := range 2 {
		waiter.send("\x14\x03\x03\x00\x01\x01") // ChangeCipherSpec
		if s.Engine() != "poll" {
			continue // stdnet reads nothing more until the handshake runs
		}
		waitFor(t, "the server to read the waiting client's record", func() bool {
			return st.BytesIn.Load() >= in+int64(len(hello)+6*(i+1))
		})
	}
	// Both slots free at once: the waiter's handshake starts, and stalls
	// (this client never finishes), until its deadline.
	a.c.Close()
	b.c.Close()
	waitFor(t, "the waiter's handshake to end at its deadline", func() bool { return st.TLSErrors.Load() == 3 })

	stall() // holds one slot; the other must be free
	start := time.Now()
	c := mustDialTLS(t, s.Addr(), clientConfig(t, tls.VersionTLS13))
	c.send("hi\n")
	c.expect(server.Answer)
	// Not a benchmark: a handshake behind a slot kept for ever waits the
	// stalled client's whole deadline.
	if took := time.Since(start); took > deadline/2 {
		t.Fatalf("a healthy handshake took %v with one of two slots held", took)
	}
}
