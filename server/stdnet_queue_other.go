//go:build !evio && !unix

package server

import (
	"net"
	"time"
)

// stdQueueWait: each Accept of acceptQueued has a deadline this far
// ahead. Accept fails at once on a deadline already passed, while one
// still ahead lets it try accept(2) first, so a queued connection costs no
// wait and only the last Accept, finding the queue empty, waits it out.
// It leaves room on Windows, where an AcceptEx may complete through the
// completion port even for a connection already queued.
const stdQueueWait = 5 * time.Millisecond

// acceptQueued takes up to max connections queued on ln, for at most
// stdDrainMax, handing each to admit, then closes ln. Package net has no
// accept that neither waits nor fails untried here, so a connection that
// completes its handshake as the last Accept times out is reset by the
// close.
func acceptQueued(ln *net.TCPListener, max int, admit func(net.Conn)) {
	defer ln.Close()
	until := time.Now().Add(stdDrainMax)
	for range max {
		dl := time.Now().Add(stdQueueWait)
		if dl.After(until) {
			dl = until
		}
		ln.SetDeadline(dl)
		c, err := ln.Accept()
		if err != nil {
			if connAcceptErr(err) {
				continue
			}
			// Empty (a timeout), closed by a kill, or failing (out of
			// descriptors, say): what is left is reset by the close.
			return
		}
		admit(c)
	}
}
