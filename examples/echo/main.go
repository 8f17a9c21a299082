// Command echo is a TCP echo server on the server package's Handler API:
// every byte a client sends comes back to it, and nothing else.
//
//	echo [-addr HOST:PORT]
//
// The handler is one line: OnData writes its input back with Conn.Write.
// Flow control is the engine's: while a client's unsent output is at the
// server's MaxPendingOutput (64 KiB), the engine stops reading from it, so
// its sends stall in the kernel instead of the server's memory growing,
// and it reads no more than fits under the bound, so the Write never
// fails for want of room. A client that does not read thus costs the
// server at most that bound, however much it sends.
//
// It prints "listening on ADDR" on standard output once it serves, and
// logs to standard error. SIGINT or SIGTERM shuts it down gracefully: what
// was read is echoed, within -shutdown-timeout; a second signal ends it at
// once.
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

func main() {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:3138", "listen `address`, host:port (port 0 picks a free one)")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long a shutdown waits for unsent output (above 0)")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "echo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		os.Exit(2)
	}
	if err := run(*addr, *grace); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// run serves echo on addr until SIGINT or SIGTERM.
func run(addr string, grace time.Duration) error {
	if grace <= 0 {
		return fmt.Errorf("-shutdown-timeout %v: want above 0", grace)
	}
	logq := server.NewLogQueue(slog.NewTextHandler(os.Stderr, nil))
	log := slog.New(logq)
	h := &echo{log: log}
	srv, err := server.New(server.Config{Addr: addr, Handler: h, Logger: log})
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
	log.Info("shutting down", "timeout", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	log.Info("stopped", "failed_writes", h.failed.Load())
	fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
	defer fcancel()
	logq.Flush(fctx)
	if shutErr != nil {
		return fmt.Errorf("shutdown: %w", shutErr)
	}
	return nil
}
