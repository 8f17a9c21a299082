//go:build linux

package main

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// nonReader is the client of the non-reading tests: it pipelines total
// bytes of "\n", one message each, and reads nothing until drain.
type nonReader struct {
	total   int
	written atomic.Int64
	done    chan error // the writer's end: nil once all is sent and end ran
}

// startNonReader starts writing to w, and calls end (a half-close) after
// the last byte.
func startNonReader(w io.Writer, total int, end func() error) *nonReader {
	n := &nonReader{total: total, done: make(chan error, 1)}
	go func() {
		chunk := bytes.Repeat([]byte("\n"), 64<<10)
		for left := total; left > 0; {
			// A tls.Conn takes a write whole or fails: counted then.
			k, err := w.Write(chunk[:min(left, len(chunk))])
			n.written.Add(int64(k))
			left -= k
			if err != nil {
				n.done <- err
				return
			}
		}
		n.done <- end()
	}()
	return n
}

// stall reads nothing for 2 s while the writer runs into the socket
// buffers, and checks that it stalled and that p's RSS, rss0 before, grew
// by less than 8 MiB: the server holds at most MaxPendingOutput for it.
func (n *nonReader) stall(t *testing.T, p *proc, rss0 int64) {
	t.Helper()
	var maxRSS int64
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		maxRSS = max(maxRSS, p.rss(t))
		time.Sleep(20 * time.Millisecond)
	}
	stalled := n.written.Load()
	t.Logf("not reading: %d bytes sent before the writer stalled; server RSS %d KiB at start, %d KiB at most",
		stalled, rss0>>10, maxRSS>>10)
	if stalled >= int64(n.total) {
		t.Fatalf("all %d bytes sent to a client that reads nothing: no backpressure", n.total)
	}
	if grew := maxRSS - rss0; grew > 8<<20 {
		t.Errorf("server RSS grew by %d KiB for a client that reads nothing, want < 8 MiB", grew>>10)
	}
}

// drain reads r to its end, checking every byte against the answers, and
// that there is one answer for each message and the writer ended well. It
// returns the error that ended the reading, for the caller to judge.
func (n *nonReader) drain(t *testing.T, r io.Reader) error {
	t.Helper()
	start := time.Now()
	buf := make([]byte, len(answers)-len(answer))
	var got int64
	var rerr error
	for rerr == nil {
		k, err := r.Read(buf)
		off := int(got % int64(len(answer)))
		if !bytes.Equal(buf[:k], answers[off:off+k]) {
			t.Fatalf("at byte %d: got %q, want answers", got, buf[:k])
		}
		got += int64(k)
		rerr = err
	}
	if err := <-n.done; err != nil {
		t.Errorf("sending: %v", err)
	}
	t.Logf("%d answers read in %v", got/int64(len(answer)), time.Since(start))
	if want := int64(n.total) * int64(len(answer)); got != want {
		t.Errorf("got %d bytes of answers (%d answers), want %d (%d)", got, got/int64(len(answer)), want, n.total)
	}
	return rerr
}
