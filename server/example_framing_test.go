package server_test

import (
	"fmt"

	"github.com/tcpoll/poll/server"
)

func ExampleFramer() {
	f := server.NewFramer(server.DefaultMaxMessage, server.FramingLine)

	// One complete message, and the start of another.
	out, closed := f.Feed(nil, []byte("hello\nhel"))
	fmt.Printf("%q %v\n", out, closed)

	// The second message ends (its CR is dropped), then "close" ends the
	// connection: the rest is ignored.
	out, closed = f.Feed(out[:0], []byte("lo\r\nclose\nignored\n"))
	fmt.Printf("%q %v\n", out, closed)

	// Output:
	// "I recieved your message\n" false
	// "I recieved your message\nclosing" true
}
