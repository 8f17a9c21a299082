//go:build !evio

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tcpoll/poll/server"
)

// greeter greets each client with its address, then writes back what it
// sends. A write fails with ErrBackpressure when the client's unsent
// output would pass MaxPendingOutput; greeter then drops the client.
type greeter struct{}

func (greeter) OnOpen(c *server.Conn) {
	c.Write([]byte("hello " + c.RemoteAddr().Addr().String() + "\n"))
}

func (greeter) OnData(c *server.Conn, in []byte) {
	if err := c.Write(in); err != nil {
		c.Abort(err)
	}
}

func (greeter) OnClose(c *server.Conn, why error) {}

// A Handler serves connections on the event loops: here, a greeting and
// an echo. The poll and stdnet engines serve Handlers; with -tags evio,
// server.New returns errors.ErrUnsupported.
func ExampleHandler() {
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", Handler: greeter{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(context.Background())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "ping\n")
	r := bufio.NewReader(c)
	for range 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(line)
	}
	// Output:
	// hello 127.0.0.1
	// ping
}
