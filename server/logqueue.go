package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Bounds of a LogQueue.
const (
	// logQueueLen is how many records wait for the writer before new ones
	// are dropped: at 320 bytes a slot on 64-bit systems, 320 KiB.
	logQueueLen = 1024
	// logLinger is how long the writer goroutine waits for a record before
	// it exits; the next record starts another.
	logLinger = time.Second
	// logFlushTimeout bounds the flush that ends Serve and Shutdown, so a
	// stuck writer (stderr on a pipe nobody reads) cannot hold them.
	logFlushTimeout = time.Second
)

// LogQueue is a slog.Handler whose Handle never blocks: it queues the
// record and returns, and one goroutine writes the queue to the wrapped
// handler in order. When the queue is full (1024 records) a record is
// dropped and counted, and the next record queued carries the count as the
// attribute dropped=N: the records dropped came right before it.
//
// New puts Config.Logger's handler behind a LogQueue unless it already is
// one, so no log call of an event loop waits for the log's writer: a
// terminal that scrolls slowly or a pipe nobody reads costs records, never
// answers. Serve and Shutdown return after the records queued before them
// are written, or after a second if the writer is stuck.
//
// Enabled is the wrapped handler's, so a disabled level costs what it costs
// there. Handle copies the record into the queue under a mutex held for
// that copy alone; it allocates only to start the writer goroutine, which
// exits after a second with nothing to write, or to add a drop count to a
// record that already has five attributes. Attribute values are resolved
// when the record is written, so a LogValuer must not change after it is
// logged.
type LogQueue struct {
	h slog.Handler
	q *logQueue // shared by the handlers WithAttrs and WithGroup derive
}

// NewLogQueue returns h behind a queue of its own.
func NewLogQueue(h slog.Handler) *LogQueue {
	return &LogQueue{h: h, q: newLogQueue(logQueueLen)}
}

// queued is one record waiting, with the handler and context to write it
// with.
type queued struct {
	ctx context.Context
	h   slog.Handler
	r   slog.Record
}

// logQueue is a ring of records under a mutex held only to copy one in or
// out. running says whether a writer goroutine exists; waiting, that it
// waits on wake for a record.
type logQueue struct {
	wake chan struct{} // capacity 1

	mu       sync.Mutex
	ring     []queued
	head, n  int
	queuedN  uint64 // records ever queued
	written  uint64 // records ever written
	dropped  int64  // records dropped since the last count was queued
	running  bool
	waiting  bool
	progress chan struct{} // closed at the next write, if a flush waits
}

func newLogQueue(size int) *logQueue {
	return &logQueue{wake: make(chan struct{}, 1), ring: make([]queued, size)}
}

// Enabled reports whether the wrapped handler handles records at level.
func (l *LogQueue) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

// Handle queues r for the writer, or drops and counts it if the queue is
// full. It never waits for the writer and always returns nil.
func (l *LogQueue) Handle(ctx context.Context, r slog.Record) error {
	q := l.q
	q.mu.Lock()
	if q.n == len(q.ring) {
		q.dropped++
		q.mu.Unlock()
		return nil
	}
	if q.dropped > 0 {
		// Clone so that adding the count never writes to an array the
		// caller's record shares.
		r = r.Clone()
		r.AddAttrs(slog.Int64("dropped", q.dropped))
		q.dropped = 0
	}
	q.ring[(q.head+q.n)%len(q.ring)] = queued{ctx: ctx, h: l.h, r: r}
	q.n++
	q.queuedN++
	start := !q.running
	q.running = true
	wake := q.waiting
	q.waiting = false
	q.mu.Unlock()
	if start {
		go q.write()
	} else if wake {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// WithAttrs returns a handler with the attributes added to the wrapped
// one, writing through the same queue.
func (l *LogQueue) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogQueue{h: l.h.WithAttrs(attrs), q: l.q}
}

// WithGroup returns a handler with the group opened in the wrapped one,
// writing through the same queue.
func (l *LogQueue) WithGroup(name string) slog.Handler {
	return &LogQueue{h: l.h.WithGroup(name), q: l.q}
}

// Flush waits until every record queued before it is written, or ctx is
// done, and then returns ctx's error. If records were dropped since the
// last count was queued, it then queues a record that counts them, "log
// records dropped" at Warn, and waits for that one too.
func (l *LogQueue) Flush(ctx context.Context) error {
	if err := l.q.wait(ctx); err != nil {
		return err
	}
	l.q.mu.Lock()
	dropped := l.q.dropped > 0
	l.q.mu.Unlock()
	if !dropped || !l.h.Enabled(ctx, slog.LevelWarn) {
		return nil
	}
	// Handle adds the count.
	l.Handle(ctx, slog.NewRecord(time.Now(), slog.LevelWarn, "log records dropped", 0))
	return l.q.wait(ctx)
}

// wait waits until the records queued so far are written, or ctx is done.
func (q *logQueue) wait(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for target := q.queuedN; q.written < target; {
		if q.progress == nil {
			q.progress = make(chan struct{})
		}
		progress := q.progress
		q.mu.Unlock()
		select {
		case <-progress:
		case <-ctx.Done():
			q.mu.Lock()
			return ctx.Err()
		}
		q.mu.Lock()
	}
	return nil
}

// write is the writer goroutine: it writes records until none comes for
// logLinger.
func (q *logQueue) write() {
	var idle *time.Timer
	wrote := false
	for {
		q.mu.Lock()
		if wrote {
			q.written++
			if q.progress != nil {
				close(q.progress)
				q.progress = nil
			}
		}
		for q.n == 0 {
			q.waiting = true
			q.mu.Unlock()
			if idle == nil {
				idle = time.NewTimer(logLinger)
			} else {
				idle.Reset(logLinger)
			}
			timeout := false
			select {
			case <-q.wake:
			case <-idle.C:
				timeout = true
			}
			q.mu.Lock()
			q.waiting = false
			if timeout && q.n == 0 {
				// Handle starts a new writer for the next record: it sees
				// running false under the same lock.
				q.running = false
				q.mu.Unlock()
				return
			}
		}
		it := q.ring[q.head]
		q.ring[q.head] = queued{} // drop the references for the collector
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.mu.Unlock()

		// The wrapped handler's error has nowhere to go: slog.Logger
		// ignores Handle's error too.
		it.h.Handle(it.ctx, it.r)
		wrote = true
	}
}

// flushLog waits, at most logFlushTimeout, for the records cfg.Logger has
// queued.
func flushLog(log *slog.Logger) {
	lq, ok := log.Handler().(*LogQueue)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), logFlushTimeout)
	defer cancel()
	lq.Flush(ctx)
}
