// Command gnethttp serves TechEmpower's plaintext test on
// github.com/panjf2000/gnet/v2 the way gnet's own TechEmpower entry does:
// multicore (one event loop per CPU), GOMAXPROCS at twice the CPUs, and
// no HTTP parser: a request is whatever ends at the next "\r\n\r\n", and
// each is answered with the same canned response, its Date refreshed once
// a second by a goroutine into an atomic value. Every request a read
// completes is answered with one Write.
//
// One difference from the entry: it consumes only the requests it found,
// and keeps an unfinished one for the next read (the entry's Next(-1)
// drops it, and a pipeline cut between two reads would then stall).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"
)

var headEnd = []byte("\r\n\r\n")

// date is the current HTTP-date, refreshed once a second.
var date atomic.Pointer[string]

func tick() {
	for {
		s := time.Now().UTC().Format(http1123)
		date.Store(&s)
		time.Sleep(time.Second)
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

type handler struct {
	gnet.BuiltinEventEngine
}

// codec is a connection's answer buffer, kept between reads.
type codec struct{ out []byte }

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	fd, err := eng.Dup()
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(fd)
	if sa, err := unix.Getsockname(fd); err == nil {
		if sa, ok := sa.(*unix.SockaddrInet4); ok {
			fmt.Println(&net.TCPAddr{IP: sa.Addr[:], Port: sa.Port})
		}
	}
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&codec{})
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	hc := c.Context().(*codec)
	in, _ := c.Peek(-1)
	used := 0
	for {
		i := bytes.Index(in[used:], headEnd)
		if i < 0 {
			break
		}
		used += i + len(headEnd)
		hc.out = append(hc.out, "HTTP/1.1 200 OK\r\nServer: gnet\r\nContent-Type: text/plain\r\nDate: "...)
		hc.out = append(hc.out, *date.Load()...)
		hc.out = append(hc.out, "\r\nContent-Length: 13\r\n\r\nHello, World!"...)
	}
	c.Discard(used)
	if len(hc.out) > 0 {
		_, err := c.Write(hc.out)
		hc.out = hc.out[:0]
		if err != nil {
			return gnet.Close
		}
	}
	return gnet.None
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen `address`")
	multicore := flag.Bool("multicore", true, "one event loop per CPU (false: a single loop)")
	flag.Parse()
	// As gnet's TechEmpower entry sets it.
	runtime.GOMAXPROCS(runtime.NumCPU() * 2)
	s := time.Now().UTC().Format(http1123)
	date.Store(&s)
	go tick()
	err := gnet.Run(&handler{}, "tcp://"+*addr,
		gnet.WithMulticore(*multicore),
		gnet.WithLogLevel(logging.ErrorLevel))
	if err != nil {
		log.Fatal(err)
	}
}
