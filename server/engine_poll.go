//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

// The poll engine: event loops on package poll, one per CPU by default.
// A connection's life is told in file order:
//
//	engine_poll.go  the engine: listeners, loops, start and stop
//	loop.go         a loop's turn: wait, dispatch, send the batch, close
//	loop_accept.go  accept: a descriptor number enters a loop, or is handed
//	                to another
//	loop_read.go    read and answer, and the shutdown drain
//	loop_write.go   the turn's send batch, queued output, backpressure
//	loop_close.go   finish, linger, drop and reap: the one place that closes
//	loop_stop.go    graceful and forced shutdown

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const engineName = "poll"

type pollEngine struct {
	cfg   *Config
	st    *Stats
	la    *net.TCPAddr
	loops []*loop
	table connTable
	epoch time.Time
	// handoff: loop 0 alone listens and hands connections to the others,
	// where the kernel cannot spread them (reusePortOpt is 0).
	handoff bool
	// releasedAt is the tick of the last releaseMemory, plus one.
	releasedAt atomic.Uint32

	ips *ipLimit // nil without Config.MaxConnsPerIP

	rejected  *rateLog
	acceptErr *rateLog
	connErr   *rateLog
	proxyErr  *rateLog

	mu      sync.Mutex
	serving bool
	stopped bool
	done    chan struct{}
}

func newEngine(cfg *Config, st *Stats) (engine, error) {
	spec, err := parseListen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	e := &pollEngine{
		cfg:       cfg,
		st:        st,
		epoch:     time.Now(),
		done:      make(chan struct{}),
		rejected:  newRateLog(cfg.Logger, slog.LevelInfo, "connection rejected"),
		acceptErr: newRateLog(cfg.Logger, slog.LevelWarn, "accept failed"),
		connErr:   newRateLog(cfg.Logger, slog.LevelDebug, "connection error"),
		proxyErr:  newRateLog(cfg.Logger, slog.LevelInfo, "PROXY header rejected"),
		ips:       newIPLimit(cfg.MaxConnsPerIP),
	}
	e.handoff = spreadByHandoff && cfg.Loops > 1
	for i := range cfg.Loops {
		var lfds []int
		if i == 0 || !e.handoff {
			if lfds, err = listenAll(spec, cfg.Loops > 1 && !e.handoff); err != nil {
				e.closeAll()
				return nil, err
			}
			if i == 0 {
				if e.la, err = boundAddr(lfds[0]); err != nil {
					closeFDs(lfds)
					return nil, err
				}
				// Later listeners join the port the first one got.
				spec.port = e.la.Port
			}
		}
		l, err := newLoop(e, lfds)
		if err != nil {
			closeFDs(lfds)
			e.closeAll()
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	if !cfg.DirectSend {
		e.openRings()
	}
	return e, nil
}

// spreadByHandoff: see pollEngine.handoff. A variable so that the tests
// can run the handoff on Linux too (TCPOLL_HANDOFF=1).
var spreadByHandoff = reusePortOpt == 0

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// openRings gives each loop a sendRing where io_uring works.
func (e *pollEngine) openRings() {
	for _, l := range e.loops {
		r, err := newSendRing()
		if err != nil {
			e.cfg.Logger.Info("answers sent with send(2): no io_uring", "err", err)
			for _, m := range e.loops {
				m.closeRing()
			}
			return
		}
		l.ring = r
	}
	e.cfg.Logger.Info("answers sent through io_uring")
}

// closeAll releases the listeners, pollers and rings of an engine that
// never served.
func (e *pollEngine) closeAll() {
	for _, l := range e.loops {
		l.closeRing()
		closeFDs(l.lfds)
		l.p.Close()
	}
}

func (e *pollEngine) addr() net.Addr { return e.la }

func (e *pollEngine) serve(ctx context.Context) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return ErrServerClosed
	}
	if e.serving {
		e.mu.Unlock()
		return errors.New("server: Serve called twice")
	}
	e.serving = true
	e.mu.Unlock()

	var wg sync.WaitGroup
	for _, l := range e.loops {
		wg.Go(l.run)
	}
	go func() {
		wg.Wait()
		close(e.done)
	}()
	select {
	case <-e.done:
		return ErrServerClosed
	case <-ctx.Done():
	}
	e.mu.Lock()
	stopped := e.stopped
	e.stopped = true
	e.mu.Unlock()
	e.force()
	<-e.done
	if stopped {
		return ErrServerClosed
	}
	return ctx.Err()
}

func (e *pollEngine) shutdown(ctx context.Context) error {
	e.mu.Lock()
	serving, stopped := e.serving, e.stopped
	e.stopped = true
	e.mu.Unlock()
	if !serving {
		if !stopped {
			e.closeAll()
			close(e.done)
		}
		return nil
	}
	for _, l := range e.loops {
		l.stop.Store(true)
		l.p.Wake()
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	e.force()
	<-e.done
	return ctx.Err()
}

// force makes every loop close its connections at once and exit.
func (e *pollEngine) force() {
	for _, l := range e.loops {
		l.force.Store(true)
		l.stop.Store(true)
		l.p.Wake()
	}
}

// ticks is a coarse monotonic clock in milliseconds, cheap to store per
// connection; comparisons use differences, so wrap-around (49 days) is
// harmless.
func (e *pollEngine) ticks() uint32 {
	return uint32(time.Since(e.epoch) / time.Millisecond)
}

const (
	// releaseAfter is how many bytes of output buffers a loop leaves to
	// the garbage collector before it asks for memory to be returned.
	releaseAfter = 4 << 20
	// releaseEvery bounds how often, in ticks, memory is returned.
	releaseEvery = 1000
)

// releaseMemory has the runtime return freed memory to the system at
// once, in a goroutine of its own, unless it did less than releaseEvery
// ago; it reports whether it did.
//
// A burst of clients that do not read leaves their output buffers, up to
// MaxPendingOutput each, as garbage when they close. With no allocation
// after it, nothing starts a collection, so the process keeps that peak
// for good. Measured with bench/cmd/nonreading (2,000 writers of 2 MB,
// two runs each way): 10 s after the burst, RSS was 184–187 MB without
// this and 11.6–12.3 MB with it, against 8.2 MB before the burst; the
// server's CPU time over the whole test, 3.7–5.9 s, did not tell them
// apart.
func (e *pollEngine) releaseMemory() bool {
	now := e.ticks()
	last := e.releasedAt.Load()
	if last != 0 && now-(last-1) < releaseEvery {
		return false
	}
	if !e.releasedAt.CompareAndSwap(last, now+1) {
		return false
	}
	go debug.FreeOSMemory()
	return true
}

// reserve counts a connection in Open unless MaxConns are open already.
// Loops accept concurrently: a check of Open followed by an increment
// would let two of them take the last slot.
func (e *pollEngine) reserve() bool {
	max := int64(e.cfg.MaxConns)
	for {
		n := e.st.Open.Load()
		if max > 0 && n >= max {
			return false
		}
		if e.st.Open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}
