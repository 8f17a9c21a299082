//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd)

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
	"sync"
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

	rejected  *rateLog
	acceptErr *rateLog
	connErr   *rateLog

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
