// Command netchat serves the chat protocol (bench/README.md, the chat
// cell) on package net, the way most Go servers are written: a goroutine
// per connection reads and fans each batch of complete lines out to the
// other clients' queues; one writer goroutine per client drains its queue.
//
// A queue is bounded in bytes: the lines queued for a client plus those
// its writer is still writing (the kernel's socket buffers not counted).
// A line that would take it past -max-pending disconnects the client,
// counted and logged, without waiting for it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/tcpoll/poll/bench/internal/chat"
)

// client is one connection and its queue of lines to send.
type client struct {
	c    net.Conn
	wake chan struct{} // the writer's doorbell, one pending ring at most

	mu      sync.Mutex
	queue   []byte // lines not yet handed to the writer
	writing int    // bytes the writer is writing now
	closed  bool
}

// room is the chat room: the clients connected now.
type room struct {
	maxLine, maxPending int
	dropped             atomic.Int64 // clients disconnected for falling behind

	mu      sync.RWMutex
	clients map[*client]struct{}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	maxLine := flag.Int("max-line", chat.DefaultMaxLine, "longest line, its \\n included, in `bytes`")
	maxPending := flag.Int("max-pending", chat.DefaultMaxPending, "most `bytes` of lines held for a client before it is disconnected")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	r := &room{maxLine: *maxLine, maxPending: *maxPending, clients: map[*client]struct{}{}}
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
		cl := &client{c: c, wake: make(chan struct{}, 1)}
		r.mu.Lock()
		r.clients[cl] = struct{}{}
		r.mu.Unlock()
		go r.read(cl)
		go cl.write()
	}
}

// read fans each batch of complete lines from cl out to the others, until
// EOF, an error or a line over the limit; an unfinished last line is
// dropped.
func (r *room) read(cl *client) {
	defer func() {
		r.mu.Lock()
		delete(r.clients, cl)
		r.mu.Unlock()
		cl.close()
	}()
	buf := make([]byte, max(64<<10, 2*r.maxLine))
	n := 0 // bytes of an unfinished line at buf's start
	for {
		m, err := cl.c.Read(buf[n:])
		n += m
		lines, rest, ok := chat.Cut(buf[:n], r.maxLine)
		if len(lines) > 0 {
			r.broadcast(cl, lines)
		}
		if !ok || err != nil {
			return
		}
		n = copy(buf, rest)
	}
}

// broadcast queues lines for every client but from.
func (r *room) broadcast(from *client, lines []byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for cl := range r.clients {
		if cl != from {
			r.send(cl, lines)
		}
	}
}

// send queues lines for cl, or disconnects cl if that would put more than
// maxPending bytes in its queue.
func (r *room) send(cl *client, lines []byte) {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return
	}
	if pending := len(cl.queue) + cl.writing + len(lines); pending > r.maxPending {
		cl.mu.Unlock()
		n := r.dropped.Add(1)
		log.Printf("%v: disconnected, %d bytes pending (%d clients so far)", cl.c.RemoteAddr(), pending, n)
		cl.close()
		return
	}
	cl.queue = append(cl.queue, lines...)
	cl.mu.Unlock()
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

// close marks cl closed and closes its connection, which ends its reader;
// the writer ends at its next ring.
func (cl *client) close() {
	cl.mu.Lock()
	was := cl.closed
	cl.closed = true
	cl.queue = nil
	cl.mu.Unlock()
	if !was {
		cl.c.Close()
		select {
		case cl.wake <- struct{}{}:
		default:
		}
	}
}

// write sends what is queued for cl, swapping queues with the readers.
func (cl *client) write() {
	var out []byte
	for range cl.wake {
		cl.mu.Lock()
		if cl.closed {
			cl.mu.Unlock()
			return
		}
		out, cl.queue = cl.queue, out[:0]
		cl.writing = len(out)
		cl.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		_, err := cl.c.Write(out)
		cl.mu.Lock()
		cl.writing = 0
		cl.mu.Unlock()
		if err != nil {
			cl.close()
			return
		}
	}
}
