//go:build unix

package sd_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpoll/poll/internal/sd"
	"golang.org/x/sys/unix"
)

// helperEnv selects what TestHelperProcess does in the child that
// TestListeners starts; unset, TestHelperProcess does nothing.
const helperEnv = "TCPOLL_SD_HELPER"

var listenVars = []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}

// childNames are the names the child must see for its three listeners:
// LISTEN_FDNAMES gives two, and the third falls back to its number.
var childNames = []string{"web", "admin", "LISTEN_FD_5"}

// checkListenEnvUnset fails the test if Listeners left a variable behind
// for the children of this process to misread.
func checkListenEnvUnset(t *testing.T) {
	t.Helper()
	for _, k := range listenVars {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("after Listeners, %s=%q is still set", k, v)
		}
	}
}

// setListenEnv sets the variables for the test; t.Setenv restores them
// (that is, unsets them) when it ends, whatever Listeners did.
func setListenEnv(t *testing.T, pid, fds, names string) {
	t.Helper()
	t.Setenv("LISTEN_PID", pid)
	t.Setenv("LISTEN_FDS", fds)
	t.Setenv("LISTEN_FDNAMES", names)
}

// listenTCP listens on a free loopback port until the test ends.
func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// fileOf returns a duplicate of c's descriptor, closed when the test ends.
func fileOf(t *testing.T, c interface{ File() (*os.File, error) }) *os.File {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatalf("File: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestListeners socket-activates a child as systemd would: listening
// sockets at fd 3, 4 and 5, LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID set
// to the child's own pid, which os/exec cannot know before the fork; so a
// shell sets it to $$ and execs the child, keeping that pid. A client has
// already connected to each socket, so the child finds the connections
// waiting in the accept queues, as after a socket activation. The child
// (TestHelperProcess) answers each with the name it found for the socket,
// which checks both the names and their order.
func TestListeners(t *testing.T) {
	var (
		files []*os.File
		conns []net.Conn
	)
	for range childNames {
		ln := listenTCP(t)
		files = append(files, fileOf(t, ln))
		c, err := net.DialTimeout("tcp", ln.Addr().String(), patience)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*patience)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`,
		os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=listeners",
		"LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES=web:admin")
	cmd.ExtraFiles = files
	cmd.WaitDelay = patience
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.Bytes())
	}
	if !strings.Contains(out.String(), "--- PASS: TestHelperProcess") {
		t.Fatalf("the child did not run TestHelperProcess:\n%s", out.Bytes())
	}

	// The child has exited: each answer is in the socket buffer, then EOF.
	for i, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(patience)); err != nil {
			t.Fatalf("SetReadDeadline: %v", err)
		}
		b, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("connection %d: read: %v", i, err)
		}
		if got, want := string(b), childNames[i]+"\n"; got != want {
			t.Errorf("connection %d: got %q, want %q", i, got, want)
		}
	}
}

// TestHelperProcess is not a test on its own: it is the child that
// TestListeners starts, and returns at once anywhere else.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "listeners" {
		return
	}
	// os/exec passes ExtraFiles without close-on-exec; the flag seen
	// afterwards is Listeners' doing.
	for fd := 3; fd < 3+len(childNames); fd++ {
		if cloexec(t, uintptr(fd)) {
			t.Fatalf("fd %d is close-on-exec before Listeners; the test cannot tell what Listeners did", fd)
		}
	}
	files, err := sd.Listeners()
	if err != nil {
		t.Fatalf("Listeners: %v", err)
	}
	checkListenEnvUnset(t)
	if len(files) != len(childNames) {
		t.Fatalf("got %d files, want %d", len(files), len(childNames))
	}
	for i, f := range files {
		if got, want := f.Name(), childNames[i]; got != want {
			t.Errorf("file %d: got name %q, want %q", i, got, want)
		}
		rc, err := f.SyscallConn()
		if err != nil {
			t.Fatalf("SyscallConn: %v", err)
		}
		rc.Control(func(fd uintptr) {
			if got, want := fd, uintptr(3+i); got != want {
				t.Errorf("file %d: got fd %d, want %d", i, got, want)
			}
			if !cloexec(t, fd) {
				t.Errorf("fd %d is not close-on-exec after Listeners", fd)
			}
		})
		answer(t, f)
	}
}

// cloexec reports whether fd has FD_CLOEXEC set.
func cloexec(t *testing.T, fd uintptr) bool {
	t.Helper()
	flags, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("fcntl(%d, F_GETFD): %v", fd, err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// answer accepts the connection waiting on f and writes f's name to it.
func answer(t *testing.T, f *os.File) {
	t.Helper()
	ln, err := net.FileListener(f) // a duplicate: f is ours to close
	f.Close()
	if err != nil {
		t.Fatalf("FileListener(%s): %v", f.Name(), err)
	}
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	if err := tl.SetDeadline(time.Now().Add(patience)); err != nil {
		t.Fatalf("SetDeadline: %v", err)
	}
	c, err := tl.Accept()
	if err != nil {
		t.Fatalf("accept on %s: %v", f.Name(), err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(patience)); err != nil {
		t.Fatalf("SetWriteDeadline: %v", err)
	}
	if _, err := io.WriteString(c, f.Name()+"\n"); err != nil {
		t.Fatalf("write on %s: %v", f.Name(), err)
	}
}

// TestListenersNotOurs: variables meant for another process (here our
// parent, which leaked them) yield nothing, and are unset all the same.
func TestListenersNotOurs(t *testing.T) {
	setListenEnv(t, strconv.Itoa(os.Getppid()), "1", "web")
	files, err := sd.Listeners()
	if files != nil || err != nil {
		t.Errorf("Listeners = %v, %v; want nil, nil", files, err)
	}
	checkListenEnvUnset(t)
}

func TestListenersUnset(t *testing.T) {
	setListenEnv(t, "", "1", "web")
	os.Unsetenv("LISTEN_PID")
	files, err := sd.Listeners()
	if files != nil || err != nil {
		t.Errorf("Listeners = %v, %v; want nil, nil", files, err)
	}
	checkListenEnvUnset(t)
}

// TestListenersBadEnv: malformed variables are errors, as they are for
// sd_listen_fds, and are unset too. None of these cases reaches the
// descriptors, so they run in this process, whose fd 3 is not a listener.
func TestListenersBadEnv(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct{ name, pid, fds string }{
		{"pid not a number", "init", "1"},
		{"pid zero", "0", "1"},
		{"fds not a number", self, "three"},
		{"fds empty", self, ""},
		{"fds trailing junk", self, "1x"},
		{"fds zero", self, "0"},
		{"fds negative", self, "-1"},
		{"fds too many", self, "99999999999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setListenEnv(t, tc.pid, tc.fds, "web")
			files, err := sd.Listeners()
			if files != nil || err == nil {
				t.Errorf("LISTEN_PID=%q LISTEN_FDS=%q: Listeners = %v, %v; want nil and an error", tc.pid, tc.fds, files, err)
			}
			checkListenEnvUnset(t)
		})
	}
}

// TestListenersNoFDS: LISTEN_PID without LISTEN_FDS passes nothing, as
// sd_listen_fds returns 0 for it.
func TestListenersNoFDS(t *testing.T) {
	setListenEnv(t, strconv.Itoa(os.Getpid()), "", "")
	os.Unsetenv("LISTEN_FDS")
	files, err := sd.Listeners()
	if files != nil || err != nil {
		t.Errorf("Listeners = %v, %v; want nil, nil", files, err)
	}
	checkListenEnvUnset(t)
}
