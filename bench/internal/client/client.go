// Package client holds what the bench's measuring clients share: the
// answer the protocol owes every message and its check, the descriptor
// limit that many connections need, and opening them in parallel.
package client

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tcpoll/poll/internal/load"
)

// Answer is the answer the server owes every message.
const Answer = load.Answer

// ReadAnswer reads one answer from r into buf, which is len(Answer) bytes
// long, and checks that it is Answer.
func ReadAnswer(r io.Reader, buf []byte) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, []byte(Answer)) {
		return fmt.Errorf("answer %q, want %q", buf, Answer)
	}
	return nil
}

// RaiseFileLimit raises this process's soft limit on open descriptors to
// its hard limit, and fails if that leaves fewer than conns+spare. The
// error names conns. If the limit cannot be read, it does nothing.
func RaiseFileLimit(conns, spare int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil
	}
	lim.Cur = lim.Max
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	if int(lim.Cur) < conns+spare {
		return fmt.Errorf("descriptor limit %d is too low for %d connections", lim.Cur, conns)
	}
	return nil
}

// OpenAll opens n connections, workers of them at a time, calling open(i)
// for the i-th. Where open failed, conns[i] is nil: failed counts those,
// and first is the error of the first to fail.
func OpenAll(n, workers int, open func(i int) (net.Conn, error)) (conns []net.Conn, failed int, first error) {
	conns = make([]net.Conn, n)
	var next, fails atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := open(i)
				if err != nil {
					fails.Add(1)
					once.Do(func() { first = err })
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	return conns, int(fails.Load()), first
}

// CloseAll closes the connections of conns that are not nil.
func CloseAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// TLSConfig returns the configuration of a client of the TLS server at
// addr that trusts the CA certificates in the PEM file caFile and checks
// the server's certificate for addr's host (an IP address or a name). Its
// ClientSessionCache is nil, so every handshake is a full one.
func TLSConfig(caFile, addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	return &tls.Config{ServerName: host, RootCAs: pool}, nil
}
