// Command nbiochat serves the chat protocol (bench/README.md, the chat
// cell) on github.com/lesismal/nbio, an Engine with one poller per CPU, the
// nbio way: OnData takes the complete lines a client sent and writes them
// to every other client with Conn.Write, from the sender's poller.
//
// What a write cannot send at once nbio keeps for the connection; its
// Config.MaxWriteBufferSize bounds that, closing a connection whose kept
// bytes would pass it, so -max-pending sets it, and a Write that fails
// with nbio.ErrOverflow is counted and logged.
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
	"sync/atomic"
	"syscall"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"

	"github.com/tcpoll/poll/bench/internal/chat"
)

// session is a connection's unfinished line, which only its poller
// touches.
type session struct {
	pending []byte
}

type room struct {
	maxLine, maxPending int
	dropped             atomic.Int64 // clients disconnected for falling behind

	mu      sync.RWMutex
	clients map[*nbio.Conn]struct{}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	maxLine := flag.Int("max-line", chat.DefaultMaxLine, "longest line, its \\n included, in `bytes`")
	maxPending := flag.Int("max-pending", chat.DefaultMaxPending, "most `bytes` of lines held for a client before it is disconnected")
	flag.Parse()
	logging.SetLevel(logging.LevelError)

	r := &room{maxLine: *maxLine, maxPending: *maxPending, clients: map[*nbio.Conn]struct{}{}}
	engine := nbio.NewEngine(nbio.Config{
		Network:            "tcp",
		Addrs:              []string{*addr},
		NPoller:            runtime.GOMAXPROCS(0),
		MaxWriteBufferSize: *maxPending,
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err == nil {
				fmt.Println(ln.Addr())
			}
			return ln, err
		},
	})
	engine.OnOpen(func(c *nbio.Conn) {
		c.SetSession(&session{})
		r.mu.Lock()
		r.clients[c] = struct{}{}
		r.mu.Unlock()
	})
	// nbio closes on EOF itself; an unfinished line goes with the session.
	engine.OnClose(func(c *nbio.Conn, err error) {
		r.mu.Lock()
		delete(r.clients, c)
		r.mu.Unlock()
	})
	engine.OnData(r.data)
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	engine.Stop()
}

// data sends the complete lines of c's input to every other client and
// keeps an unfinished one for the next call. in is nbio's read buffer,
// lent for the call; Write copies what it cannot send at once.
func (r *room) data(c *nbio.Conn, in []byte) {
	s, ok := c.Session().(*session)
	if !ok {
		return
	}
	b := in
	if len(s.pending) > 0 {
		s.pending = append(s.pending, in...)
		b = s.pending
	}
	lines, rest, ok := chat.Cut(b, r.maxLine)
	if len(lines) > 0 {
		r.mu.RLock()
		for to := range r.clients {
			if to == c {
				continue
			}
			if _, err := to.Write(lines); errors.Is(err, nbio.ErrOverflow) {
				n := r.dropped.Add(1)
				log.Printf("%v: disconnected, more than %d bytes pending (%d clients so far)", to.RemoteAddr(), r.maxPending, n)
			}
		}
		r.mu.RUnlock()
	}
	if !ok {
		c.Close()
		return
	}
	s.pending = append(s.pending[:0], rest...)
}
