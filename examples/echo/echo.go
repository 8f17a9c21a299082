package main

import (
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/tcpoll/poll/server"
)

// echo is the server.Handler: it writes back what it reads.
type echo struct {
	log    *slog.Logger
	failed atomic.Int64 // writes that failed other than on a closing connection
}

// OnOpen has nothing to set up: echo keeps no state.
func (e *echo) OnOpen(c *server.Conn) {}

// OnData writes in back. The engine reads no more than fits under
// MaxPendingOutput, so a Write failing with ErrBackpressure is the
// engine's bug, logged as an error and counted; the client is then
// disconnected, since its stream would have a hole.
func (e *echo) OnData(c *server.Conn, in []byte) {
	err := c.Write(in)
	if err == nil || errors.Is(err, server.ErrClosed) {
		return
	}
	e.failed.Add(1)
	e.log.Error("write failed", "remote", c.RemoteAddr(), "len", len(in), "pending", c.Pending(), "err", err)
	c.Abort(err)
}

// OnClose has nothing to clean up.
func (e *echo) OnClose(c *server.Conn, why error) {}
