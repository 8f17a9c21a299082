//go:build linux

package main

import (
	"strconv"
	"testing"
	"time"
)

// TestVerboseHeapFollowsInput: debug logging (-v) keeps each unfinished
// message to trace it, and must hold what a client sent, not what
// -max-message allows. With a 64 MiB -max-message, 20 clients that each
// send one byte made the tracing framer reserve 1,280 MiB of heap (RSS
// alone hides it: the reserved pages are never touched). The Go heap with
// -v must stay within a few MiB of the same test without it.
func TestVerboseHeapFollowsInput(t *testing.T) {
	const clients = 20
	heap := func(flags ...string) uint64 {
		p := startServer(t, 0, append([]string{"-max-message", strconv.Itoa(64 << 20)}, flags...)...)
		for range clients {
			c := dial(t, p.addr)
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		v := p.waitVars(t, 5*time.Second, "the clients' bytes in", func(v debugVars) bool {
			return v.Tcpoll["bytes_in"] == clients
		})
		return v.Memstats.HeapAlloc
	}
	quiet, verbose := heap(), heap("-v")
	t.Logf("heap with 20 one-byte clients: %d KiB, with -v %d KiB", quiet>>10, verbose>>10)
	if verbose > quiet+4<<20 {
		t.Fatalf("heap with -v is %d KiB, without %d KiB: want within 4 MiB", verbose>>10, quiet>>10)
	}
}
