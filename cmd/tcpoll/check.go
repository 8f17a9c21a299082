package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/tcpoll/poll/internal/check"
)

func checkCmd(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var cfg check.Config
	fs.IntVar(&cfg.MaxMessage, "max-message", 256, "the server's MaxMessage, in `bytes`")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "time allowed for each case")
	fs.DurationVar(&cfg.Quiet, "quiet", 100*time.Millisecond, "how long the server must stay silent where it owes nothing")
	tlsFlags := addClientTLS(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tcpoll check [flags] ADDR\n\nPlays the examples of the protocol (PROTOCOL.md in the tcpoll repository)\nand its boundary cases against the server at ADDR, one connection each,\nprints one line per case and fails if any case does. With -tls each case\nruns inside TLS, whose close_notify is the EOF each way.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	cfg.Addr = fs.Arg(0)
	var err error
	if cfg.TLS, err = tlsFlags.config(cfg.Addr); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return check.Run(ctx, os.Stdout, cfg)
}
