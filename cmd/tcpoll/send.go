package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func sendCmd(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	tlsFlags := addClientTLS(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tcpoll send [flags] ADDR [MSG...]\n\nSends each MSG followed by LF, or stdin as it is, then half-closes\n(with -tls: close_notify, then the FIN) and prints what the server\nanswers until it closes.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	tcfg, err := tlsFlags.config(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", fs.Arg(0), *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	var conn io.ReadWriter = c
	closeWrite := c.(*net.TCPConn).CloseWrite
	if tcfg != nil {
		tc := tls.Client(c, tcfg)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
		closeWrite = func() error {
			tc.CloseWrite() // close_notify: TLS's EOF
			return c.(*net.TCPConn).CloseWrite()
		}
	}

	// Answers are read while sending, so a long input never fills both
	// directions' buffers and deadlocks.
	got := make(chan error, 1)
	go func() {
		_, err := io.Copy(os.Stdout, conn)
		got <- err
	}()
	var werr error
	if fs.NArg() > 1 {
		for _, m := range fs.Args()[1:] {
			if _, werr = io.WriteString(conn, m+"\n"); werr != nil {
				break
			}
		}
	} else {
		_, werr = io.Copy(conn, os.Stdin)
	}
	// After "close" the server stops reading, so a failed write is expected
	// then; what the server answered, and how it ended, decides the outcome.
	if werr == nil {
		closeWrite()
	}
	return <-got
}
