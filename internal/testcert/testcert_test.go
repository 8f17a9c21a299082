package testcert

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
)

// TestHandshake: a client trusting the pool completes a handshake with a
// server presenting the certificate, and one trusting nothing fails.
func TestHandshake(t *testing.T) {
	p, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), p.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("got %q, %v; want hi", buf, err)
	}
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	bad := tls.Client(raw, &tls.Config{ServerName: "127.0.0.1"})
	defer bad.Close()
	if err := bad.Handshake(); err == nil {
		t.Fatal("a client trusting no root completed the handshake")
	}
}
