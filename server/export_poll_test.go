//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

// stopRequested: Shutdown sets stopped before it tells the loops, so
// ListenerFiles failing does not mean a loop will see the stop yet.
func (e *pollEngine) stopRequested() bool {
	for _, l := range e.loops {
		if !l.stop.Load() {
			return false
		}
	}
	return true
}

func (e *pollEngine) ipLimit() *ipLimit { return e.ips }

func (e *pollEngine) siblingListeners() bool { return !e.handoff && len(e.loops) > 1 }
