package tlsflood

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/testcert"
	"github.com/tcpoll/poll/server"
)

// TestFlood: 2,000 clients that never complete a handshake (silent, a
// half ClientHello, garbage) do not keep a healthy client from its
// handshakes, and each is closed within the handshake deadline. The cap on
// handshakes in flight is far below the attackers' number: a server that
// let them hold its slots would hold the healthy client until they are
// closed, seconds later.
func TestFlood(t *testing.T) {
	p, err := testcert.Get()
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 2 * time.Second
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", TLS: p.ServerConfig(), HandshakeTimeout: deadline, MaxHandshakes: 64})
	if errors.Is(err, errors.ErrUnsupported) && evio {
		return // the reference engine refuses TLS, as documented
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{
		Addr:   s.Addr().String(),
		Silent: 700, Partial: 700, Garbage: 600,
		Handshakes: 50,
		TLS:        p.ClientConfig(),
		Wait:       5 * time.Second,
	})
	t.Logf("%v; tls_errors %d", res, s.Stats().TLSErrors.Load())
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed > 0 || res.Handshakes != 50 {
		t.Errorf("healthy handshakes: %d ok, %d failed; want 50 ok", res.Handshakes, res.Failed)
	}
	// Not a benchmark (bench/run measures the p99): a bound only a
	// handshake stuck behind the attackers can pass.
	if res.Max > deadline/2 {
		t.Errorf("the slowest healthy handshake took %v, as if it waited for the attackers' deadline", res.Max)
	}
	if res.DialErrors > 0 || res.Attackers != 2000 {
		t.Errorf("%d attackers connected, %d dial errors; want 2000", res.Attackers, res.DialErrors)
	}
	if res.Closed != res.Attackers {
		t.Errorf("%d of %d attackers closed within 5s", res.Closed, res.Attackers)
	}
	// The deadline counts from the accept, in milliseconds rounded up; a
	// second is room for a loaded machine to get round to it.
	if res.Slowest > deadline+time.Second {
		t.Errorf("the slowest attacker closed after %v, want within a second of the %v deadline", res.Slowest, deadline)
	}
	if got := s.Stats().TLSErrors.Load(); got < 2000 {
		t.Errorf("tls_errors %d, want at least the 2000 attackers", got)
	}
}
