package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"time"
)

// Framing selects how a client's byte stream is cut into messages.
type Framing uint8

const (
	// FramingLine cuts messages at LF, drops one CR before it, and cuts
	// lines longer than MaxMessage. It is the default.
	FramingLine Framing = iota
	// FramingRaw takes every read of up to 256 bytes as one message, like
	// the original server. Its answers depend on TCP segmentation.
	FramingRaw
)

// String returns "line" or "raw".
func (f Framing) String() string {
	switch f {
	case FramingLine:
		return "line"
	case FramingRaw:
		return "raw"
	}
	return fmt.Sprintf("Framing(%d)", uint8(f))
}

// ParseFraming is the inverse of Framing.String.
func ParseFraming(s string) (Framing, error) {
	switch s {
	case "line", "":
		return FramingLine, nil
	case "raw":
		return FramingRaw, nil
	}
	return 0, fmt.Errorf("server: unknown framing %q (want line or raw)", s)
}

// Defaults, used where a Config field is zero.
const (
	DefaultAddr             = ":3137"
	DefaultMaxMessage       = 256
	DefaultMaxPendingOutput = 64 << 10
	// MinMaxMessage is the smallest MaxMessage accepted: a piece cut from a
	// long line must never be mistaken for "close".
	MinMaxMessage = 16
	// MaxLoops is the most event loops a server runs. Each costs a
	// goroutine, a poller, a listener and 128 KiB of buffers, so a value
	// beyond any machine's CPU count only wastes them.
	MaxLoops = 1024
	// MaxIdleTimeout is the longest IdleTimeout: the poll engine keeps time
	// per connection in 32-bit milliseconds, whose differences stay exact up
	// to 2^31 ms (24.8 days).
	MaxIdleTimeout = 24 * 24 * time.Hour
	// DefaultHandshakeTimeout bounds a TLS handshake (Config.HandshakeTimeout).
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxHandshakes caps the TLS handshakes in flight (Config.MaxHandshakes).
	DefaultMaxHandshakes = 1024
	// maxPendingCap is where MaxPendingOutput is clamped: a client's
	// queued answers are counted in int, and past 1 GiB each the bound
	// means no bound on any machine anyway.
	maxPendingCap = 1 << 30
)

