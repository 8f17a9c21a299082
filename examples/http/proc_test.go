package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/tcpoll/poll/internal/proctest"
)

// httpBin is the http command, built once by TestMain.
var httpBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	bin, remove, err := proctest.Build("http")
	if err != nil {
		fmt.Fprintf(os.Stderr, "building http: %v\n", err)
		return 1
	}
	defer remove()
	httpBin = bin
	return m.Run()
}

// startHTTP runs the http command on 127.0.0.1, a free port, with args,
// and waits for its "listening on" line (see proctest.Start).
func startHTTP(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, "http", httpBin, args...)
}
