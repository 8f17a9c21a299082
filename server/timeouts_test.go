package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// timeoutHandler is a recorder that sets each connection's read and write
// timeouts in OnOpen, those that are not zero, and sets both again in
// OnClose, where they must do nothing.
type timeoutHandler struct {
	*recorder
	read, write time.Duration
}

func (h timeoutHandler) OnOpen(c *server.Conn) {
	if h.read > 0 {
		c.SetReadTimeout(h.read)
	}
	if h.write > 0 {
		c.SetWriteTimeout(h.write)
	}
	h.recorder.OnOpen(c)
}

func (h timeoutHandler) OnClose(c *server.Conn, why error) {
	c.SetReadTimeout(time.Nanosecond)
	c.SetWriteTimeout(time.Nanosecond)
	h.recorder.OnClose(c, why)
}

// waitEnd waits for hc's OnClose and returns when it came, and its reason.
func waitEnd(t *testing.T, r *recorder, hc *server.Conn, within time.Duration) (time.Time, error) {
	t.Helper()
	select {
	case got := <-r.ended:
		if got != hc {
			t.Fatalf("OnClose for another connection (%v)", r.why(got))
		}
		return time.Now(), r.why(hc)
	case <-time.After(within):
		t.Fatalf("no OnClose within %v", within)
		panic("unreachable")
	}
}

// stillOpen fails if a connection has ended.
func stillOpen(t *testing.T, r *recorder, what string) {
	t.Helper()
	select {
	case hc := <-r.ended:
		t.Fatalf("%s: closed (%v)", what, r.why(hc))
	default:
	}
}

// runOnLoop runs f on hc's loop and waits for it.
func runOnLoop(t *testing.T, hc *server.Conn, f func()) {
	t.Helper()
	done := make(chan struct{})
	if err := hc.Run(func() { f(); close(done) }); err != nil {
		t.Fatal(err)
	}
	receive(t, done, "Run's function")
}

