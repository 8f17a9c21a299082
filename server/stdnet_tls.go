//go:build !evio && (stdnet || !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix))

package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

// With Config.TLS the stdnet engine runs Go's own crypto/tls on each
// connection: tls.Server over the socket, once the PROXY header is read
// and MaxConnsPerIP has admitted the client (start). The Protocol or the
// Handler then sees the plaintext, as without TLS, and OnOpen comes after
// the handshake.
//
// A handshake is bounded in time and in number. HandshakeTimeout counts
// from the end of start (the accept, or the end of the PROXY header).
// MaxHandshakes caps the handshakes holding a slot of hsSlots, and a slot
// is taken only once the connection's first record, its ClientHello, is
// whole: readHello gathers it without one, so clients that send nothing,
// or half a ClientHello, wait out their deadline without crowding out a
// healthy client; a first byte that cannot begin a handshake record closes
// the connection at once. Every connection of this engine has its
// goroutine anyway; what a slot holds is crypto/tls's handshake (its key
// exchange and signature, and its wait for the client's second flight),
// which HandshakeContext runs with the first record handed back to it by
// the transport (stdTransport). A ClientHello spread over several
// records, which clients seldom send, takes its slot at its first.
//
// A graceful close sends the close_notify alert, then the FIN. Every other
// end closes the socket itself, never the tls.Conn: tls.Conn.Close would
// first try to write the alert, for up to 5 seconds, to a client that may
// not read.
//
// Stats.BytesIn and BytesOut count what crosses the socket: ciphertext,
// the handshake's included, as on the poll engine.

// stdRecordMax is the longest record a peer may send: 2^14 bytes of
// plaintext plus 2,048 of expansion (RFC 8446, 5.2; RFC 5246, 6.2.3).
const stdRecordMax = 1<<14 + 2048

// stdRecordPlain is the most plaintext a record carries (2^14 bytes): with
// DynamicRecordSizingDisabled, a Write of that much is one record.
const stdRecordPlain = 1 << 14

// stdHelloGrow bounds how far readHello's buffer grows ahead of what came:
// a client that announces a long record and sends its header costs at
// most this, not the record's length.
const stdHelloGrow = 4 << 10

// errHelloTimeout is a handshake that did not end in time.
var errHelloTimeout = errors.New("tls: handshake not done within HandshakeTimeout")

// stdTransport is crypto/tls's transport for a connection: the socket,
// with the first record that readHello read to read again, and writes
// that survive a deadline when the connection's policy says so.
type stdTransport struct {
	net.Conn
	st    *Stats
	hello []byte
	// onWriteTimeout is asked, when a Write to the socket met its
	// deadline, whether to go on (having set a new deadline); progress
	// says the socket took bytes first. crypto/tls keeps a failed Write's
	// error for good (a record may be cut), so the decision must be made
	// here, below it, where the plaintext engine makes it above the
	// socket. Nil: the Write fails. It is set before the handshake ends.
	onWriteTimeout func(progress bool) bool
}

func (t *stdTransport) Read(b []byte) (int, error) {
	if len(t.hello) > 0 {
		n := copy(b, t.hello)
		if t.hello = t.hello[n:]; len(t.hello) == 0 {
			t.hello = nil
		}
		return n, nil
	}
	n, err := t.Conn.Read(b)
	t.st.BytesIn.Add(int64(n))
	return n, err
}

func (t *stdTransport) Write(b []byte) (int, error) {
	done := 0
	for {
		n, err := t.Conn.Write(b[done:])
		t.st.BytesOut.Add(int64(n))
		done += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || t.onWriteTimeout == nil || !t.onWriteTimeout(n > 0) {
			return done, err
		}
	}
}

// helloNeed checks the start of a connection's input as the header of a
// handshake record (type 22, version 3.x, a length in range) and says how
// many bytes make the record whole.
func helloNeed(b []byte) (int, error) {
	switch {
	case len(b) == 0:
		return 5, nil
	case b[0] != 22:
		return 0, errors.New("tls: first record is not a handshake record")
	case len(b) >= 2 && b[1] != 3:
		return 0, errors.New("tls: first record has a version other than 3.x")
	case len(b) < 5:
		return 5, nil
	}
	n := int(b[3])<<8 | int(b[4])
	if n == 0 || n > stdRecordMax {
		return 0, errors.New("tls: first record's length is out of range")
	}
	return 5 + n, nil
}

