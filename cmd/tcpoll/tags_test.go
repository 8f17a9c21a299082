package main

import (
	"os"
	"strings"
)

// binTags are the build tags of the tcpoll binaries the tests run:
// TCPOLL_TAGS, and the poller backend this test binary was built with, so
// that `go test -tags tcpoll_poll ./cmd/tcpoll` attacks a server on
// poll(2), not the default backend.
func binTags() string {
	sep := func(r rune) bool { return r == ',' || r == ' ' }
	return strings.Join(strings.FieldsFunc(os.Getenv("TCPOLL_TAGS")+","+backendTag, sep), ",")
}
