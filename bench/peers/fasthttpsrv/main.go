// Command fasthttpsrv serves TechEmpower's plaintext test on
// github.com/valyala/fasthttp with its defaults: GET /plaintext answers
// "Hello, World!" as text/plain, with the Server and Date fields fasthttp
// adds itself (Date cached and refreshed by fasthttp, not per request);
// any other path is 404. fasthttp reads pipelined requests from its
// buffer and flushes the answers when the buffer is empty.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"

	"github.com/valyala/fasthttp"
)

func handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) != "/plaintext" {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	ctx.SetContentType("text/plain")
	ctx.WriteString("Hello, World!")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen `address`")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	s := &fasthttp.Server{Handler: handle, Name: "fasthttp"}
	log.Fatal(s.Serve(ln))
}
