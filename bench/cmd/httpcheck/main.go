// Command httpcheck is the conformance check an HTTP server must pass
// before the plaintext cell measures it: on one connection, GET
// /plaintext answered 200 with Content-Type text/plain, a Server field, a
// Date field that parses as an HTTP-date, Content-Length 13 and the body
// "Hello, World!"; then two requests written at once, answered by two such
// responses in turn; then -depth requests written at once with the fields
// wrk sends (bench/http/pipeline.lua), answered by as many.
//
// It prints "ok" or what failed, and exits non-zero on a failure.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const body = "Hello, World!"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server `address`")
	depth := flag.Int("depth", 16, "requests of the deep pipeline")
	timeout := flag.Duration("timeout", 5*time.Second, "longest the whole check may take")
	flag.Parse()
	if err := check(*addr, *depth, *timeout); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}

func check(addr string, depth int, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(c)
	simple := "GET /plaintext HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	wrkLike := "GET /plaintext HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\n" +
		"Connection: keep-alive\r\n\r\n"
	for _, step := range []struct {
		what string
		reqs string
		n    int
	}{
		{"one request", simple, 1},
		{"a pipelined pair", strings.Repeat(simple, 2), 2},
		{fmt.Sprintf("%d pipelined requests", depth), strings.Repeat(wrkLike, depth), depth},
	} {
		if _, err := io.WriteString(c, step.reqs); err != nil {
			return fmt.Errorf("%s: %v", step.what, err)
		}
		for i := range step.n {
			if err := readOne(r); err != nil {
				return fmt.Errorf("%s: response %d of %d: %v", step.what, i+1, step.n, err)
			}
		}
	}
	return nil
}

// readOne reads one response and checks it is TechEmpower's plaintext
// answer.
func readOne(r *bufio.Reader) error {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	h := resp.Header
	switch {
	case resp.StatusCode != 200:
		return fmt.Errorf("status %q, want 200", resp.Status)
	case string(b) != body:
		return fmt.Errorf("body %q, want %q", b, body)
	case resp.ContentLength != int64(len(body)):
		return fmt.Errorf("Content-Length %d, want %d", resp.ContentLength, len(body))
	case !strings.HasPrefix(h.Get("Content-Type"), "text/plain"):
		return fmt.Errorf("Content-Type %q, want text/plain", h.Get("Content-Type"))
	case h.Get("Server") == "":
		return fmt.Errorf("no Server field")
	case resp.Close:
		return fmt.Errorf("the server closes the connection")
	}
	if _, err := http.ParseTime(h.Get("Date")); err != nil {
		return fmt.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	return nil
}