// TestReadTimeout: a connection whose client sends nothing for the read
// timeout is closed with ErrIdle, no sooner, measured from its last input
// or from the call; input keeps it open; 0 turns it off, and a timeout set
// later from Run or a timer applies as well, to a Read already blocked on
// the stdnet engine.
func TestReadTimeout(t *testing.T) {
	const d = 150 * time.Millisecond
	t.Run("idle", func(t *testing.T) {
		r := newRecorder(false)
		s, ok := handlerServer(t, server.Config{}, timeoutHandler{recorder: r, read: d})
		if !ok {
			return
		}
		c := dial(t, s.Addr())
		hc := receive(t, r.opened, "OnOpen")
		sent := time.Now()
		c.send("x")
		at, why := waitEnd(t, r, hc, 2*time.Second)
		if why != server.ErrIdle {
			t.Fatalf("OnClose reason %v, want ErrIdle", why)
		}
		if e := at.Sub(sent); e < d {
			t.Fatalf("closed %v after the last input, sooner than the read timeout %v", e, d)
		}
		if got, err := readEnd(c.c, ioTimeout); err != nil && !isReset(err) {
			t.Fatalf("client read %q then %v; want the end", got, err)
		}
	})
	t.Run("active", func(t *testing.T) {
		r := newRecorder(false)
		s, ok := handlerServer(t, server.Config{}, timeoutHandler{recorder: r, read: d})
		if !ok {
			return
		}
		c := dial(t, s.Addr())
		hc := receive(t, r.opened, "OnOpen")
		var sent time.Time
		for start := time.Now(); time.Since(start) < 4*d; {
			sent = time.Now()
			c.send("x")
			time.Sleep(d / 3)
			stillOpen(t, r, "a client that sends every 50ms")
		}
		at, why := waitEnd(t, r, hc, 2*time.Second)
		if why != server.ErrIdle {
			t.Fatalf("OnClose reason %v once the client stopped, want ErrIdle", why)
		}
		if e := at.Sub(sent); e < d {
			t.Fatalf("closed %v after the last input, sooner than the read timeout %v", e, d)
		}
	})
	t.Run("off", func(t *testing.T) {
		// 300ms, so that Run comes before the deadline however busy the
		// machine.
		const d = 300 * time.Millisecond
		r := newRecorder(false)
		s, ok := handlerServer(t, server.Config{}, timeoutHandler{recorder: r, read: d})
		if !ok {
			return
		}
		off := dial(t, s.Addr())
		hoff := receive(t, r.opened, "OnOpen")
		opened := time.Now() // no sooner than the timeout's call
		runOnLoop(t, hoff, func() { hoff.SetReadTimeout(0) })
		// The control: the same timeout, left on.
		dial(t, s.Addr())
		hon := receive(t, r.opened, "OnOpen")
		if _, why := waitEnd(t, r, hon, 2*time.Second); why != server.ErrIdle {
			t.Fatalf("control: OnClose reason %v, want ErrIdle", why)
		}
		time.Sleep(time.Until(opened.Add(d + 400*time.Millisecond)))
		stillOpen(t, r, "read timeout turned off")
		off.c.Close()
		if _, why := waitEnd(t, r, hoff, ioTimeout); why != io.EOF {
			t.Fatalf("OnClose reason %v, want io.EOF", why)
		}
	})
	t.Run("later", func(t *testing.T) {
		r := newRecorder(false)
		s, ok := handlerServer(t, server.Config{}, r)
		if !ok {
			return
		}
		dial(t, s.Addr())
		hrun := receive(t, r.opened, "OnOpen")
		dial(t, s.Addr())
		htimer := receive(t, r.opened, "OnOpen")
		time.Sleep(2 * d)
		stillOpen(t, r, "no read timeout")
		// Both connections have been idle for 2*d: the wait starts at
		// the call.
		var set time.Time
		runOnLoop(t, hrun, func() {
			hrun.SetReadTimeout(d)
			set = time.Now()
		})
		at, why := waitEnd(t, r, hrun, 2*time.Second)
		if why != server.ErrIdle {
			t.Fatalf("set from Run: OnClose reason %v, want ErrIdle", why)
		}
		if e := at.Sub(set); e < d {
			t.Fatalf("set from Run: closed %v after the call, sooner than the read timeout %v", e, d)
		}
		setc := make(chan time.Time, 1)
		runOnLoop(t, htimer, func() {
			htimer.AfterFunc(d/3, func() {
				htimer.SetReadTimeout(d)
				setc <- time.Now()
			})
		})
		set = receive(t, setc, "the timer")
		at, why = waitEnd(t, r, htimer, 2*time.Second)
		if why != server.ErrIdle {
			t.Fatalf("set from a timer: OnClose reason %v, want ErrIdle", why)
		}
		if e := at.Sub(set); e < d {
			t.Fatalf("set from a timer: closed %v after the call, sooner than the read timeout %v", e, d)
		}
	})
}

// filler keeps a connection's pending output at MaxPendingOutput with
// AsyncWrites from its goroutine until the connection ends, and notes
// when the kernel last took some of it.
type filler struct {
	mu       sync.Mutex
	progress time.Time     // no later than the last progress seen
	full     int           // writes refused with ErrBackpressure
	gap      time.Duration // the longest wait between progresses seen
	done     chan struct{}
}

func keepFull(t *testing.T, hc *server.Conn) *filler {
	return keepFullTaken(t, hc, nil)
}

