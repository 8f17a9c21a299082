package client

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

func TestReadAnswer(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{Answer, false},
		{Answer + "more", false}, // reads one answer only
		{strings.Replace(Answer, "recieved", "received", 1), true},
		{Answer[:5], true},
		{"", true},
	} {
		err := ReadAnswer(strings.NewReader(tc.in), make([]byte, len(Answer)))
		if got := err != nil; got != tc.wantErr {
			t.Errorf("ReadAnswer(%q) = %v, want an error: %v", tc.in, err, tc.wantErr)
		}
	}
	if err := ReadAnswer(strings.NewReader(""), make([]byte, len(Answer))); !errors.Is(err, io.EOF) {
		t.Errorf("ReadAnswer of nothing = %v, want io.EOF", err)
	}
}

func TestOpenAll(t *testing.T) {
	boom := errors.New("boom")
	var pipes []net.Conn
	t.Cleanup(func() { CloseAll(pipes) })
	open := func(i int) (net.Conn, error) {
		if i%3 == 0 {
			return nil, boom
		}
		a, b := net.Pipe()
		return a, b.Close()
	}
	conns, failed, first := OpenAll(10, 4, open)
	pipes = conns
	if got, want := failed, 4; got != want { // 0, 3, 6, 9
		t.Errorf("failed = %d, want %d", got, want)
	}
	if first != boom {
		t.Errorf("first = %v, want %v", first, boom)
	}
	for i, c := range conns {
		if got, want := c == nil, i%3 == 0; got != want {
			t.Errorf("conns[%d] nil: %v, want %v", i, got, want)
		}
	}
	if conns, failed, first := OpenAll(0, 4, open); len(conns) != 0 || failed != 0 || first != nil {
		t.Errorf("OpenAll(0) = %v, %d, %v; want nothing", conns, failed, first)
	}
}
