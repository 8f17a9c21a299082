//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd && !solaris && !aix

package poll

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

var errNoBackend = fmt.Errorf("poll: no backend for %s: %w", runtime.GOOS, errors.ErrUnsupported)

// backend is the stand-in for systems without epoll, kqueue or poll(2)
// (Windows, Plan 9, js and wasip1): New fails with an error wrapping
// errors.ErrUnsupported, and so does every method.
type backend struct{}

// What this backend reports, for the contract tests (export_test.go).
const (
	backendName           = "none"
	edgeTriggered         = false
	reportsReadClosed     = false
	hangUpWithoutInterest = false
)

func (*backend) init() error                                       { return errNoBackend }
func (*backend) ctl(fd int, token uint64, in Interest, o op) error { return errNoBackend }
func (*backend) wait(events []Event, timeout time.Duration) (int, error) {
	return 0, errNoBackend
}
func (*backend) wake() error  { return errNoBackend }
func (*backend) close() error { return errNoBackend }
