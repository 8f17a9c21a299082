// Command nethttp serves TechEmpower's plaintext test on Go's net/http
// with its defaults (a goroutine per connection): GET /plaintext answers
// "Hello, World!" with Server and Content-Type: text/plain set by the
// handler, and the Date net/http adds; any other path is 404. net/http
// answers pipelined requests one after the other.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
)

var hello = []byte("Hello, World!")

func plaintext(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Server"] = []string{"net-http"}
	h["Content-Type"] = []string{"text/plain"}
	w.Write(hello)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen `address`")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /plaintext", plaintext)
	log.Fatal(http.Serve(ln, mux))
}
