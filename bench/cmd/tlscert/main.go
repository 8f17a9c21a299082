// Command tlscert writes a throwaway TLS certificate for the bench's TLS
// servers into -dir: a self-signed ECDSA P-256 certificate for 127.0.0.1,
// ::1 and localhost (internal/testcert's), valid for a day, as cert.pem
// (which clients trust as their CA), key.pem, and both.pem, the
// certificate followed by its key, the form HAProxy's `crt` takes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/tcpoll/poll/internal/testcert"
)

func main() {
	dir := flag.String("dir", ".", "`directory` to write cert.pem, key.pem and both.pem into")
	flag.Parse()
	if err := write(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "tlscert:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	p, err := testcert.Get()
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"cert.pem": p.CertPEM,
		"key.pem":  p.KeyPEM,
		"both.pem": slices.Concat(p.CertPEM, p.KeyPEM),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
