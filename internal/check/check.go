// Package check tests a running server from the outside against
// PROTOCOL.md, at the root of this repository: it connects, plays every
// example of the protocol's table and the boundary cases around
// MaxMessage, the CR rule, "close" and EOF, each on a connection of its
// own, and compares the answers byte for byte, and how the connection
// ends, with what the protocol says.
//
// It knows nothing of package server: the answers are written here again
// from the contract, so a server (or a peer built on another event loop)
// is checked against the text, not against itself.
package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The bytes of the contract.
const (
	answer  = "I recieved your message\n"
	closing = "closing"
)

// Config says where and how to check.
type Config struct {
	// Addr is the server's TCP address, host:port.
	Addr string
	// MaxMessage is the server's MaxMessage (default 256).
	MaxMessage int
	// Timeout bounds each case, from dial to the end (default 5s).
	Timeout time.Duration
	// Quiet is how long the server must stay silent where the protocol
	// says it owes nothing yet (default 100ms).
	Quiet time.Duration
	// TLS, when set, plays every case inside TLS with this client
	// configuration (which names the server, ServerName, or skips
	// verification), after a handshake bounded by Timeout. The protocol
	// inside is the same; the connection's ends become TLS's: a half-close
	// sends close_notify and then the FIN, and where the server must
	// close, it must send close_notify and then its FIN (an EOF without
	// close_notify could be a truncation, and fails the case).
	TLS *tls.Config
}

func (c Config) withDefaults() Config {
	if c.MaxMessage == 0 {
		c.MaxMessage = 256
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Quiet == 0 {
		c.Quiet = 100 * time.Millisecond
	}
	return c
}

// Result is the outcome of one case.
type Result struct {
	// Name describes the case: what the client sends.
	Name string
	// Err is nil if the server behaved as the protocol says; otherwise it
	// tells what was received against what was wanted.
	Err error
	// Note, if not empty, is a remark on a case that passed.
	Note string
}

// Run checks the server at cfg.Addr, writes one line per case to w ("ok"
// or "FAIL" with what was got and wanted, quoted) and a summary, and
// returns an error if any case failed.
func Run(ctx context.Context, w io.Writer, cfg Config) error {
	cfg = cfg.withDefaults()
	if cfg.MaxMessage < 16 {
		return fmt.Errorf("check: MaxMessage %d is below the protocol's minimum 16", cfg.MaxMessage)
	}
	cases := Cases(cfg.MaxMessage)
	failed := 0
	for _, c := range cases {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := c.Run(ctx, cfg)
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(w, "FAIL  %s: %v\n", r.Name, r.Err)
		case r.Note != "":
			fmt.Fprintf(w, "ok    %s (%s)\n", r.Name, r.Note)
		default:
			fmt.Fprintf(w, "ok    %s\n", r.Name)
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "%s: %d of %d cases FAILED\n", cfg.Addr, failed, len(cases))
		return fmt.Errorf("%d of %d cases failed", failed, len(cases))
	}
	fmt.Fprintf(w, "%s: all %d cases ok\n", cfg.Addr, len(cases))
	return nil
}

// A Case is a script played on one connection.
type Case struct {
	Name  string
	steps []step
}

// stepKind is what a step does.
type stepKind uint8

const (
	send       stepKind = iota // write data (byte by byte if bytewise)
	expect                     // read exactly data
	quiet                      // receive nothing, and no EOF, for Config.Quiet
	closeWrite                 // half-close: the server sees EOF
	eof                        // receive nothing more, then EOF
)

type step struct {
	kind     stepKind
	data     []byte
	bytewise bool // send: one write per byte
	resetOK  bool // eof: a reset after all the bytes is accepted too
}

// AnswersAtEOF reports whether c needs the server to answer a message left
// unfinished when the client half-closed, which some event loops cannot
// do (they close the socket before telling the program about the EOF).
func (c Case) AnswersAtEOF() bool {
	for i, st := range c.steps {
		if st.kind == closeWrite && i+1 < len(c.steps) && c.steps[i+1].kind == expect {
			return true
		}
	}
	return false
}

