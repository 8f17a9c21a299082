//go:build !evio && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

package server

import (
	"net"
	"time"
)

// holdAccepts: an Accept fails at once past its deadline, and on that
// failure an accept loop waits for the stop (see acceptLoop). The deadline
// wakes a blocked Accept, which can still take a connection that comes
// before its goroutine runs, so this waits until every loop is held.
func (e *stdnetEngine) holdAccepts() bool {
	for _, ln := range e.lns {
		ln.(*net.TCPListener).SetDeadline(time.Unix(1, 0))
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if e.held.Load() == int32(len(e.lns)) {
			return true
		}
	}
	return false
}

func (e *stdnetEngine) stopRequested() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

func (e *stdnetEngine) ipLimit() *ipLimit { return e.ips }
