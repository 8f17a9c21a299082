package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tcpoll/poll/server"
)

// upper is a second line protocol: it echoes each line in upper case and
// ends the connection on "quit". It holds its unfinished line, at most
// 64 bytes of it, so like the Framer it never grows without bound.
type upper struct{ line []byte }

func (u *upper) Feed(out, in []byte) ([]byte, bool) {
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			u.line = append(u.line, in[:min(len(in), 64-len(u.line))]...)
			return out, false
		}
		u.line = append(u.line, in[:min(i, 64-len(u.line))]...)
		in = in[i+1:]
		if string(u.line) == "quit" {
			return append(out, "BYE\n"...), true
		}
		out = append(append(out, bytes.ToUpper(u.line)...), '\n')
		u.line = u.line[:0]
	}
	return out, false
}

func (u *upper) End(out []byte) []byte {
	if len(u.line) == 0 {
		return out
	}
	return append(append(out, bytes.ToUpper(u.line)...), '\n')
}

// The event loop serves any Protocol: here, one that shouts back.
func Example_protocol() {
	srv, err := server.New(server.Config{
		Addr:        "127.0.0.1:0",
		NewProtocol: func() server.Protocol { return new(upper) },
	})
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
	fmt.Fprint(c, "hello\nevent loop\nquit\n")
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		fmt.Println(sc.Text())
	}
	// Output:
	// HELLO
	// EVENT LOOP
	// BYE
}
