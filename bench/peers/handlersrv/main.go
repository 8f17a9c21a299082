// Command handlersrv serves the acknowledgement protocol through tcpoll's
// Handler API instead of its built-in Protocol path: each connection's
// Framer is its Conn's value, its answers go out with Conn.Write. With
// -read-timeout every connection gets its own deadline (Conn.SetReadTimeout),
// so bench/cmd/idleconns can measure what an armed deadline costs an idle
// connection, next to the same server without one.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/tcpoll/poll/server"
)

// ack is the acknowledgement protocol as a Handler.
type ack struct{ readTimeout time.Duration }

func (a ack) OnOpen(c *server.Conn) {
	c.SetValue(server.NewFramer(server.DefaultMaxMessage, server.FramingLine))
	if a.readTimeout > 0 {
		c.SetReadTimeout(a.readTimeout)
	}
}

func (ack) OnData(c *server.Conn, in []byte) {
	var buf [16 * len(server.Answer)]byte
	out, done := c.Value().(*server.Framer).Feed(buf[:0], in)
	if err := c.Write(out); err != nil {
		c.Abort(err)
		return
	}
	if done {
		c.Close()
	}
}

func (ack) OnClose(c *server.Conn, why error) {}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	readTimeout := flag.Duration("read-timeout", 0, "each connection's read timeout (0: none)")
	flag.Parse()
	srv, err := server.New(server.Config{Addr: *addr, Handler: ack{*readTimeout}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(srv.Addr())
	log.Fatal(srv.Serve(context.Background()))
}
