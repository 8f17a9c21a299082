package main

// Debian's curl against the http command: one request, keep-alive over
// two URLs, and Connection: close.

import (
	"os/exec"
	"strings"
	"testing"
)

// curl runs curl with args and returns its standard output. CI installs
// curl; without it the test fails rather than skips, so that a missing
// curl is seen.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is not installed (apt-get install curl): %v", err)
	}
	out, err := exec.Command(path, append([]string{"-s", "--max-time", "10"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %q: %v", args, err)
	}
	return string(out)
}

func TestCurl(t *testing.T) {
	p := startHTTP(t)
	url := "http://" + p.Addr + "/plaintext"

	got := normalize(curl(t, "-i", url))
	if want := normalize("HTTP/1.1 200 OK\r\nServer: tcpoll\r\nDate: Mon, 07 Dec 2026 02:04:05 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"); got != want {
		t.Errorf("one request: got %q, want %q", got, want)
	}

	// Two URLs in one invocation: the second reuses the connection.
	got = curl(t, "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", url, url)
	if want := "200 1\n200 0\n"; got != want {
		t.Errorf("keep-alive: got %q, want %q (status, new connections)", got, want)
	}
	got = curl(t, url, url)
	if want := "Hello, World!Hello, World!"; got != want {
		t.Errorf("keep-alive: got %q, want %q", got, want)
	}

	// Connection: close: answered with it, and curl connects again.
	got = curl(t, "-i", "-H", "Connection: close", url)
	if !strings.Contains(got, "\r\nConnection: close\r\n") || !strings.HasSuffix(got, "\r\n\r\nHello, World!") {
		t.Errorf("Connection: close: got %q", got)
	}
	got = curl(t, "-H", "Connection: close", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", url, url)
	if want := "200 1\n200 1\n"; got != want {
		t.Errorf("Connection: close: got %q, want %q", got, want)
	}

	// HTTP/1.0, and a 404 and a 405.
	got = curl(t, "-0", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", url, url)
	if want := "200 1\n200 1\n"; got != want {
		t.Errorf("HTTP/1.0: got %q, want %q", got, want)
	}
	got = curl(t, "-o", "/dev/null", "-w", "%{http_code}\n", "http://"+p.Addr+"/x")
	if got != "404\n" {
		t.Errorf("/x: got %q", got)
	}
	got = curl(t, "-o", "/dev/null", "-w", "%{http_code}\n", "-d", "hello", url)
	if got != "405\n" {
		t.Errorf("POST: got %q", got)
	}
}
