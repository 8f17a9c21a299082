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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpoll/poll/internal/sd"
	"github.com/tcpoll/poll/internal/upgrade"
	"github.com/tcpoll/poll/server"
)

func serveCmd(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg server.Config
	fs.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "listen `address` (host:port; empty host = all interfaces, IPv4 and IPv6)")
	fs.IntVar(&cfg.MaxMessage, "max-message", server.DefaultMaxMessage, "longest unfinished message held, in `bytes`: 16 and up (above 2^31-1 taken as 2^31-1)")
	framing := fs.String("framing", "line", "message framing: line or raw")
	fs.IntVar(&cfg.Loops, "loops", 0, "event loops: 0 (GOMAXPROCS) or 1 to 1024")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "most concurrent connections: 0 (the descriptor limit) and up")
	fs.IntVar(&cfg.MaxPendingOutput, "max-pending-output", server.DefaultMaxPendingOutput, "unread answers held per client before reading from it pauses, in `bytes`: 24 and up (above 1 GiB taken as 1 GiB)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "close connections idle this long: 0 (never) or up to 576h; never sooner than asked")
	fs.BoolVar(&cfg.ProxyProtocol, "proxy-protocol", false, "every connection begins with a PROXY protocol header, v1 or v2, from a load balancer (HAProxy's send-proxy or send-proxy-v2)")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", 0, "most concurrent connections from one client address, the PROXY header's with -proxy-protocol: 0 (no limit) and up")
	tlsCert := fs.String("tls-cert", "", "serve inside TLS (1.2 and 1.3) with the certificate chain in this PEM `file`, read again by an upgrade (SIGHUP); needs -tls-key")
	tlsKey := fs.String("tls-key", "", "the private key of -tls-cert, a PEM `file`")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", server.DefaultHandshakeTimeout, "with -tls-cert: close a client whose TLS handshake takes longer, counted in tls_errors: 1ms to 1h")
	fs.IntVar(&cfg.MaxHandshakes, "max-handshakes", server.DefaultMaxHandshakes, "with -tls-cert: most TLS handshakes computing or awaiting the client at once; past it, clients whose hello has come wait: 1 to 1048576")
	fs.BoolVar(&cfg.DirectSend, "direct-send", false, "Linux: send each client's answers with its own send(2) instead of one io_uring_enter per loop turn")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	verbose := fs.Bool("v", false, "log every connection and message (debug level)")
	quiet := fs.Bool("q", false, "log warnings and errors only")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long SIGINT/SIGTERM waits for answers to flush: above 0")
	debugAddr := fs.String("debug-addr", "", "serve expvar counters on this `address` (e.g. 127.0.0.1:6060)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this `file` until the server stops")
	pidFile := fs.String("pid-file", "", "write the server's process ID to this `file` once it serves (and the new process's after an upgrade)")
	upgradeTimeout := fs.Duration("upgrade-timeout", 30*time.Second, "how long SIGHUP waits for the new process to serve before it gives up on it: above 0")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// A timeout of 0 or less would end every shutdown, or every
	// upgrade, before it began: closing clients' connections unanswered.
	if *grace <= 0 {
		return fmt.Errorf("-shutdown-timeout %v is outside its range: above 0", *grace)
	}
	if *upgradeTimeout <= 0 {
		return fmt.Errorf("-upgrade-timeout %v is outside its range: above 0", *upgradeTimeout)
	}
	var err error
	if cfg.Framing, err = server.ParseFraming(*framing); err != nil {
		return err
	}
	if cfg.TLS, err = serverTLS(*tlsCert, *tlsKey); err != nil {
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

	files, ready, from, err := inheritedListeners()
	if err != nil {
		return err
	}
	if len(files) > 0 {
		cfg.Listeners, cfg.Addr = files, ""
	}
	srv, err := server.New(cfg)
	for _, f := range files {
		f.Close() // the server holds its own duplicates
	}
	if err != nil {
		if ready != nil {
			ready.Close()
		}
		return err
	}
	if *cpuProfile != "" && ready != nil {
		// The predecessor is still writing it.
		log.Warn("-cpuprofile ignored after an upgrade", "file", *cpuProfile)
	} else if *cpuProfile != "" {
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
		if err := serveDebug(*debugAddr, srv, log, ready != nil); err != nil {
			return err
		}
	}
	// The binary to start on SIGHUP: the path this one was started from,
	// which by then may hold a new version.
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	select {
	case <-srv.Ready():
	case err := <-served:
		return err
	}
	if *pidFile != "" {
		if err := writePidFile(*pidFile); err != nil {
			srv.Shutdown(context.Background())
			<-served
			return err
		}
	}
	attrs := []any{"addr", srv.Addr().String(), "engine", srv.Engine(), "pid", os.Getpid()}
	if cfg.TLS != nil {
		attrs = append(attrs, "tls", true)
	}
	if len(files) > 0 {
		attrs = append(attrs, "sockets", len(files), "from", from)
	}
	log.Info("listening", attrs...)
	if ready != nil {
		// The predecessor tells systemd, with MAINPID=, once it knows.
		if err := upgrade.Ready(ready); err != nil {
			log.Warn("could not tell the old process that this one serves", "err", err)
		}
	} else {
		notify(log, "READY=1")
	}

	sig, pending, handedOver, err := upgradeUntilStopped(srv, sigs, served, exe, *pidFile, *upgradeTimeout, log)
	switch {
	case err != nil:
		// Serve failed: nothing to shut down but a pending successor.
	case handedOver:
		log.Info("shutting down after the upgrade", "timeout", *grace)
	default:
		notify(log, "STOPPING=1")
		log.Info("shutting down", "signal", sig.String(), "timeout", *grace)
	}
	sctx, scancel := context.WithTimeout(context.Background(), *grace)
	defer scancel()
	// The signals stay caught: a SIGTERM now (systemd stopping the whole
	// group while this process finishes after an upgrade, or an impatient
	// operator) cuts the shutdown short instead of killing the process,
	// and kills a successor still being stopped.
	shut := make(chan struct{})
	defer close(shut)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					continue
				}
				log.Info("closing every connection now", "signal", sig.String())
				scancel()
			case <-shut:
				return
			}
		}
	}()
	// A successor still starting stops beside this process, within the
	// same deadline, rather than before it: its start-up has no bound that
	// fits a stop (systemd's TimeoutStopSec=), and while it is awaited this
	// process would go on accepting. However this process ends, it does
	// not exit before the successor: nothing it started outlives it.
	successorGone := make(chan struct{})
	if pending == nil {
		close(successorGone)
	} else {
		go func() {
			defer close(successorGone)
			stopSuccessor(sctx, pending, log)
		}()
	}
	defer func() { <-successorGone }()
	if err != nil {
		return err
	}
	shutErr := srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	<-successorGone
	if *pidFile != "" && !handedOver {
		pids := []int{os.Getpid()}
		if pending != nil {
			// It may have written its own before it was stopped.
			pids = append(pids, pending.Pid())
		}
		removePidFile(*pidFile, pids...)
	}
	if shutErr != nil {
		return fmt.Errorf("shutdown: %w", shutErr)
	}
	log.Info("stopped")
	return nil
}

