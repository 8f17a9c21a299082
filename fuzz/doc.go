// Package fuzz holds the fuzz targets of the server package: FuzzFraming
// checks the Framer against a naive reference model of PROTOCOL.md, and
// FuzzServer checks a real server over real TCP connections against the
// same model. The package has no API; run it with go test -fuzz.
package fuzz
