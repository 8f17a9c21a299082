// Command http is an HTTP/1.1 server of one resource on the server
// package's Handler API: TechEmpower's "plaintext" test, which event loops
// are compared by, with a request parser that is correct rather than
// canned (package httpparse).
//
//	http [-addr HOST:PORT] [-loops N] [-shutdown-timeout D]
//
// What it answers, which clients and benchmarks are written against:
//
//   - GET /plaintext (any query) is 200 OK with the fields Server
//     ("tcpoll"), Date (RFC 1123 in GMT, the HTTP-date, made once a second,
//     never per request), Content-Type: text/plain and Content-Length: 13,
//     and the body "Hello, World!".
//   - Any other path is 404 Not Found; another method on /plaintext 405
//     Method Not Allowed with Allow: GET (HEAD included: there is no
//     body-less GET here). Both have a Content-Length and a short body
//     (none for HEAD) and keep the connection.
//   - An HTTP/1.1 connection stays open unless a request says Connection:
//     close; an HTTP/1.0 one is closed after the answer unless the request
//     says Connection: keep-alive, which the answer then repeats. Answers
//     that close have Connection: close, and the server ends the
//     connection with a FIN once they are sent.
//   - Requests may be pipelined: all those a read completes are answered
//     in order, with one write. A body announced by Content-Length is read
//     and ignored; the next request follows it, however the reads cut it.
//   - Errors end the connection: a malformed request line or field line,
//     an HTTP/1.1 request without Host, more than one Host, a bad
//     Content-Length or two that differ, or Transfer-Encoding with
//     Content-Length, are 400; a head over 8 KiB 431; Transfer-Encoding
//     ending in chunked 501 (other codings are 400: the body's length is
//     unknown); a version other than 1.x 505. Each has a Content-Length
//     and Connection: close; the connection then ends with a FIN after the
//     answer, and what the client sends meanwhile is discarded, so that it
//     reads the answer rather than a reset.
//   - Lines may end with a bare LF as well as CRLF; a CR anywhere else is
//     an error. httpparse's doc has the grammar, from RFC 9112.
//
// A client that pipelines without reading is served as far as
// MaxPendingOutput (64 KiB) allows; then reading from it pauses until it
// has read, so it costs at most that and one read's answers.
//
// The server runs -loops event loops (0, the default, for GOMAXPROCS). It
// prints "listening on ADDR" on standard output once it serves, and logs
// to standard error. SIGINT or SIGTERM shuts it down gracefully: what was
// read is answered, within -shutdown-timeout; a second signal ends it at
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

// options are the command's flags.
type options struct {
	addr  string
	loops int
	grace time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen `address`, host:port (port 0 picks a free one)")
	fs.IntVar(&o.loops, "loops", 0, fmt.Sprintf("event loops: 0 (GOMAXPROCS) or 1 to %d", server.MaxLoops))
	fs.DurationVar(&o.grace, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for unsent answers (above 0)")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "http: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(1)
	}
}

// run serves on o.addr until SIGINT or SIGTERM.
func run(o options) error {
	switch {
	case o.loops < 0 || o.loops > server.MaxLoops:
		return fmt.Errorf("-loops %d: want 0 (GOMAXPROCS) or 1 to %d", o.loops, server.MaxLoops)
	case o.grace <= 0:
		return fmt.Errorf("-shutdown-timeout %v: want above 0", o.grace)
	}
	logq := server.NewLogQueue(slog.NewTextHandler(os.Stderr, nil))
	log := slog.New(logq)
	clk := startClock()
	defer clk.stop()
	h := &plaintext{clock: clk, maxPending: server.DefaultMaxPendingOutput}
	srv, err := server.New(server.Config{
		Addr:             o.addr,
		Handler:          h,
		MaxPendingOutput: h.maxPending,
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
	log.Info("stopped", "held", h.held.Load())
	fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
	defer fcancel()
	logq.Flush(fctx)
	if shutErr != nil {
		return fmt.Errorf("shutdown: %w", shutErr)
	}
	return nil
}