// inheritedListeners returns the listening sockets passed to this process,
// and where from: by the process it replaces (SIGHUP), with the pipe to
// tell that one when this one serves, or by systemd (socket activation).
// None means the server binds its own.
func inheritedListeners() (files []*os.File, ready *os.File, from string, err error) {
	if files, ready, err = upgrade.Inherited(); err != nil || files != nil {
		return files, ready, "predecessor", err
	}
	// server.New checks that each is a listening TCP socket.
	files, err = sd.Listeners()
	return files, nil, "systemd", err
}

// upgradeUntilStopped serves SIGHUPs, each starting a successor, until a
// signal to stop (sig) or a successor that serves (handedOver: srv has
// stopped accepting). err is Serve's, should the server fail first. It
// returns at once: a successor started but not handed over is pending,
// for the caller to stop (stopSuccessor) as it stops itself. It may have
// become ready meanwhile; it is stopped all the same.
func upgradeUntilStopped(srv *server.Server, sigs <-chan os.Signal, served <-chan error,
	exe, pidFile string, timeout time.Duration, log *slog.Logger) (sig os.Signal, pending *upgrade.Child, handedOver bool, err error) {
	var child *upgrade.Child
	upgraded := make(chan error, 1) // the result of child.Wait
	// Cancelled on the way out, so that child.Wait returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		select {
		case sig = <-sigs:
			if sig != syscall.SIGHUP {
				return sig, child, false, nil
			}
			if child != nil {
				log.Warn("SIGHUP ignored: an upgrade is in progress", "new_pid", child.Pid())
				continue
			}
			notify(log, sd.Reloading())
			if child, err = startSuccessor(exe, srv); err != nil {
				log.Error("upgrade failed; still serving", "err", err)
				notify(log, "READY=1")
				continue
			}
			log.Info("upgrading", "new_pid", child.Pid(), "binary", exe)
			go func(c *upgrade.Child) { upgraded <- c.Wait(ctx, timeout) }(child)
		case err := <-upgraded:
			if err != nil {
				log.Error("upgrade failed; still serving", "err", err)
				child = nil
				// The new process may have written its pid before it failed.
				if pidFile != "" {
					if err := writePidFile(pidFile); err != nil {
						log.Error("pid file", "err", err)
					}
				}
				notify(log, "READY=1")
				continue
			}
			pid := child.Pid()
			notify(log, fmt.Sprintf("MAINPID=%d\nREADY=1", pid))
			if err := srv.StopAccepting(); err != nil {
				log.Error("stop accepting", "err", err)
			}
			log.Info("handed over", "new_pid", pid)
			return nil, nil, true, nil
		case err := <-served:
			// Serve returns before a signal only if the server failed.
			return nil, child, false, err
		}
	}
}

