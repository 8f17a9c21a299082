// Package server serves the acknowledgement protocol, whose contract is
// PROTOCOL.md at the root of this repository: every message a client sends
// is answered with "I recieved your message\n", and the message "close"
// ends the connection.
//
// Other protocols plug in at two levels: Config.NewProtocol, a Protocol
// value per connection that turns input into output (request and
// answer), or Config.Handler, a Handler with callbacks on the loop and a
// Conn handle that any goroutine may write to, with bounded output,
// deadlines and timers (chat, push, pub/sub); Handler's doc compares it
// with gnet's EventHandler and nbio's Conn.
//
// The protocol is a pure state machine (Framer); an engine moves bytes
// between sockets and it. The native engine runs event loops on package
// poll; build with -tags evio to run on github.com/tidwall/evio instead, or
// -tags stdnet for a goroutine per connection on package net (the default
// where poll has no backend).
//
// On Linux, the native engine's loops send through io_uring: the answers of
// one turn, for every client whose input the loop read between two waits,
// go out in one io_uring_enter(2) instead of one send(2) per client. Each
// send wakes its client, and a woken client that shares the server's CPU
// preempts the server as the system call returns: one call per turn means
// one such preemption per turn, not one per client. The loop then yields
// its CPU (sched_yield), so the clients it woke run at once and their next
// requests are waiting when it polls again. Readiness and reads stay on
// epoll; the README has the figures. Where io_uring is missing, disabled
// (kernel.io_uring_disabled) or filtered (seccomp, as in Docker's default
// profile), or does not complete a MSG_DONTWAIT send at once (older
// kernels), the loops use send(2), which Config.DirectSend also selects.
//
// A loop that sent nothing in a turn, or sends with send(2), still yields
// once per millisecond. When the server shares its CPUs with other busy
// threads, that cuts the latency tail: on the send(2) path at 50×1, p99
// went from about 5 ms to under 2 ms in most rounds, and p50 from about 100
// to 300 µs. When no other thread waits for the CPU, the call returns at
// once.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// engine is what each build of the server runs on. newEngine, chosen by
// build tag, binds the listeners so that addr is known before serve.
type engine interface {
	addr() net.Addr
	// serve runs until shutdown finishes or ctx is done; when ctx is done
	// it closes every connection at once.
	serve(ctx context.Context) error
	// shutdown stops accepting, answers what was received, flushes and
	// closes; past ctx's deadline it closes what remains.
	shutdown(ctx context.Context) error
	// ready is closed once serve runs.
	ready() <-chan struct{}
	// listenerFiles duplicates the listening sockets.
	listenerFiles() ([]*os.File, error)
	// stopAccepting stops accepting, leaving the sockets and their queues
	// open until serve returns, and makes shutdown leave the queues alone.
	stopAccepting() error
}

// Server is a server of one Config. Create it with New.
type Server struct {
	eng   engine
	stats *Stats
	log   *slog.Logger // Config.Logger behind its LogQueue
}

// New validates cfg and binds its address, so that Addr is known at once.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Handler != nil && !handlers {
		return nil, fmt.Errorf("server: the %s engine has no Handler: %w", engineName, errors.ErrUnsupported)
	}
	startRuntimePoller()
	st := new(Stats)
	eng, err := newEngine(&cfg, st)
	if err != nil {
		return nil, err
	}
	return &Server{eng: eng, stats: st, log: cfg.Logger}, nil
}

// startRuntimePoller makes the Go runtime open its own poller (an epoll
// instance and an eventfd on Linux) now, while descriptors are free. The
// runtime opens it the first time a timer is armed (addHeap in
// runtime/time.go), and throws if that fails ("netpollinit failed"): a
// server that had run out of descriptors would die at its first timer.
// That fits a rare failure of TestDiffAcceptErrors under `ulimit -n 48`,
// where the server's log ended in a fatal error's goroutine dump. An armed
// and stopped timer is enough (checked in /proc/self/fd).
func startRuntimePoller() { time.AfterFunc(time.Hour, func() {}).Stop() }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.eng.addr() }

// Engine names the engine this build runs on: "poll", "evio" or "stdnet".
func (s *Server) Engine() string { return engineName }

// Stats returns the server's live counters.
func (s *Server) Stats() *Stats { return s.stats }

// Serve serves until Shutdown completes, then returns ErrServerClosed. If ctx
// is done first, it closes every connection at once and returns ctx's error.
// Either way it returns once the log records queued so far are written, or
// a second later if the log's writer is stuck (see Config.Logger).
func (s *Server) Serve(ctx context.Context) error {
	defer flushLog(s.log)
	return s.eng.serve(ctx)
}

// Shutdown stops accepting connections, answers every complete message
// already received, flushes the answers and closes the connections. If ctx
// is done first it closes what remains and returns ctx's error. It ends
// no connection before every listener is closed (on the poll engine, a
// loop waits at most 2 s for the others'; evio promises no order), so a
// client that dials again on its connection's end is refused. Serve
// returns once Shutdown has begun and the connections are gone. Like Serve,
// Shutdown waits up to a second more for the queued log records.
func (s *Server) Shutdown(ctx context.Context) error {
	defer flushLog(s.log)
	return s.eng.shutdown(ctx)
}

// Ready is closed once Serve has started every event loop: from then on
// the server accepts and serves. A process that replaces another waits for
// it before telling its predecessor to stop (see ListenerFiles).
func (s *Server) Ready() <-chan struct{} { return s.eng.ready() }

// ListenerFiles returns a duplicate of every listening socket, for a
// process that is to take over from this one: pass them to it (as
// exec.Cmd.ExtraFiles, say), where they become its Config.Listeners. The
// sockets are then shared, so a connection queued on them is accepted by
// whichever process accepts first, and none is refused or reset while
// either process holds them. The caller closes the files. It fails once
// the server has begun to stop, and on the evio engine.
//
// The hand-over, step by step, as `tcpoll serve` does it on SIGHUP: the
// old process starts the new one with ListenerFiles; the new one serves
// on them and reports Ready; the old one then calls StopAccepting and
// Shutdown, which answers its clients and closes their connections.
func (s *Server) ListenerFiles() ([]*os.File, error) { return s.eng.listenerFiles() }

// StopAccepting stops accepting new connections without closing the
// listening sockets: the connections waiting in their queues, and later
// ones, are left to the process that took the sockets over through
// ListenerFiles. Shutdown then serves the connections already accepted,
// and closes this process's copies of the sockets without accepting what
// is queued. Without another process holding the sockets, the queued
// connections are reset when the server stops, so a server that shuts
// down alone calls Shutdown without this.
func (s *Server) StopAccepting() error { return s.eng.stopAccepting() }
