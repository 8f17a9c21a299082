// Command gnetsrv serves the acknowledgement protocol on
// github.com/panjf2000/gnet/v2 (multicore: one event loop per CPU), with
// server.Framer as the protocol.
//
// gnet closes a connection when a read returns EOF, but calls OnClose
// while the socket is still open and flushes what OnClose writes, so the
// message unfinished at EOF is answered there.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"

	"github.com/tcpoll/poll/server"
)

type handler struct {
	gnet.BuiltinEventEngine
	maxMessage int
}

// outs holds answer buffers: gnet copies what a Write could not send at
// once, so a buffer is free again when Write returns.
var outs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	fd, err := eng.Dup()
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		log.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		fmt.Println(&net.TCPAddr{IP: sa.Addr[:], Port: sa.Port})
	case *unix.SockaddrInet6:
		fmt.Println(&net.TCPAddr{IP: sa.Addr[:], Port: sa.Port})
	}
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(server.NewFramer(h.maxMessage, server.FramingLine))
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	f := c.Context().(*server.Framer)
	in, _ := c.Next(-1)
	p := outs.Get().(*[]byte)
	out, done := f.Feed((*p)[:0], in)
	_, err := c.Write(out)
	*p = out
	outs.Put(p)
	if err != nil || done {
		return gnet.Close
	}
	return gnet.None
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	if f, ok := c.Context().(*server.Framer); ok && errors.Is(err, io.EOF) {
		if out := f.End(nil); len(out) > 0 {
			c.Write(out)
		}
	}
	return gnet.None
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	maxMessage := flag.Int("max-message", server.DefaultMaxMessage, "longest unfinished message, in `bytes`")
	multicore := flag.Bool("multicore", true, "one event loop per CPU (false: a single loop)")
	flag.Parse()
	h := &handler{maxMessage: *maxMessage}
	err := gnet.Run(h, "tcp://"+*addr,
		gnet.WithMulticore(*multicore),
		gnet.WithLogLevel(logging.ErrorLevel))
	if err != nil {
		log.Fatal(err)
	}
}
