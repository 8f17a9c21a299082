// Command nbiosrv serves the acknowledgement protocol on
// github.com/lesismal/nbio (an Engine with one poller per CPU), with
// server.Framer as the protocol.
//
// nbio's OnData never sees EOF: on a half-close nbio closes the socket
// itself (EPOLLRDHUP is one of its error events) and calls OnClose later,
// from another goroutine, so a message unfinished at EOF cannot be
// answered there. By default this peer therefore reads through nbio's
// OnRead hook, which runs on the same poller: it reads into a pooled
// buffer as nbio's own loop does, and answers the pending message when a
// read returns 0. -ondata serves through OnData instead, as most nbio
// code does; that mode fails the EOF cases of tcpoll check.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"

	"github.com/tcpoll/poll/server"
)

// bufs holds read buffers (nbio's default read size) and answer buffers:
// nbio copies what a Write could not send at once.
var (
	bufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
	outs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	maxMessage := flag.Int("max-message", server.DefaultMaxMessage, "longest unfinished message, in `bytes`")
	onData := flag.Bool("ondata", false, "serve through OnData (cannot answer a message pending at EOF)")
	flag.Parse()
	logging.SetLevel(logging.LevelError)

	engine := nbio.NewEngine(nbio.Config{
		Network: "tcp",
		Addrs:   []string{*addr},
		NPoller: runtime.GOMAXPROCS(0),
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err == nil {
				fmt.Println(ln.Addr())
			}
			return ln, err
		},
	})
	engine.OnOpen(func(c *nbio.Conn) {
		c.SetSession(server.NewFramer(*maxMessage, server.FramingLine))
	})
	if *onData {
		engine.OnData(func(c *nbio.Conn, in []byte) { feed(c, in) })
	} else {
		engine.OnRead(read)
	}
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	engine.Stop()
}

// feed answers in and reports whether the connection was closed.
func feed(c *nbio.Conn, in []byte) bool {
	f, ok := c.Session().(*server.Framer)
	if !ok {
		return true
	}
	p := outs.Get().(*[]byte)
	defer outs.Put(p)
	out, done := f.Feed((*p)[:0], in)
	_, err := c.Write(out)
	*p = out
	if err != nil || done {
		c.Close()
		return true
	}
	return false
}

// read drains c as nbio's own read loop would, and answers at EOF.
func read(c *nbio.Conn) {
	p := bufs.Get().(*[]byte)
	defer bufs.Put(p)
	buf := *p
	for range 3 { // nbio's MaxConnReadTimesPerEventLoop
		n, err := c.Read(buf)
		if n > 0 && feed(c, buf[:n]) {
			return
		}
		switch {
		case n == 0 && err == nil: // EOF
			if f, ok := c.Session().(*server.Framer); ok {
				if out := f.End(nil); len(out) > 0 {
					c.Write(out)
				}
			}
			c.Close()
			return
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return
		case err != nil:
			c.Close()
			return
		}
		if n < len(buf) {
			return
		}
	}
}