// keepFullTaken is keepFull for a connection whose Pending also falls
// when nothing is taken: over TLS on the poll engine, a write is charged
// for what its records could add, and the surplus uncounted once it is
// sealed. taken, the bytes the kernel has taken (Stats.BytesOut, with
// this connection alone), tells progress instead.
func keepFullTaken(t *testing.T, hc *server.Conn, taken func() int64) *filler {
	f := &filler{progress: time.Now(), done: make(chan struct{})}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 64)
	go func() {
		defer close(f.done)
		// The time is read before Pending: output taken after at shows
		// as a fall of Pending at the next sample.
		at, prev := time.Now(), hc.Pending()
		var took int64
		if taken != nil {
			took = taken()
		}
		for {
			err := hc.AsyncWrite(chunk)
			want := prev
			switch {
			case err == nil:
				want += len(chunk)
			case errors.Is(err, server.ErrBackpressure):
				f.mu.Lock()
				f.full++
				f.mu.Unlock()
				time.Sleep(time.Millisecond)
			case errors.Is(err, server.ErrClosed):
				return
			default:
				t.Errorf("AsyncWrite: %v", err)
				return
			}
			now, p := time.Now(), hc.Pending()
			progressed := p < want
			if taken != nil {
				v := taken()
				progressed, took = v > took, v
			}
			if progressed {
				f.mu.Lock()
				if g := at.Sub(f.progress); g > f.gap {
					f.gap = g
				}
				f.progress = at
				f.mu.Unlock()
			}
			at, prev = now, p
		}
	}()
	return f
}

// waitFull waits until the output has been full once.
func (f *filler) waitFull(t *testing.T) {
	t.Helper()
	waitFor(t, "full output", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.full > 0
	})
}

// wait waits for the filler's end, and returns when the output last
// progressed (at the latest) and how often it was full.
func (f *filler) wait(t *testing.T) (time.Time, int) {
	t.Helper()
	receive(t, f.done, "the filler's end")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.progress, f.full
}

// TestWriteTimeout: a client that takes none of its output for the write
// timeout is reset, with ErrWriteTimeout, no sooner; one that reads slowly
// makes progress, which restarts the wait, and is not closed.
func TestWriteTimeout(t *testing.T) {
	const d = 200 * time.Millisecond
	t.Run("stalled", func(t *testing.T) {
		r := newRecorder(false)
		s, ok := handlerServer(t, server.Config{}, timeoutHandler{recorder: r, write: d})
		if !ok {
			return
		}
		c := dial(t, s.Addr())
		c.c.SetReadBuffer(4096)
		hc := receive(t, r.opened, "OnOpen")
		f := keepFull(t, hc)
		at, why := waitEnd(t, r, hc, ioTimeout)
		last, full := f.wait(t)
		if why != server.ErrWriteTimeout {
			t.Fatalf("OnClose reason %v, want ErrWriteTimeout", why)
		}
		if full == 0 {
			t.Fatal("the output was never full")
		}
		if e := at.Sub(last); e < d || e > 3*time.Second {
			t.Fatalf("closed %v after the output's last progress; want the write timeout %v, and within 3s", e, d)
		}
		skipUnderWine(t, "Wine reports a reset that came before the read as EOF")
		if got, err := readEnd(c.c, ioTimeout); !isReset(err) {
			t.Fatalf("client read %d bytes then %v; want a reset", len(got), err)
		}
	})
	t.Run("later", func(t *testing.T) {
		r := newRecorder(false)
		s, ok := handlerServer(t, server.Config{}, r)
		if !ok {
			return
		}
		c := dial(t, s.Addr())
		c.c.SetReadBuffer(4096)
		hc := receive(t, r.opened, "OnOpen")
		f := keepFull(t, hc)
		f.waitFull(t)
		time.Sleep(2 * d)
		stillOpen(t, r, "no write timeout")
		var set time.Time
		runOnLoop(t, hc, func() {
			hc.SetWriteTimeout(d)
			set = time.Now()
		})
		at, why := waitEnd(t, r, hc, ioTimeout)
		last, _ := f.wait(t)
		if why != server.ErrWriteTimeout {
			t.Fatalf("OnClose reason %v, want ErrWriteTimeout", why)
		}
		if e := at.Sub(last); e < d {
			t.Fatalf("closed %v after the output's last progress, sooner than the write timeout %v", e, d)
		}
		if e := at.Sub(set); e > 3*time.Second {
			t.Fatalf("closed %v after the call", e)
		}
	})
	t.Run("slow reader", func(t *testing.T) {
		r := newRecorder(false)
		s, ok := handlerServer(t, server.Config{}, timeoutHandler{recorder: r, write: d})
		if !ok {
			return
		}
		c := dial(t, s.Addr())
		// A receive buffer of a fixed size, which each read empties: the
		// window opens at every read. An autotuned one, megabytes, can
		// free less than the loopback's MSS (64 KiB) per read, and the
		// window stays shut for reads on end.
		c.c.SetReadBuffer(128 << 10)
		hc := receive(t, r.opened, "OnOpen")
		f := keepFull(t, hc)
		buf := make([]byte, 256<<10)
		var got int
		start := time.Now()
		for time.Since(start) < time.Second {
			time.Sleep(d / 4)
			c.c.SetReadDeadline(time.Now().Add(ioTimeout))
			n, err := c.c.Read(buf)
			if err != nil {
				t.Fatalf("slow reader: %v after %d bytes in %v (OnClose: %v)", err, got, time.Since(start), r.why(hc))
			}
			got += n
			f.mu.Lock()
			gap := f.gap
			f.mu.Unlock()
			stillOpen(t, r, fmt.Sprintf("a client that reads every 50ms (%d bytes in %v, progress at most %v apart)", got, time.Since(start), gap))
		}
		f.mu.Lock()
		t.Logf("the slow reader read %d bytes in %v; the output progressed at most %v apart", got, time.Since(start), f.gap)
		f.mu.Unlock()
		// The control: the client stops reading.
		at, why := waitEnd(t, r, hc, ioTimeout)
		last, full := f.wait(t)
		if why != server.ErrWriteTimeout {
			t.Fatalf("OnClose reason %v once the client stopped reading, want ErrWriteTimeout", why)
		}
		if full == 0 {
			t.Fatal("the output was never full")
		}
		if e := at.Sub(last); e < d {
			t.Fatalf("closed %v after the output's last progress, sooner than the write timeout %v", e, d)
		}
	})
}

