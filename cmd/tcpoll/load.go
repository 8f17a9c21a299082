package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tcpoll/poll/internal/load"
)

func loadCmd(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tcpoll load [flags] ADDR\n\nflags:\n")
		fs.PrintDefaults()
	}
	var cfg load.Config
	fs.IntVar(&cfg.Conns, "c", load.DefaultConns, "connections")
	fs.IntVar(&cfg.Depth, "p", load.DefaultDepth, "messages in flight per connection (pipeline depth)")
	fs.IntVar(&cfg.Size, "size", load.DefaultSize, "message size in `bytes`, LF included")
	fs.IntVar(&cfg.MaxMessage, "max-message", load.DefaultMaxMessage, "the server's -max-message: longer messages get one answer per piece")
	fs.DurationVar(&cfg.Duration, "d", load.DefaultDuration, "measured `duration`")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "warm-up before the measured window")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total messages per second (0 = as fast as the pipeline allows)")
	src := fs.String("src", "", "local source `addresses`: a comma list and/or ranges like 127.0.0.1-127.0.0.20")
	fs.IntVar(&cfg.Loops, "loops", 0, "event loops (0 = GOMAXPROCS)")
	fs.DurationVar(&cfg.Timeout, "timeout", load.DefaultTimeout, "longest wait for an answer (or a connect)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "server `pid`, to report its CPU time (Linux)")
	proxy := fs.String("proxy", "", "begin every connection with a PROXY protocol header of this `version`, v1 or v2, announcing its own addresses (for a server run with -proxy-protocol)")
	asJSON := fs.Bool("json", false, "print the result as one JSON line")
	tlsFlags := addClientTLS(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Take ADDR before or after the flags.
	if fs.NArg() > 0 {
		cfg.Addr = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if cfg.Addr == "" || fs.NArg() > 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	var err error
	if cfg.Proxy, err = load.ParseProxy(*proxy); err != nil {
		return err
	}
	// Inside TLS a goroutine pair per connection replaces the event loops.
	if cfg.TLS, err = tlsFlags.config(cfg.Addr); err != nil {
		return err
	}
	if *src != "" {
		if cfg.Sources, err = load.ParseSources(*src); err != nil {
			return err
		}
	}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && !*asJSON {
		cfg.Progress = os.Stderr
	}

	// SIGINT or SIGTERM ends the window early; the summary still prints.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Printf("%s\n", b)
	} else {
		fmt.Print(res)
	}
	return res.Err()
}
