package check

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
)

// rawConn is the TCP connection under a case's TLS session. It notes the
// server's FIN, which is how an EOF from crypto/tls that follows a
// close_notify (the FIN not read yet) is told from one that does not (the
// FIN read in place of the next record).
type rawConn struct {
	*net.TCPConn
	eof bool
}

func (c *rawConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// startTLS runs the client's handshake over s.tcp and makes the session
// the connection the steps use.
func (s *session) startTLS(ctx context.Context, cfg Config) error {
	s.raw = &rawConn{TCPConn: s.tcp}
	s.tls = tls.Client(s.raw, cfg.TLS)
	if err := s.tls.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	s.conn = s.tls
	return nil
}

// finAfterCloseNotify checks that the server's FIN follows its
// close_notify, with no byte between: nothing a server sends after
// close_notify is part of the session.
func (s *session) finAfterCloseNotify(resetOK bool) error {
	var buf [4 << 10]byte
	extra := 0
	for {
		n, err := s.raw.Read(buf[:])
		extra += n
		switch {
		case err == nil:
			continue
		case extra > 0:
			return fmt.Errorf("got %s then close_notify then %d bytes outside TLS, want %s then close_notify and EOF",
				show(s.got), extra, show(s.want))
		case err == io.EOF:
			return nil
		case resetOK && isReset(err):
			s.note = "ended by close_notify and a reset, allowed: the client's bytes after close were unread"
			return nil
		}
		return fmt.Errorf("got %s then close_notify then %s, want %s then close_notify and EOF",
			show(s.got), ending(err), show(s.want))
	}
}
