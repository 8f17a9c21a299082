// Command chat is a chat room on the server package's Handler API: every
// line a client sends goes to every other client connected.
//
//	chat [-addr HOST:PORT] [-max-line BYTES] [-max-pending BYTES] [-loops N]
//
// The protocol, which clients are written against: TCP; a line is the
// bytes up to and including '\n', and an empty line is a line like any
// other. Every complete line a client sends is written, byte for byte, to
// every other client connected when the server processes it, never back
// to its sender; lines from one sender reach each receiver in the order
// sent (there is no order across senders). Nothing is sent on connect, and
// there are no join or leave notices. A line may be up to -max-line bytes
// (4096) including its '\n'; a longer one disconnects its sender, whether
// or not its '\n' has arrived, and is delivered to no one. A receiver for
// which the server holds more than -max-pending bytes (256 KiB) of unsent
// lines (the kernel's socket buffers do not count) is disconnected,
// counted and logged; the server never waits for it, and no other
// client's delivery is delayed by it. A reader that keeps up is never
// disconnected. EOF from a client removes it and closes its connection; an
// unfinished last line is discarded.
//
// The server runs -loops event loops (0, the default, for GOMAXPROCS).
//
// It prints "listening on ADDR" on standard output once it serves, and
// logs to standard error. SIGINT or SIGTERM shuts it down gracefully: the
// lines already taken are sent, within -shutdown-timeout, and the counts
// of clients disconnected are logged; a second signal ends it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tcpoll/poll/server"
)

// Defaults of -max-line and -max-pending.
const (
	defaultMaxLine    = 4096
	defaultMaxPending = 256 << 10
	// maxMaxPending is where the server clamps MaxPendingOutput; above
	// it the flag would not mean what it says.
	maxMaxPending = 1 << 30
)

// options are the command's flags.
type options struct {
	addr                       string
	maxLine, maxPending, loops int
	grace                      time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("chat", flag.ExitOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:3139", "listen `address`, host:port (port 0 picks a free one)")
	fs.IntVar(&o.maxLine, "max-line", defaultMaxLine, "longest line, its \\n included, in `bytes` (1 and up); a longer one disconnects its sender")
	fs.IntVar(&o.maxPending, "max-pending", defaultMaxPending, "most `bytes` of lines held for a client, from -max-line to 1 GiB; past it the client is disconnected")
	fs.IntVar(&o.loops, "loops", 0, fmt.Sprintf("event loops: 0 (GOMAXPROCS) or 1 to %d", server.MaxLoops))
	fs.DurationVar(&o.grace, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for unsent lines (above 0)")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chat: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// run serves the chat on o.addr until SIGINT or SIGTERM.
func run(o options) error {
	switch {
	case o.maxLine < 1:
		return fmt.Errorf("-max-line %d: want 1 and up", o.maxLine)
	case o.maxPending < o.maxLine || o.maxPending > maxMaxPending:
		return fmt.Errorf("-max-pending %d: want -max-line (%d) to 1 GiB", o.maxPending, o.maxLine)
	case o.loops < 0 || o.loops > server.MaxLoops:
		return fmt.Errorf("-loops %d: want 0 (GOMAXPROCS) or 1 to %d", o.loops, server.MaxLoops)
	case o.grace <= 0:
		return fmt.Errorf("-shutdown-timeout %v: want above 0", o.grace)
	}
	// One queue for the server's records and the hub's: no log call of an
	// event loop waits for standard error.
	logq := server.NewLogQueue(slog.NewTextHandler(os.Stderr, nil))
	log := slog.New(logq)
	h := newHub(o.maxLine, log)
	srv, err := server.New(server.Config{
		Addr:             o.addr,
		Handler:          h,
		MaxPendingOutput: o.maxPending,
		Loops:            o.loops,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	select {
	case <-srv.Ready():
	case err := <-served:
		return err
	}
	fmt.Printf("listening on %s\n", srv.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal ends the process at once
	log.Info("shutting down", "timeout", o.grace)
	sctx, cancel := context.WithTimeout(context.Background(), o.grace)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	log.Info("stopped", "dropped", h.dropped.Load(), "too_long", h.tooLong.Load())
	fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
	defer fcancel()
	logq.Flush(fctx)
	if shutErr != nil {
		return fmt.Errorf("shutdown: %w", shutErr)
	}
	return nil
}