// Run plays c on a new connection to cfg.Addr.
func (c Case) Run(ctx context.Context, cfg Config) Result {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return Result{Name: c.Name, Err: err}
	}
	defer nc.Close()
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	// ctx may also end before the deadline, when it is canceled.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	s := &session{conn: nc, tcp: nc.(*net.TCPConn), deadline: deadline, quiet: cfg.Quiet}
	if cfg.TLS != nil {
		if err := s.startTLS(ctx, cfg); err != nil {
			return Result{Name: c.Name, Err: err}
		}
	}
	for _, st := range c.steps {
		if err := s.do(st); err != nil {
			return Result{Name: c.Name, Err: err}
		}
	}
	return Result{Name: c.Name, Note: s.note}
}

// session is the client side of one case.
type session struct {
	conn     net.Conn     // tcp, or the TLS session over it
	tcp      *net.TCPConn // the connection itself
	tls      *tls.Conn    // with Config.TLS
	raw      *rawConn     // with Config.TLS: tcp, noting the server's FIN
	deadline time.Time
	quiet    time.Duration
	rx       []byte // received, not yet matched
	got      []byte // everything received
	want     []byte // everything expected so far
	note     string
}

func (s *session) do(st step) error {
	switch st.kind {
	case send:
		return s.send(st)
	case expect:
		return s.expect(st.data)
	case quiet:
		return s.silence()
	case closeWrite:
		if s.tls != nil {
			// close_notify is TLS's EOF; the FIN follows it, as it does
			// from a client that closes.
			if err := s.tls.CloseWrite(); err != nil {
				return fmt.Errorf("close_notify: %v (after receiving %s)", err, show(s.got))
			}
		}
		if err := s.tcp.CloseWrite(); err != nil {
			return fmt.Errorf("half-close: %v (after receiving %s)", err, show(s.got))
		}
		return nil
	case eof:
		return s.eof(st.resetOK)
	}
	panic("check: unknown step")
}

