// Package fuzz holds the fuzz targets of the server package: FuzzFraming
// checks the Framer against a naive reference model of PROTOCOL.md,
// FuzzServer checks a real server over real TCP connections against the
// same model, and FuzzProxyHeader checks the PROXY protocol parser against
// a model written from HAProxy's specification, fed whole and cut
// anywhere, and FuzzHTTPRequest checks examples/http's request parser
// against a model written from RFC 9112, fed whole and cut anywhere. The
// package has no API; run it with go test -fuzz.
package fuzz
