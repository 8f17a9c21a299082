package main

import (
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
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tcpoll send [flags] ADDR [MSG...]\n\nSends each MSG followed by LF, or stdin as it is, then half-closes\nand prints what the server answers until it closes.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	c, err := net.DialTimeout("tcp", fs.Arg(0), *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	conn := c.(*net.TCPConn)

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
		conn.CloseWrite()
	}
	return <-got
}
