// Command eviosrv serves the acknowledgement protocol on
// github.com/tidwall/evio, with server.Framer as the protocol.
//
// evio closes a connection as soon as a read returns EOF and only then
// calls Closed, so a message still unfinished at EOF cannot be answered:
// this peer fails those cases of tcpoll check, as evio allows no better.
package main

import (
	"flag"
	"fmt"
	"log"
	"runtime"

	"github.com/tcpoll/poll/server"
	"github.com/tidwall/evio"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3137", "listen `address`")
	maxMessage := flag.Int("max-message", server.DefaultMaxMessage, "longest unfinished message, in `bytes`")
	loops := flag.Int("loops", runtime.GOMAXPROCS(0), "event loops")
	flag.Parse()

	var ev evio.Events
	ev.NumLoops = *loops
	ev.Serving = func(s evio.Server) evio.Action {
		for _, a := range s.Addrs {
			fmt.Println(a)
		}
		return evio.None
	}
	ev.Opened = func(c evio.Conn) ([]byte, evio.Options, evio.Action) {
		c.SetContext(server.NewFramer(*maxMessage, server.FramingLine))
		return nil, evio.Options{ReuseInputBuffer: true}, evio.None
	}
	ev.Data = func(c evio.Conn, in []byte) ([]byte, evio.Action) {
		f := c.Context().(*server.Framer)
		// evio copies out into the connection's own buffer, so a fresh
		// slice per call is what its examples do.
		out, done := f.Feed(nil, in)
		if done {
			return out, evio.Close
		}
		return out, evio.None
	}
	if err := evio.Serve(ev, "tcp://"+*addr); err != nil {
		log.Fatal(err)
	}
}
