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
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const engineName = "poll"

// handlers: the engine serves a Config.Handler.
const handlers = true

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

	// lfds lists every loop's listeners, for listenerFiles. A loop closes
	// its own only with mu held, after setting listenersGone.
	lfds          []int
	listenersGone bool
	// listenersOpen counts the loops whose listeners are open: a stopping
	// loop ends its connections once it is 0 (beginStop).
	listenersOpen atomic.Int32
	// handedOver: StopAccepting was called; the queues are another
	// process's, so a shutdown does not empty them.
	handedOver atomic.Bool
	// starting counts the loops that have not begun to run; the last to
	// begin closes readyc.
	starting atomic.Int32
	readyc   chan struct{}

	ips *ipLimit // nil without Config.MaxConnsPerIP

	// hsBusy counts the TLS handshake goroutines of all loops, up to
	// MaxHandshakes; hsWaiting, the connections waiting in loops' hsWait
	// for one to end.
	hsBusy, hsWaiting atomic.Int64

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
	e := &pollEngine{
		cfg:       cfg,
		st:        st,
		epoch:     time.Now(),
		done:      make(chan struct{}),
		readyc:    make(chan struct{}),
		rejected:  newRateLog(cfg.Logger, slog.LevelInfo, "connection rejected"),
		acceptErr: newRateLog(cfg.Logger, slog.LevelWarn, "accept failed"),
		connErr:   newRateLog(cfg.Logger, slog.LevelDebug, "connection error"),
		proxyErr:  newRateLog(cfg.Logger, slog.LevelInfo, "PROXY header rejected"),
		ips:       newIPLimit(cfg.MaxConnsPerIP),
	}
	per, err := e.listeners()
	if err != nil {
		return nil, err
	}
	if e.la, err = boundAddr(per[0][0]); err != nil {
		for _, fds := range per {
			closeFDs(fds)
		}
		return nil, err
	}
	for i := range cfg.Loops {
		l, err := newLoop(e, per[i])
		if err != nil {
			for _, fds := range per[i:] {
				closeFDs(fds)
			}
			e.closeAll()
			return nil, err
		}
		e.loops = append(e.loops, l)
		e.lfds = append(e.lfds, per[i]...)
		if len(per[i]) > 0 {
			e.listenersOpen.Add(1)
		}
	}
	e.starting.Store(int32(len(e.loops)))
	if !cfg.DirectSend {
		e.openRings()
	}
	return e, nil
}

// listeners opens or inherits the listening sockets and deals them out:
// the result holds each loop's. Its choice of handoff is the engine's.
func (e *pollEngine) listeners() ([][]int, error) {
	cfg := e.cfg
	per := make([][]int, cfg.Loops)
	if len(cfg.Listeners) > 0 {
		fds, err := inherit(cfg.Listeners)
		if err != nil {
			return nil, err
		}
		e.handoff = cfg.Loops > 1 && (spreadByHandoff || len(fds) < cfg.Loops)
		for i, fd := range fds {
			if e.handoff {
				per[0] = append(per[0], fd)
			} else {
				per[i%cfg.Loops] = append(per[i%cfg.Loops], fd)
			}
		}
		return per, nil
	}
	spec, err := parseListen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	e.handoff = spreadByHandoff && cfg.Loops > 1
	for i := range cfg.Loops {
		if i > 0 && e.handoff {
			break
		}
		if per[i], err = listenAll(spec, cfg.Loops > 1 && !e.handoff); err != nil {
			for _, fds := range per[:i] {
				closeFDs(fds)
			}
			return nil, err
		}
		if i == 0 {
			// Later listeners join the port the first one got.
			a, err := boundAddr(per[0][0])
			if err != nil {
				closeFDs(per[0])
				return nil, err
			}
			spec.port = a.Port
		}
	}
	return per, nil
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

func (e *pollEngine) ready() <-chan struct{} { return e.readyc }

func (e *pollEngine) listenerFiles() ([]*os.File, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped || e.listenersGone {
		return nil, errors.New("server: stopping; the listeners are closed or about to be")
	}
	files := make([]*os.File, 0, len(e.lfds))
	for _, lfd := range e.lfds {
		fd, err := dupCloexec(lfd)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		name := "tcp-listener"
		if a, err := boundAddr(fd); err == nil {
			name = "tcp:" + a.String()
		}
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files, nil
}

func (e *pollEngine) stopAccepting() error {
	e.mu.Lock()
	stopped := e.stopped
	e.mu.Unlock()
	if stopped {
		return errors.New("server: stopping already")
	}
	e.handedOver.Store(true)
	for _, l := range e.loops {
		l.p.Wake()
	}
	return nil
}

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
	return uint32(e.now())
}

// now is the clock of ticks, unwrapped, for timers.
func (e *pollEngine) now() int64 {
	return int64(time.Since(e.epoch) / time.Millisecond)
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
