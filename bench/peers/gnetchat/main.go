// Command gnetchat serves the chat protocol (bench/README.md, the chat
// cell) on github.com/panjf2000/gnet/v2, multicore (one event loop per
// CPU), the gnet way: OnTraffic takes the complete lines a client sent
// and hands them to every other client with AsyncWrite, which runs the
// write on that client's own loop.
//
// gnet has no bound on what it holds for a connection. Its maintainers'
// advice (gnet issue #337) is to check OutboundBuffered, which may only be
// called on the connection's own loop, in AsyncWrite's callback, and to
// close the connection when too much is buffered: so does this peer, with
// -max-pending as the bound. Lines still waiting in a loop's task queue for
// their AsyncWrite to run are not counted: gnet does not show them.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"

	"github.com/tcpoll/poll/bench/internal/chat"
)

// session is a connection's state, owned by its loop.
type session struct {
	dropped bool // closed for falling behind, the close still to come
}

type room struct {
	gnet.BuiltinEventEngine
	maxLine, maxPending int
	dropped             atomic.Int64 // clients disconnected for falling behind
	written             gnet.AsyncCallback

	mu      sync.RWMutex
	clients map[gnet.Conn]struct{}
}

func (r *room) OnBoot(eng gnet.Engine) gnet.Action {
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

func (r *room) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&session{})
	r.mu.Lock()
	r.clients[c] = struct{}{}
	r.mu.Unlock()
	return nil, gnet.None
}

// OnClose runs on EOF too: what is left of the input is an unfinished
// line, which goes to no one.
func (r *room) OnClose(c gnet.Conn, err error) gnet.Action {
	r.mu.Lock()
	delete(r.clients, c)
	r.mu.Unlock()
	return gnet.None
}

// OnTraffic sends the complete lines in c's input to every other client and
// leaves an unfinished one in gnet's buffer for the next call.
func (r *room) OnTraffic(c gnet.Conn) gnet.Action {
	in, _ := c.Peek(-1)
	lines, _, ok := chat.Cut(in, r.maxLine)
	if len(lines) > 0 {
		// AsyncWrite writes later, on the receiver's loop: it needs a copy
		// of its own, which every receiver shares.
		out := append([]byte(nil), lines...)
		c.Discard(len(lines))
		r.mu.RLock()
		for to := range r.clients {
			if to != c {
				to.AsyncWrite(out, r.written)
			}
		}
		r.mu.RUnlock()
	}
	if !ok {
		return gnet.Close
	}
	return gnet.None
}

// afterWrite runs on c's loop after each AsyncWrite to it: past
// -max-pending bytes in its outbound buffer, c is closed.
func (r *room) afterWrite(c gnet.Conn, err error) error {
	if err != nil {
		return nil // closed already
	}
	s, ok := c.Context().(*session)
	if !ok || s.dropped {
		return nil
	}
	if pending := c.OutboundBuffered(); pending > r.maxPending {
		s.dropped = true
		n := r.dropped.Add(1)
		log.Printf("%v: disconnected, %d bytes pending (%d clients so far)", c.RemoteAddr(), pending, n)
		c.Close()
	}
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	maxLine := flag.Int("max-line", chat.DefaultMaxLine, "longest line, its \\n included, in `bytes`")
	maxPending := flag.Int("max-pending", chat.DefaultMaxPending, "most `bytes` of lines held for a client before it is disconnected")
	multicore := flag.Bool("multicore", true, "one event loop per CPU (false: a single loop)")
	flag.Parse()
	r := &room{maxLine: *maxLine, maxPending: *maxPending, clients: map[gnet.Conn]struct{}{}}
	r.written = r.afterWrite
	err := gnet.Run(r, "tcp://"+*addr,
		gnet.WithMulticore(*multicore),
		gnet.WithLogLevel(logging.ErrorLevel))
	if err != nil {
		log.Fatal(err)
	}
}
