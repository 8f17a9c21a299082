package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/tcpoll/poll/internal/proctest"
)

// echoBin is the echo command, built once by TestMain.
var echoBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	bin, remove, err := proctest.Build("echo")
	if err != nil {
		fmt.Fprintf(os.Stderr, "building echo: %v\n", err)
		return 1
	}
	defer remove()
	echoBin = bin
	return m.Run()
}

// startEcho runs the echo command on 127.0.0.1, a free port, with
// args, and waits for its "listening on" line (see proctest.Start).
func startEcho(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, "echo", echoBin, args...)
}
