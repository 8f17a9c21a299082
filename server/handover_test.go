package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/restart"
	"github.com/tcpoll/poll/server"
)

// listenFiles binds n listeners on 127.0.0.1 and returns them as files, as
// systemd or a predecessor passes them, with their addresses.
func listenFiles(t *testing.T, n int) ([]*os.File, []string) {
	t.Helper()
	var files []*os.File
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			skipUnderWine(t, "File takes the socket off its completion port (FileReplaceCompletionInformation), which Wine 8 does not implement")
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		// The file is a duplicate: the socket lives on through it.
		ln.Close()
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	return files, addrs
}

// supportsListeners reports whether this build's engine takes
// Config.Listeners; evio must refuse them plainly.
func supportsListeners(t *testing.T) bool {
	t.Helper()
	files, _ := listenFiles(t, 1)
	s, err := server.New(server.Config{Listeners: files})
	if err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("New with Listeners: %v, want a server or ErrUnsupported", err)
		}
		return false
	}
	s.Shutdown(context.Background())
	return true
}

func TestListenersEvioRefuses(t *testing.T) {
	s := startServer(t, server.Config{})
	if s.Engine() != "evio" {
		t.Skip("evio only: the other engines take Listeners")
	}
	if supportsListeners(t) {
		t.Fatal("the evio engine accepted Listeners")
	}
	if _, err := s.ListenerFiles(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ListenerFiles: %v, want ErrUnsupported", err)
	}
	if err := s.StopAccepting(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("StopAccepting: %v, want ErrUnsupported", err)
	}
}

// TestListeners: a server serves on the sockets it is given, whatever
// their number against its loops', including connections that waited in
// their queues before it existed.
func TestListeners(t *testing.T) {
	if !supportsListeners(t) {
		t.Skip("this engine has no Listeners (TestListenersEvioRefuses)")
	}
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d-sockets-2-loops", n), func(t *testing.T) {
			files, addrs := listenFiles(t, n)
			// Queued before the server exists: the kernel completed the
			// handshakes, nobody accepted yet.
			var early []*client
			for _, a := range addrs {
				c := dialAddr(t, a)
				c.send("early\n")
				early = append(early, c)
			}
			s := startServer(t, server.Config{Listeners: files, Loops: 2})
			for _, f := range files {
				f.Close() // the server holds duplicates
			}
			if got, want := s.Addr().String(), addrs[0]; got != want {
				t.Errorf("Addr() = %s, want %s", got, want)
			}
			select {
			case <-s.Ready():
			case <-time.After(ioTimeout):
				t.Fatal("Ready not closed after Serve")
			}
			for _, c := range early {
				c.expect(acks(1, false))
			}
			for range 4 {
				for _, a := range addrs {
					c := dialAddr(t, a)
					c.send("m\nclose\n")
					c.expectEnd(acks(1, true))
				}
			}
		})
	}
}

func dialAddr(t *testing.T, addr string) *client {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return dial(t, a)
}

