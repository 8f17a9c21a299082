//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// A connection's first stage behind a load balancer (Config.ProxyProtocol)
// is its PROXY header: it waits in the loop's headers list, with a
// ProxyHeader of the loop's, until the header is complete. Then admit
// makes it an active connection like any other, and the bytes that came
// after the header in the same read are its first input.

// readHeader reads the start of a connection that owes its PROXY header.
func (l *loop) readHeader(c *conn, fd int) {
	n, err := recv(fd, l.buf[:l.readSize(c)])
	switch {
	case err == unix.EAGAIN:
		return
	case err != nil:
		l.fail(c, fd, err)
		return
	case n == 0:
		l.proxyFail(c, fd, ErrProxyTruncated)
		return
	}
	h := c.x.hdr
	used, done, err := h.Feed(l.buf[:n])
	l.bytesIn += int64(used)
	if err != nil {
		l.proxyFail(c, fd, err)
		return
	}
	if !done {
		return
	}
	src, ok := h.Source()
	l.endHeader(c, fd)
	c.state &^= stProxy
	c.since = l.e.ticks()
	l.active.pushBack(l.e, fd)
	if !l.admit(c, fd, src, ok) {
		return
	}
	if used < n && !l.consume(c, fd, l.buf[used:n]) {
		return
	}
	if l.drain != nil {
		// The header completed during a shutdown: answer what is left in
		// the socket too.
		l.startDrain(c, fd)
	}
}

// admit lets an active connection be served: it counts it against
// MaxConnsPerIP, logs it and tells its Protocol its client's address. src
// is the PROXY header's source, if it named one; else the address is the
// peer's. It reports false if the connection was dropped.
func (l *loop) admit(c *conn, fd int, src netip.AddrPort, fromHeader bool) bool {
	var setter RemoteAddrSetter
	if c.x != nil {
		setter, _ = c.x.proto.(RemoteAddrSetter)
	}
	h := c.handle()
	// A header with no address (v2 LOCAL, v1 UNKNOWN) is the balancer's
	// own connection: it counts against no client's cap.
	limit := l.e.ips != nil && (fromHeader || !l.e.cfg.ProxyProtocol)
	if !fromHeader && (limit || setter != nil || l.logConns || h != nil) {
		src = peerAddr(fd)
	}
	if limit {
		if !l.e.ips.take(src.Addr()) {
			l.e.st.RejectedPerIP.Add(1)
			l.e.rejected.Log("reason", "MaxConnsPerIP", "remote", src.Addr(), "max_conns_per_ip", l.e.cfg.MaxConnsPerIP)
			l.drop(c, fd, "")
			return false
		}
		l.ext(c).ip = src.Addr()
	}
	l.e.st.Accepted.Add(1)
	if l.logConns {
		l.e.cfg.Logger.Debug("connection opened", "remote", src, "fd", fd)
	}
	if setter != nil {
		setter.SetRemoteAddr(src)
	}
	if h != nil {
		h.remote = src
	}
	if l.e.cfg.TLS != nil {
		// The Handler hears of the connection once the handshake is done
		// (established).
		l.startTLS(c, fd)
		return true
	}
	if h != nil {
		h.opened = true
		l.e.cfg.Handler.OnOpen(&h.Conn)
		return c.state&stOpen != 0
	}
	return true
}

// proxyFail drops a connection whose PROXY header is invalid, or did not
// come in time.
func (l *loop) proxyFail(c *conn, fd int, err error) {
	l.e.st.ProxyErrors.Add(1)
	l.e.proxyErr.Log("err", err)
	l.drop(c, fd, "")
}

// proxyTicks is ProxyHeaderTimeout in ticks.
const proxyTicks = uint32(ProxyHeaderTimeout / time.Millisecond)

// newHeader gives a connection a ProxyHeader, reusing those of
// connections whose header is done.
func (l *loop) newHeader(c *conn) {
	var h *ProxyHeader
	if n := len(l.freeHeaders); n > 0 {
		h = l.freeHeaders[n-1]
		l.freeHeaders = l.freeHeaders[:n-1]
		h.Reset()
	} else {
		h = new(ProxyHeader)
	}
	l.ext(c).hdr = h
}

// endHeader takes a connection out of the headers list and keeps its
// parser for the next one.
func (l *loop) endHeader(c *conn, fd int) {
	l.headers.remove(l.e, fd)
	l.freeHeaders = append(l.freeHeaders, c.x.hdr)
	c.x.hdr = nil
}