// TestTimeoutsAfterEnd: timeouts set after the end (in OnClose) do
// nothing, and timeouts pending at the end fire nothing after it.
func TestTimeoutsAfterEnd(t *testing.T) {
	const d = 200 * time.Millisecond
	r := newRecorder(false)
	s, ok := handlerServer(t, server.Config{}, timeoutHandler{recorder: r, read: d, write: d})
	if !ok {
		return
	}
	// The client ends first.
	c := dial(t, s.Addr())
	hc := receive(t, r.opened, "OnOpen")
	c.c.Close()
	if _, why := waitEnd(t, r, hc, ioTimeout); why != io.EOF {
		t.Fatalf("OnClose reason %v, want io.EOF", why)
	}
	// The handler ends a connection whose output waits.
	mine := errors.New("mine")
	stalled := dial(t, s.Addr())
	stalled.c.SetReadBuffer(4096)
	hs := receive(t, r.opened, "OnOpen")
	f := keepFull(t, hs)
	f.waitFull(t)
	if err := hs.Abort(mine); err != nil {
		t.Fatal(err)
	}
	if _, why := waitEnd(t, r, hs, ioTimeout); why != mine {
		t.Fatalf("OnClose reason %v, want %v", why, mine)
	}
	f.wait(t)
	// Past both deadlines: a second OnClose would panic in the recorder.
	time.Sleep(2 * d)
	stillOpen(t, r, "after the end")
	for _, h := range []*server.Conn{hc, hs} {
		if err := h.Run(func() {}); !errors.Is(err, server.ErrClosed) {
			t.Fatalf("Run after the end: %v, want ErrClosed", err)
		}
	}
}
