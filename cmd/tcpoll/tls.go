package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
)

// serverTLS loads -tls-cert and -tls-key into a server configuration, or
// returns nil if neither is given. It runs at every start, so an upgrade
// (SIGHUP) reads the files again: that is how a renewed certificate is
// taken up without closing a connection.
func serverTLS(certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("-tls-cert and -tls-key go together: give both or neither")
	}
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert %s, -tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		// crypto/tls's default already, but a GODEBUG setting can lower
		// it; TLS 1.0 and 1.1 are broken.
		MinVersion: tls.VersionTLS12,
	}, nil
}

// clientTLS holds the TLS flags of the commands that connect: send, check
// and load.
type clientTLS struct {
	on, insecure bool
	ca           string
}

func addClientTLS(fs *flag.FlagSet) *clientTLS {
	var f clientTLS
	fs.BoolVar(&f.on, "tls", false, "connect inside TLS (1.2 or 1.3), verifying the server's certificate for the host of ADDR")
	fs.BoolVar(&f.insecure, "tls-insecure", false, "with -tls: accept any certificate from the server (for tests only)")
	fs.StringVar(&f.ca, "tls-ca", "", "with -tls: trust the CA certificates in this PEM `file` instead of the system's")
	return &f
}

// config returns the client configuration for the server at addr, or nil
// without -tls. The certificate is verified for addr's host, a name or an
// IP address.
func (f *clientTLS) config(addr string) (*tls.Config, error) {
	switch {
	case !f.on && (f.insecure || f.ca != ""):
		return nil, errors.New("-tls-insecure and -tls-ca need -tls")
	case !f.on:
		return nil, nil
	case f.insecure && f.ca != "":
		return nil, errors.New("-tls-insecure and -tls-ca are exclusive: the one skips the verification the other sets up")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-tls: server address %q: %w", addr, err)
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone is no part of the certificate
	if host == "" {
		host = "localhost" // where Go dials an address with no host
	}
	cfg := &tls.Config{ServerName: host, InsecureSkipVerify: f.insecure}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", f.ca)
		}
	}
	return cfg, nil
}