// stopSuccessor stops a successor that was not handed over (SIGTERM), and
// kills it if it is still running when ctx, this process's own shutdown
// deadline, is done.
func stopSuccessor(ctx context.Context, child *upgrade.Child, log *slog.Logger) {
	log.Info("stopping the new process too", "new_pid", child.Pid())
	if err := child.Stop(ctx); err != nil {
		log.Warn("upgrade abandoned", "err", err)
		return
	}
	log.Info("new process stopped", "new_pid", child.Pid())
}

// startSuccessor starts exe with this process's arguments and the
// server's listening sockets.
func startSuccessor(exe string, srv *server.Server) (*upgrade.Child, error) {
	files, err := srv.ListenerFiles()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	return upgrade.Start(exe, os.Args[1:], files)
}

// notify sends state to systemd when it supervises this process
// (NOTIFY_SOCKET); a failure is logged, not fatal.
func notify(log *slog.Logger, state string) {
	if _, err := sd.Notify(state); err != nil {
		log.Warn("systemd notification failed", "state", state, "err", err)
	}
}

// writePidFile writes this process's ID to path, replacing it at once
// (rename), so a reader never sees a partial file.
func writePidFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removePidFile removes path if it still names one of pids, processes
// that have stopped or are stopping.
func removePidFile(path string, pids ...int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	for _, pid := range pids {
		if strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
			os.Remove(path)
			return
		}
	}
}

// serveDebug publishes the server's counters through expvar on addr. A
// successor (upgrade) may find the address still held by its predecessor,
// which exits only once this process serves: it tries again in the
// background, for up to a minute, instead of failing.
func serveDebug(addr string, srv *server.Server, log *slog.Logger, successor bool) error {
	expvar.Publish("tcpoll", expvar.Func(func() any { return srv.Stats().Snapshot() }))
	// The engine's goroutines are fixed (one per loop); a count that grows
	// with traffic is a leak.
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		log.Info("debug server", "addr", ln.Addr().String(), "path", "/debug/vars")
		go http.Serve(ln, nil)
		return nil
	}
	if !successor || !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	go func() {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			if ln, err := net.Listen("tcp", addr); err == nil {
				log.Info("debug server", "addr", ln.Addr().String(), "path", "/debug/vars")
				http.Serve(ln, nil)
				return
			}
		}
		log.Warn("no debug server: the address stayed in use", "addr", addr)
	}()
	return nil
}
