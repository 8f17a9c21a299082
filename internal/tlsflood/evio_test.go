//go:build evio

package tlsflood

// evio: the server is built on the reference engine, which has no TLS.
const evio = true
