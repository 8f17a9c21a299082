package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcpoll/poll/server"
)

// BenchmarkServerMessage is the server's cost per message, seen from one
// loopback connection pipelining 16 messages a write: b.N messages out,
// b.N answers back, checked.
func BenchmarkServerMessage(b *testing.B) {
	for _, depth := range []int{1, 16} {
		b.Run(fmt.Sprintf("depth%d", depth), func(b *testing.B) {
			srv, err := server.New(server.Config{Addr: "127.0.0.1:0", Loops: 1})
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(context.Background())
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			})
			c, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := []byte("0123456789abcde\n") // 16 bytes
			batch := bytes.Repeat(msg, depth)
			want := bytes.Repeat([]byte(server.Answer), depth)
			got := make([]byte, len(want))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += depth {
				if _, err := c.Write(batch); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					b.Fatalf("got %q, want %q", got, want)
				}
			}
		})
	}
}
