//go:build !evio && unix

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tcpoll/poll/server"
)

// A server hands its listening sockets to its successor, which is usually
// another process: `tcpoll serve` passes the files to the new binary as
// exec.Cmd.ExtraFiles on SIGHUP. No connection is refused or reset on the
// way.
func ExampleServer_ListenerFiles() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	old, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	go old.Serve(ctx)
	<-old.Ready()

	// The successor serves on duplicates of the same sockets.
	files, err := old.ListenerFiles()
	if err != nil {
		fmt.Println(err)
		return
	}
	next, err := server.New(server.Config{Listeners: files})
	for _, f := range files {
		f.Close() // New made its own duplicates
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	go next.Serve(ctx)
	defer next.Shutdown(ctx)
	<-next.Ready()

	// Only then does the old server stop accepting, leaving its accept
	// queues to the successor, and finish its own connections.
	old.StopAccepting()
	old.Shutdown(ctx)

	c, err := net.Dial("tcp", old.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Fprint(c, "served by the successor\n")
	answer, err := bufio.NewReader(c).ReadString('\n')
	fmt.Print(answer, err)
	// Output: I recieved your message
	// <nil>
}