// handshake runs the TLS handshake of a connection start admitted, in[:pre]
// being what followed the PROXY header. On success sc.c is the tls.Conn.
// It returns why the connection must close, or "".
func (e *stdnetEngine) handshake(sc *stdConn, in []byte, pre int) string {
	by := time.Now().Add(e.cfg.HandshakeTimeout)
	hello, why := e.readHello(sc, in[:pre], by)
	if why != "" {
		return why
	}
	// The context's deadline is the handshake's; e.hsCtx ends it sooner
	// on a forced stop, or stdDrainMax into a shutdown. HandshakeContext
	// closes the socket when it ends, which interrupts crypto/tls's Read.
	ctx, cancel := context.WithDeadline(e.hsCtx, by)
	defer cancel()
	select {
	case e.hsSlots <- struct{}{}:
	case <-ctx.Done():
		return e.tlsFailed(ctx.Err())
	}
	sc.mu.Lock()
	// The context bounds the handshake from now on, and a shutdown leaves
	// its reads alone: a deadline would break the handshake for good.
	sc.handshaking = true
	sc.raw.SetReadDeadline(time.Time{})
	sc.mu.Unlock()
	t := &stdTransport{Conn: sc.raw, st: e.st, hello: hello}
	tc := tls.Server(t, e.cfg.TLS)
	err := tc.HandshakeContext(ctx)
	<-e.hsSlots
	sc.mu.Lock()
	sc.handshaking = false
	if err == nil {
		sc.c, sc.tls = tc, t
	}
	sc.mu.Unlock()
	if err != nil {
		return e.tlsFailed(err)
	}
	return ""
}

// readHello reads until the connection's first record is whole, by the
// handshake's deadline, and returns what it read: the record, and what
// came with it. During a shutdown it waits stdDrainWait at most, as for
// any input on its way. It returns why the connection must close if it
// cannot.
func (e *stdnetEngine) readHello(sc *stdConn, pre []byte, by time.Time) ([]byte, string) {
	b := slices.Clone(pre)
	var drainBy time.Time
	for {
		need, err := helloNeed(b)
		if err != nil {
			return nil, e.tlsFailed(err)
		}
		if len(b) >= need {
			return b, ""
		}
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(need-len(b), 512), stdHelloGrow))
		}
		sc.mu.Lock()
		dl := by
		if e.draining.Load() {
			if drainBy.IsZero() {
				drainBy = time.Now().Add(stdDrainWait)
			}
			if drainBy.Before(dl) {
				dl = drainBy
			}
		}
		sc.raw.SetReadDeadline(dl)
		sc.mu.Unlock()
		n, err := sc.raw.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		e.st.BytesIn.Add(int64(n))
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			switch {
			case time.Now().Before(dl):
				// Shutdown woke the read: its drain bounds the wait now.
			case dl.Before(by):
				return nil, "shutdown"
			default:
				return nil, e.tlsFailed(errHelloTimeout)
			}
		case err == io.EOF && len(b) == 0:
			// Connected and gone without a word, as a TCP health check
			// does: no handshake failed.
			return nil, "eof"
		case err == io.EOF:
			return nil, e.tlsFailed(io.ErrUnexpectedEOF)
		case len(b) == 0:
			return nil, e.failed(err)
		default:
			return nil, e.tlsFailed(err)
		}
	}
}

// tlsFailed accounts for a handshake that failed or ran out of time, and
// says why the connection closes. A handshake that a stop cut short is no
// failure.
func (e *stdnetEngine) tlsFailed(err error) string {
	if e.killed.Load() || errors.Is(err, context.Canceled) {
		return "shutdown"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = errHelloTimeout
	}
	e.st.TLSErrors.Add(1)
	e.tlsErr.Log("err", err)
	return "tls: " + err.Error()
}

// isTLSError reports whether err, on an established connection, is
// crypto/tls's own: a record it could not parse or decrypt, or an alert it
// sent or received (a *net.OpError whose Op is "local error" or "remote
// error").
func isTLSError(err error) bool {
	var rh tls.RecordHeaderError
	var op *net.OpError
	return errors.As(err, &rh) || errors.As(err, &op) && (op.Op == "local error" || op.Op == "remote error")
}

// closeWrite ends the connection's output gracefully: the close_notify
// alert with TLS, then the FIN. tls.Conn.CloseWrite sends only the alert.
func (sc *stdConn) closeWrite() error {
	if tc, ok := sc.c.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
	}
	cw, ok := sc.raw.(interface{ CloseWrite() error })
	if !ok {
		return errors.ErrUnsupported
	}
	return cw.CloseWrite()
}
