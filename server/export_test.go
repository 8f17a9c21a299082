package server

// Hooks into the engines for package server_test, where an engine has
// them: see export_poll_test.go and export_stdnet_test.go.

// HoldAccepts makes a serving engine leave new connections in its
// listeners' queues until it stops, and reports whether it did.
func HoldAccepts(s *Server) bool {
	h, ok := s.eng.(interface{ holdAccepts() bool })
	return ok && h.holdAccepts()
}

// StopRequested reports whether Shutdown has told every part of the
// engine that must act on it, so that each acts when it next looks.
// Engines without the hook report false.
func StopRequested(s *Server) bool {
	r, ok := s.eng.(interface{ stopRequested() bool })
	return ok && r.stopRequested()
}

// IPEntries is how many client addresses the engine's MaxConnsPerIP
// count holds, or 0 without the cap.
func IPEntries(s *Server) int {
	h, ok := s.eng.(interface{ ipLimit() *ipLimit })
	if !ok || h.ipLimit() == nil {
		return 0
	}
	return h.ipLimit().len()
}

// SiblingListeners reports whether the engine's event loops each have
// listeners of their own: the poll engine without its handoff.
func SiblingListeners(s *Server) bool {
	h, ok := s.eng.(interface{ siblingListeners() bool })
	return ok && h.siblingListeners()
}
