// Command netsrv serves the acknowledgement protocol on package net, the
// way most Go servers are written: one goroutine per connection, blocking
// reads into a 4 KiB buffer, server.Framer as the protocol.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"

	"github.com/tcpoll/poll/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	maxMessage := flag.Int("max-message", server.DefaultMaxMessage, "longest unfinished message, in `bytes`")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			// EMFILE and friends: the runtime's poller waits for the next
			// accept, so retrying does not spin.
			fmt.Fprintln(os.Stderr, "accept:", err)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go serve(c.(*net.TCPConn), *maxMessage)
	}
}

func serve(c *net.TCPConn, maxMessage int) {
	defer c.Close()
	f := server.NewFramer(maxMessage, server.FramingLine)
	buf := make([]byte, 4<<10)
	var out []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			var done bool
			out, done = f.Feed(out[:0], buf[:n])
			if _, werr := c.Write(out); werr != nil || done {
				return
			}
		}
		if err == io.EOF {
			c.Write(f.End(out[:0]))
			return
		}
		if err != nil {
			return
		}
	}
}
