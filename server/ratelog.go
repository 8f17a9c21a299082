package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLog logs at most burst records of one kind per second, so a flood of
// rejected connections or failing accepts cannot flood the log; the next
// record that gets through says how many were dropped.
type rateLog struct {
	log   *slog.Logger
	level slog.Level
	msg   string
	burst int

	mu      sync.Mutex
	window  time.Time
	n       int
	dropped int
}

func newRateLog(log *slog.Logger, level slog.Level, msg string) *rateLog {
	return &rateLog{log: log, level: level, msg: msg, burst: 10}
}

// Log records one event with the given attributes, unless this second's
// budget is spent.
func (r *rateLog) Log(args ...any) {
	if !r.log.Enabled(context.Background(), r.level) {
		return
	}
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.window) >= time.Second {
		r.window, r.n = now, 0
	}
	if r.n >= r.burst {
		r.dropped++
		r.mu.Unlock()
		return
	}
	r.n++
	dropped := r.dropped
	r.dropped = 0
	r.mu.Unlock()
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	r.log.Log(context.Background(), r.level, r.msg, args...)
}