// Config configures a Server. The zero value serves the acknowledgement
// protocol on DefaultAddr with every default.
//
// Every numeric field states its range. New rejects a value outside it
// with an error naming the field, the value and the range; a value too
// large for an internal representation is clamped where the doc says so,
// never wrapped.
type Config struct {
	// Addr is the TCP address to listen on, host:port. An empty host
	// listens on every interface, IPv4 and IPv6. Port 0 picks a free port;
	// Server.Addr tells which. It must be empty when Listeners is set.
	Addr string
	// Listeners are listening TCP sockets to serve on instead of binding
	// Addr: sockets inherited from systemd (socket activation) or from the
	// process this one replaces (see Server.ListenerFiles). New duplicates
	// them, so the caller may close its files once New returns; the
	// sockets stay open as long as any process holds one.
	//
	// The poll engine gives each loop its own sockets when there are at
	// least as many as loops, as a server that binds Addr has with
	// SO_REUSEPORT; with fewer, one loop accepts and hands connections to
	// the others. It never binds sockets of its own next to them: a socket
	// only this process holds would reset its queued connections when the
	// process exits. The evio engine does not support Listeners.
	Listeners []*os.File
	// MaxMessage is the longest unfinished message held, in bytes: 0 for
	// the default (256), else at least MinMaxMessage (16). Values above
	// 2^31-1 are taken as 2^31-1. Memory follows what a client sent, never
	// this bound: a client that sent 1 byte holds no more than that.
	MaxMessage int
	// Framing is the message framing (default FramingLine).
	Framing Framing
	// Loops is the number of event loops: 0 for GOMAXPROCS, else 1 to
	// MaxLoops (1024).
	Loops int
	// MaxConns caps concurrent connections; past it new connections are
	// closed at once. Zero means no limit but the descriptor limit; it
	// must not be negative.
	MaxConns int
	// MaxPendingOutput caps the answers waiting for a client that does not
	// read, in bytes: 0 for the default (64 KiB), else at least one answer
	// (24 bytes); values above 1 GiB are taken as 1 GiB. Over it the server
	// stops reading that client until it catches up.
	MaxPendingOutput int
	// IdleTimeout closes a connection that sent nothing for that long.
	// Zero means never; else it is up to MaxIdleTimeout (576h, 24 days).
	// Its resolution is a millisecond, and it rounds up: 200µs means 1ms,
	// and a connection is never closed sooner than asked.
	IdleTimeout time.Duration
	// ProxyProtocol, for a server behind a load balancer such as HAProxy
	// (send-proxy or send-proxy-v2), makes every connection begin with a
	// PROXY protocol header, version 1 or 2 (see ProxyHeader). The client
	// address it announces is the connection's from then on: in logs, for
	// MaxConnsPerIP, and for a Protocol that asks (RemoteAddrSetter). A
	// connection without a valid header, or whose header is not complete
	// within ProxyHeaderTimeout, is closed at once and counted in
	// Stats.ProxyErrors. A v2 LOCAL header (the balancer's own health
	// check) is served as a connection of the balancer. The poll and
	// stdnet engines support it; New fails on evio.
	ProxyProtocol bool
	// MaxConnsPerIP caps the connections open at once from one client
	// address (with ProxyProtocol, the header's); past it a new one is
	// closed at once, before it is served, and counted in
	// Stats.RejectedPerIP. Zero means no cap; it must not be negative. The
	// poll and stdnet engines support it; New fails on evio.
	MaxConnsPerIP int
	// DirectSend makes the poll engine on Linux write each connection's
	// answers with its own send(2), instead of submitting all the answers of
	// a loop's turn in one io_uring_enter(2). The server falls back to it by
	// itself where io_uring is missing or not allowed. Other engines and
	// systems always send directly.
	DirectSend bool
	// Logger receives the server's records: how it sends, and connections
	// rejected past MaxConns (at most ten a second), at Info; failures of
	// the server itself at Warn and Error; each connection opened and
	// closed, connection errors (at most ten a second) and each message at
	// Debug.
	// Nil discards logs.
	//
	// New puts Logger's handler behind a LogQueue unless it already is
	// one: no log call made by an event loop waits for the handler's
	// writer; when 1024 records wait, further ones are dropped, and the
	// first record queued after them carries their count as dropped=N.
	// Serve and Shutdown return once the queued records are written, or
	// after a second if the writer is stuck.
	Logger *slog.Logger
	// Handler, when set, serves every connection instead of a Protocol:
	// see Handler. MaxPendingOutput bounds each connection's pending
	// output, and IdleTimeout, MaxConns, MaxConnsPerIP and ProxyProtocol
	// apply as to a Protocol; MaxMessage and Framing do not. It excludes
	// NewProtocol. The evio engine refuses it (errors.ErrUnsupported).
	Handler Handler
	// NewProtocol makes the protocol value for each new connection. Nil
	// serves the acknowledgement protocol with MaxMessage and Framing.
	NewProtocol func() Protocol

	// TLS, when set, serves every connection inside TLS, on Go's own
	// crypto/tls: the protocol or Handler sees the plaintext, and
	// MaxPendingOutput counts the ciphertext waiting for the client. It
	// needs a certificate (Certificates or GetCertificate, as
	// tls.Server does). The server works on a clone, with
	// DynamicRecordSizingDisabled set: answers go out one record per write,
	// however young the connection. With ProxyProtocol the PROXY header
	// comes first, in the clear, as HAProxy sends it. The poll and stdnet
	// engines support it; New fails on evio.
	TLS *tls.Config
	// HandshakeTimeout bounds a TLS handshake, from the connection's
	// accept (or the end of its PROXY header) to the client's Finished: 0
	// for the default (DefaultHandshakeTimeout, 5s), else 1ms to 1h. A
	// client that sends nothing, stalls midway or sends garbage is closed
	// and counted in Stats.TLSErrors. A graceful shutdown gives a handshake
	// in progress 100 ms more, as it gives a message on its way.
	HandshakeTimeout time.Duration
	// MaxHandshakes caps the TLS handshakes computing or waiting for the
	// client's second flight at once: 0 for the default
	// (DefaultMaxHandshakes, 1024), else 1 to 1<<20. Each holds a
	// goroutine. A connection whose ClientHello is complete waits, with
	// it, for a handshake to end past the cap; one that has not sent its
	// ClientHello yet holds no goroutine and does not count, so silent and
	// slow clients cannot crowd out a healthy one.
	MaxHandshakes int

	// builtin is set by withDefaults when NewProtocol makes plain Framers,
	// so an engine may embed the Framer in its connection state instead.
	builtin bool
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if len(c.Listeners) > 0 {
		if c.Addr != "" {
			return c, fmt.Errorf("server: Addr %q and Listeners are exclusive", c.Addr)
		}
		for i, f := range c.Listeners {
			if f == nil {
				return c, fmt.Errorf("server: Listeners[%d] is nil", i)
			}
		}
	} else if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxMessage < MinMaxMessage {
		return c, rangeError("MaxMessage", c.MaxMessage, "0 (256) or 16 and up")
	}
	c.MaxMessage = min(c.MaxMessage, math.MaxInt32)
	if c.Framing != FramingLine && c.Framing != FramingRaw {
		return c, fmt.Errorf("server: Framing %d is outside its range: FramingLine (0) or FramingRaw (1)", uint8(c.Framing))
	}
	if c.Loops == 0 {
		c.Loops = min(runtime.GOMAXPROCS(0), MaxLoops)
	}
	if c.Loops < 1 || c.Loops > MaxLoops {
		return c, rangeError("Loops", c.Loops, fmt.Sprintf("0 (GOMAXPROCS) or 1 to %d", MaxLoops))
	}
	if c.MaxConns < 0 {
		return c, rangeError("MaxConns", c.MaxConns, "0 (no limit) and up")
	}
	if c.MaxConnsPerIP < 0 {
		return c, rangeError("MaxConnsPerIP", c.MaxConnsPerIP, "0 (no cap) and up")
	}
	if c.MaxPendingOutput == 0 {
		c.MaxPendingOutput = DefaultMaxPendingOutput
	}
	if c.MaxPendingOutput < len(Answer) {
		return c, rangeError("MaxPendingOutput", c.MaxPendingOutput, fmt.Sprintf("0 (64 KiB) or %d (one answer) and up", len(Answer)))
	}
	c.MaxPendingOutput = min(c.MaxPendingOutput, maxPendingCap)
	if c.IdleTimeout < 0 || c.IdleTimeout > MaxIdleTimeout {
		return c, fmt.Errorf("server: IdleTimeout %v is outside its range: 0 (never) or up to %v", c.IdleTimeout, MaxIdleTimeout)
	}
	if c.IdleTimeout > 0 && c.IdleTimeout < time.Millisecond {
		c.IdleTimeout = time.Millisecond
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.HandshakeTimeout < time.Millisecond || c.HandshakeTimeout > time.Hour {
		return c, fmt.Errorf("server: HandshakeTimeout %v is outside its range: 0 (5s) or 1ms to 1h", c.HandshakeTimeout)
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxHandshakes < 1 || c.MaxHandshakes > 1<<20 {
		return c, rangeError("MaxHandshakes", c.MaxHandshakes, "0 (1024) or 1 to 1048576")
	}
	if c.TLS != nil {
		if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil {
			return c, errors.New("server: TLS has no certificate (Certificates, GetCertificate or GetConfigForClient)")
		}
		c.TLS = c.TLS.Clone()
		c.TLS.DynamicRecordSizingDisabled = true
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	} else if _, ok := c.Logger.Handler().(*LogQueue); !ok {
		c.Logger = slog.New(NewLogQueue(c.Logger.Handler()))
	}
	if c.Handler != nil {
		if c.NewProtocol != nil {
			return c, errors.New("server: Handler and NewProtocol are exclusive")
		}
		return c, nil
	}
	if c.NewProtocol == nil {
		max, framing, log := c.MaxMessage, c.Framing, c.Logger
		c.NewProtocol = func() Protocol { return NewFramer(max, framing) }
		c.builtin = true
		if log.Enabled(context.Background(), slog.LevelDebug) {
			// Only debug logging pays for a copy of each pending message.
			c.builtin = false
			c.NewProtocol = func() Protocol {
				return NewTracingFramer(max, framing, func(msg []byte, cut bool) {
					// slog quotes a string with control characters or
					// invalid UTF-8, so client bytes never reach a terminal raw.
					log.Debug("message", "bytes", string(msg), "len", len(msg), "cut", cut)
				})
			}
		}
	}
	return c, nil
}

// rangeError reports a Config field whose value is outside its range.
func rangeError(field string, v int, valid string) error {
	return fmt.Errorf("server: %s %d is outside its range: %s", field, v, valid)
}