func (s *session) send(st step) error {
	if !st.bytewise {
		if _, err := s.conn.Write(st.data); err != nil {
			return fmt.Errorf("write: %v (after receiving %s, wanting %s)", err, show(s.got), show(s.want))
		}
		return nil
	}
	for i := range st.data {
		if _, err := s.conn.Write(st.data[i : i+1]); err != nil {
			return fmt.Errorf("write of byte %d: %v (after receiving %s)", i, err, show(s.got))
		}
		if len(st.data) <= 16 {
			// Long enough for the server to read each byte on its own;
			// longer runs rely on TCP_NODELAY alone, to stay quick.
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// read reads once into s.rx and s.got.
func (s *session) read() error {
	var buf [32 << 10]byte
	n, err := s.conn.Read(buf[:])
	s.rx = append(s.rx, buf[:n]...)
	s.got = append(s.got, buf[:n]...)
	return err
}

// expect receives exactly want, failing as soon as the bytes differ.
func (s *session) expect(want []byte) error {
	s.want = append(s.want, want...)
	for {
		k := min(len(s.rx), len(want))
		if !bytes.Equal(s.rx[:k], want[:k]) {
			return s.mismatch("")
		}
		if len(s.rx) >= len(want) {
			s.rx = s.rx[len(want):]
			return nil
		}
		if err := s.read(); err != nil {
			k := min(len(s.rx), len(want))
			if len(s.rx) >= len(want) && bytes.Equal(s.rx[:k], want) {
				// The last bytes came with the error (an EOF in the same
				// read); the next step will see the EOF again.
				s.rx = s.rx[len(want):]
				return nil
			}
			return s.mismatch(s.ending(err))
		}
	}
}

// silence checks that nothing arrives, and the connection stays open, for
// s.quiet.
func (s *session) silence() error {
	if len(s.rx) > 0 {
		return fmt.Errorf("got %s, want %s then silence for %v", show(s.got), show(s.want), s.quiet)
	}
	t := time.Now().Add(s.quiet)
	if t.After(s.deadline) {
		t = s.deadline
	}
	s.conn.SetReadDeadline(t)
	defer s.conn.SetReadDeadline(s.deadline)
	err := s.read()
	if len(s.rx) > 0 {
		return fmt.Errorf("got %s, want %s then silence for %v", show(s.got), show(s.want), s.quiet)
	}
	if isTimeout(err) && time.Now().Before(s.deadline) {
		return nil
	}
	return fmt.Errorf("got %s then %s, want %s then silence for %v with the connection open",
		show(s.got), s.ending(err), show(s.want), s.quiet)
}

// eof checks that nothing more arrives and the server closes the
// connection with a FIN.
func (s *session) eof(resetOK bool) error {
	for {
		if len(s.rx) > 0 {
			// Extra bytes: read on to the end to show them all.
			s.rx = s.rx[:0]
			err := s.read()
			for err == nil {
				err = s.read()
			}
			return fmt.Errorf("got %s then %s, want %s then %s", show(s.got), s.ending(err), show(s.want), s.wantEOF())
		}
		err := s.read()
		if len(s.rx) > 0 {
			continue
		}
		switch {
		case err == nil:
			continue
		case err == io.EOF && s.tls != nil && !s.raw.eof:
			return s.finAfterCloseNotify(resetOK)
		case err == io.EOF && s.tls == nil:
			return nil
		case resetOK && isReset(err):
			s.note = "ended by a reset, allowed: the client's bytes after close were unread"
			return nil
		}
		return fmt.Errorf("got %s then %s, want %s then %s", show(s.got), s.ending(err), show(s.want), s.wantEOF())
	}
}

// wantEOF names the end eof wants.
func (s *session) wantEOF() string {
	if s.tls != nil {
		return "close_notify and EOF"
	}
	return "EOF"
}

// mismatch reports everything received, and how the last read ended if
// it did, against everything wanted.
func (s *session) mismatch(end string) error {
	if end == "" {
		return fmt.Errorf("got %s, want %s", show(s.got), show(s.want))
	}
	return fmt.Errorf("got %s then %s, want %s", show(s.got), end, show(s.want))
}

// ending names how a read ended. Inside TLS, an EOF is either the
// server's close_notify or, when its FIN came without one, a possible
// truncation.
func (s *session) ending(err error) string {
	if s.tls != nil && err == io.EOF {
		if s.raw.eof {
			return "EOF without close_notify"
		}
		return "close_notify"
	}
	return ending(err)
}

// ending names how a read ended.
func ending(err error) string {
	switch {
	case err == nil:
		return "more"
	case err == io.EOF:
		return "EOF"
	case isReset(err):
		return "reset"
	case isTimeout(err):
		return "timeout"
	}
	return fmt.Sprintf("error (%v)", err)
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// show quotes b, writing runs of answers as answer×N and eliding the
// middle of long stretches of other bytes.
func show(b []byte) string {
	if len(b) == 0 {
		return `""`
	}
	var parts []string
	var lit []byte
	flush := func() {
		if len(lit) == 0 {
			return
		}
		if len(lit) > 80 {
			parts = append(parts, fmt.Sprintf("%s…(%d bytes)…%s",
				strconv.Quote(string(lit[:32])), len(lit), strconv.Quote(string(lit[len(lit)-32:]))))
		} else {
			parts = append(parts, strconv.Quote(string(lit)))
		}
		lit = lit[:0]
	}
	for len(b) > 0 {
		n := 0
		for bytes.HasPrefix(b[n*len(answer):], []byte(answer)) {
			n++
		}
		if n > 1 {
			flush()
			parts = append(parts, fmt.Sprintf("%s×%d", strconv.Quote(answer), n))
			b = b[n*len(answer):]
			continue
		}
		lit = append(lit, b[0])
		b = b[1:]
	}
	flush()
	return strings.Join(parts, " + ")
}
