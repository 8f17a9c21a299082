package main

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/tcpoll/poll/server"
)

func serveCmd(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg server.Config
	fs.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "listen `address` (host:port; empty host = all interfaces, IPv4 and IPv6)")
	fs.IntVar(&cfg.MaxMessage, "max-message", server.DefaultMaxMessage, "longest unfinished message held, in `bytes` (at least 16)")
	framing := fs.String("framing", "line", "message framing: line or raw")
	fs.IntVar(&cfg.Loops, "loops", 0, "event loops (0 = GOMAXPROCS)")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "most concurrent connections (0 = descriptor limit)")
	fs.IntVar(&cfg.MaxPendingOutput, "max-pending-output", server.DefaultMaxPendingOutput, "unread answers held per client before reading from it pauses, in `bytes`")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "close connections idle this long (0 = never)")
	fs.BoolVar(&cfg.ProxyProtocol, "proxy-protocol", false, "every connection begins with a PROXY protocol header, v1 or v2, from a load balancer (HAProxy's send-proxy or send-proxy-v2)")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", 0, "most concurrent connections from one client address, the PROXY header's with -proxy-protocol (0 = no limit)")
	fs.BoolVar(&cfg.DirectSend, "direct-send", false, "Linux: send each client's answers with its own send(2) instead of one io_uring_enter per loop turn")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	verbose := fs.Bool("v", false, "log every connection and message (debug level)")
	quiet := fs.Bool("q", false, "log warnings and errors only")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long SIGINT/SIGTERM waits for answers to flush")
	debugAddr := fs.String("debug-addr", "", "serve expvar counters on this `address` (e.g. 127.0.0.1:6060)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this `file` until the server stops")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.Framing, err = server.ParseFraming(*framing); err != nil {
		return err
	}
	level := slog.LevelInfo
	switch {
	case *verbose:
		level = slog.LevelDebug
	case *quiet:
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return fmt.Errorf("unknown -log-format %q (want text or json)", *logFormat)
	}
	// The command's records share the server's queue: they keep their
	// order with the server's, and a stderr nobody reads cannot hold up
	// the shutdown.
	lq := server.NewLogQueue(h)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		lq.Flush(ctx)
	}()
	cfg.Logger = slog.New(lq)
	log := cfg.Logger

	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *debugAddr != "" {
		if err := serveDebug(*debugAddr, srv, log); err != nil {
			return err
		}
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		sig := <-sigs
		log.Info("shutting down", "signal", sig.String(), "timeout", *grace)
		ctx, cancel := context.WithTimeout(context.Background(), *grace)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	log.Info("listening", "addr", srv.Addr().String(), "engine", srv.Engine())
	if err := srv.Serve(context.Background()); !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	if err := <-done; err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// serveDebug publishes the server's counters through expvar on addr.
func serveDebug(addr string, srv *server.Server, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	expvar.Publish("tcpoll", expvar.Func(func() any { return srv.Stats().Snapshot() }))
	// The engine's goroutines are fixed (one per loop); a count that grows
	// with traffic is a leak.
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
	log.Info("debug server", "addr", ln.Addr().String(), "path", "/debug/vars")
	go http.Serve(ln, nil)
	return nil
}