func TestListenersInvalid(t *testing.T) {
	files, _ := listenFiles(t, 1)
	if _, err := server.New(server.Config{Addr: "127.0.0.1:0", Listeners: files}); err == nil {
		t.Error("New with Addr and Listeners: no error")
	}
	if _, err := server.New(server.Config{Listeners: []*os.File{nil}}); err == nil {
		t.Error("New with a nil listener: no error")
	}
	if !supportsListeners(t) {
		return
	}
	// What a unit file can pass where a listener is wanted, each refused
	// with a reason.
	_, addrs := listenFiles(t, 1)
	conn, err := net.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	closed, _ := listenFiles(t, 1)
	closed[0].Close()
	for _, tc := range []struct {
		name string
		file func() (*os.File, error)
		want string // in the error
	}{
		{"connected TCP socket", conn.(*net.TCPConn).File, "listen"},
		{"UDP socket", udp.(*net.UDPConn).File, "stream"},
		{"pipe", func() (*os.File, error) { return r, nil }, "socket"},
		{"closed file", func() (*os.File, error) { return closed[0], nil }, "closed"},
	} {
		f, err := tc.file()
		if err != nil {
			t.Fatal(err)
		}
		_, err = server.New(server.Config{Listeners: []*os.File{f}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with a %s as listener: got %v, want an error saying %q", tc.name, err, tc.want)
		}
		f.Close()
	}
}

// TestHandOver: a new server takes the listening sockets of a running one,
// which then stops accepting and shuts down, under churn and pipelining
// clients that must not see it: no refused or reset connection, no lost
// answer, and a connection the old server ends ends with a FIN.
func TestHandOver(t *testing.T) {
	if !supportsListeners(t) {
		t.Skip("this engine has no Listeners (TestListenersEvioRefuses)")
	}
	old, err := server.New(server.Config{Addr: "127.0.0.1:0", Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	oldServed := make(chan error, 1)
	go func() { oldServed <- old.Serve(context.Background()) }()
	<-old.Ready()

	// Churners and pipelining clients, which must not see the hand-over.
	run, err := restart.Start(context.Background(), restart.Config{Addr: old.Addr().String(), Churners: 8, LongLived: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Stop()
	time.Sleep(100 * time.Millisecond)

	files, err := old.ListenerFiles()
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skip("ListenerFiles: sockets pass to a successor by descriptor number, on Unix only")
		}
		t.Fatal(err)
	}
	next, err := server.New(server.Config{Listeners: files, Loops: 2})
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	nextServed := make(chan error, 1)
	go func() { nextServed <- next.Serve(context.Background()) }()
	<-next.Ready()
	if err := old.StopAccepting(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := old.Shutdown(ctx); err != nil {
		t.Errorf("old Shutdown: %v", err)
	}
	if err := <-oldServed; !errors.Is(err, server.ErrServerClosed) {
		t.Errorf("old Serve: %v", err)
	}
	if _, err := old.ListenerFiles(); err == nil {
		t.Error("ListenerFiles after Shutdown: no error")
	}
	before := next.Stats().Accepted.Load()
	time.Sleep(200 * time.Millisecond)
	res := run.Stop()
	t.Logf("%v; old accepted %d, new %d", res, old.Stats().Accepted.Load(), next.Stats().Accepted.Load())
	for _, f := range res.Failures() {
		t.Error(f)
	}
	for _, e := range res.Errors {
		t.Log(e)
	}
	if next.Stats().Accepted.Load() == before {
		t.Error("the new server accepted nothing once the old one was gone")
	}
	if res.LongEnded == 0 {
		t.Error("no pipelining connection ended: the old server's shutdown was not exercised")
	}
	// A server that sends its FIN right after answering the burst it has
	// (or with nothing pending, between bursts) never lets a burst of a
	// client that waits for its answers cross the FIN.
	if res.LongCrossed > 0 {
		t.Errorf("%d bursts crossed the old server's FIN and were lost", res.LongCrossed)
	}
	if err := next.Shutdown(ctx); err != nil {
		t.Errorf("new Shutdown: %v", err)
	}
	if err := <-nextServed; !errors.Is(err, server.ErrServerClosed) {
		t.Errorf("new Serve: %v", err)
	}
}

// TestShutdownIdleClientsCloseLater: idle connections get their FIN when
// the shutdown's wait for input ends, and their clients close one by one
// afterwards, each while the others linger. Shutdown must end, and soon.
func TestShutdownIdleClientsCloseLater(t *testing.T) {
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	var idle []*client
	for range 4 {
		c := dial(t, s.Addr())
		c.send("hi\n")
		c.expect(acks(1, false))
		idle = append(idle, c)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	for _, c := range idle {
		c.expectEnd("")
		c.c.Close()
		time.Sleep(150 * time.Millisecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}
