//go:build !evio

package tlsflood

const evio = false
