//go:build unix

package sd_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/sd"
)

// patience bounds every wait for something that should come. It is far
// longer than any of them takes on an idle machine, so a slow, shared one
// does not make the tests flaky, and a hang still ends.
const patience = 10 * time.Second

// listenNotify stands in for the service manager: it binds a datagram
// socket at addr, points NOTIFY_SOCKET at it for the test and closes it
// when the test ends.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen unixgram %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return c
}

// readDatagram returns the next datagram that c receives.
func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(patience)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	buf := make([]byte, 4096)
	n, _, err := c.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

// TestNotify sends the messages the server sends over its life and checks
// that each arrives as one datagram, byte for byte, at a socket in the file
// system and, on Linux, at one in the abstract namespace.
//
// The abstract case runs in an empty directory, to see that '@' reaches the
// abstract namespace rather than naming a file "@..." there, which would
// carry the datagrams as well and hide the mistake.
func TestNotify(t *testing.T) {
	type socket struct{ name, addr string }
	sockets := []socket{{"path", filepath.Join(t.TempDir(), "notify")}}
	if runtime.GOOS == "linux" {
		sockets = append(sockets, socket{"abstract", fmt.Sprintf("@tcpoll-sd-test-%d", os.Getpid())})
	}
	states := []string{
		"READY=1",
		"RELOADING=1\nMONOTONIC_USEC=123",
		"MAINPID=42\nREADY=1",
		"STOPPING=1",
	}
	for _, s := range sockets {
		t.Run(s.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			c := listenNotify(t, s.addr)
			for _, want := range states {
				ok, err := sd.Notify(want)
				if !ok || err != nil {
					t.Fatalf("Notify(%q) = %v, %v; want true, nil", want, ok, err)
				}
				if got := readDatagram(t, c); got != want {
					t.Errorf("manager got %q, want %q", got, want)
				}
			}
			// Left set: the server notifies again later, and its
			// successor after an upgrade inherits the variable.
			if got, ok := os.LookupEnv("NOTIFY_SOCKET"); !ok || got != s.addr {
				t.Errorf("after Notify, NOTIFY_SOCKET = %q (set %v), want %q", got, ok, s.addr)
			}
			if s.addr[0] == '@' {
				if _, err := os.Lstat(s.addr); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Lstat(%q) = %v, want no such file", s.addr, err)
				}
			}
		})
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if ok, err := sd.Notify("READY=1"); ok || err != nil {
		t.Errorf("NOTIFY_SOCKET empty: Notify = %v, %v; want false, nil", ok, err)
	}
	os.Unsetenv("NOTIFY_SOCKET") // t.Setenv restores it after the test
	if ok, err := sd.Notify("READY=1"); ok || err != nil {
		t.Errorf("NOTIFY_SOCKET unset: Notify = %v, %v; want false, nil", ok, err)
	}
}

func TestNotifyBadSocket(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		is         error // the error wraps it, if not nil
	}{
		{"nothing there", filepath.Join(t.TempDir(), "nobody"), nil},
		{"relative path", "notify.sock", nil},
		{"vsock", "vsock:2:9999", errors.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tc.addr)
			ok, err := sd.Notify("READY=1")
			if ok || err == nil {
				t.Fatalf("NOTIFY_SOCKET=%q: Notify = %v, %v; want false and an error", tc.addr, ok, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want an error wrapping %v", err, tc.is)
			}
		})
	}
}

func TestReloading(t *testing.T) {
	if runtime.GOOS == "aix" || runtime.GOOS == "netbsd" {
		t.Skip("MonotonicUsec reads no clock here")
	}
	before := sd.MonotonicUsec()
	msg := sd.Reloading()
	after := sd.MonotonicUsec()
	const prefix = "RELOADING=1\nMONOTONIC_USEC="
	digits, ok := strings.CutPrefix(msg, prefix)
	if !ok {
		t.Fatalf("got %q, want it to start with %q", msg, prefix)
	}
	got, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		t.Fatalf("got %q: MONOTONIC_USEC is not a decimal number: %v", msg, err)
	}
	if got < before || got > after {
		t.Errorf("got MONOTONIC_USEC=%d, want it within [%d, %d], the readings around the call", got, before, after)
	}
}

// TestMonotonicUsec checks the unit: microseconds, on a clock that moves
// with the one time.Since reads.
func TestMonotonicUsec(t *testing.T) {
	if runtime.GOOS == "aix" || runtime.GOOS == "netbsd" {
		t.Skip("MonotonicUsec reads no clock here")
	}
	const nap = 20 * time.Millisecond
	start := time.Now()
	m0 := sd.MonotonicUsec()
	time.Sleep(nap)
	m1 := sd.MonotonicUsec()
	elapsed := time.Since(start)
	if m0 == 0 {
		t.Fatal("MonotonicUsec() = 0, want a reading of CLOCK_MONOTONIC")
	}
	// Both clocks are CLOCK_MONOTONIC on Linux; 1 ms of slack covers the
	// two readings' order and rounding.
	got := time.Duration(m1-m0) * time.Microsecond
	if got < nap || got > elapsed+time.Millisecond {
		t.Errorf("got %v between two readings, want within [%v, %v]", got, nap, elapsed+time.Millisecond)
	}
}
