// Package upgrade replaces a running server process with a new one without
// closing its listening sockets: the old process starts the new binary,
// hands it the sockets as inherited descriptors, and waits for it to say it
// serves; only then does the old one stop accepting and shut down.
//
// The hand-over uses two environment variables and descriptors 3 and up,
// as systemd's socket activation does (sd_listen_fds(3)), but under names
// of its own: systemd's LISTEN_PID must name the process that reads it,
// which a parent using os/exec cannot know before the fork.
//
//	TCPOLL_LISTEN_FDS=n   descriptors 3 .. 3+n-1 are listening sockets
//	TCPOLL_READY_FD=m     descriptor m is the write end of a pipe: write one
//	                      byte and close it once serving
//
// A child that exits, closes the pipe without writing, or takes longer
// than the timeout, has failed; the old process goes on serving. An old
// process told to stop meanwhile stops the child too, within a deadline of
// its choosing (Stop).
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The environment of a process started by Start.
const (
	envListenFDs = "TCPOLL_LISTEN_FDS"
	envReadyFD   = "TCPOLL_READY_FD"
)

// Inherited returns the listening sockets and the readiness pipe that a
// predecessor passed to this process through Start, or nothing if this
// process was not started so. It unsets the variables, so that this
// process's own successor does not read them.
func Inherited() (listeners []*os.File, ready *os.File, err error) {
	fdsEnv, readyEnv := os.Getenv(envListenFDs), os.Getenv(envReadyFD)
	os.Unsetenv(envListenFDs)
	os.Unsetenv(envReadyFD)
	if fdsEnv == "" && readyEnv == "" {
		return nil, nil, nil
	}
	n, err := strconv.Atoi(fdsEnv)
	if err != nil || n < 1 || n > 1024 {
		return nil, nil, fmt.Errorf("upgrade: %s=%q: want a count of descriptors", envListenFDs, fdsEnv)
	}
	rfd, err := strconv.Atoi(readyEnv)
	if err != nil || rfd < 3+n {
		return nil, nil, fmt.Errorf("upgrade: %s=%q: want a descriptor after the listeners", envReadyFD, readyEnv)
	}
	for fd := 3; fd < 3+n; fd++ {
		closeOnExec(fd)
		listeners = append(listeners, os.NewFile(uintptr(fd), "inherited-listener-"+strconv.Itoa(fd)))
	}
	closeOnExec(rfd)
	return listeners, os.NewFile(uintptr(rfd), "upgrade-ready"), nil
}

// Ready tells the predecessor that this process serves, and closes ready.
func Ready(ready *os.File) error {
	_, err := ready.Write([]byte{'\n'})
	if cerr := ready.Close(); err == nil {
		err = cerr
	}
	return err
}

// Child is a successor started by Start.
type Child struct {
	cmd    *exec.Cmd
	ready  *os.File      // the pipe's read end
	exited chan struct{} // closed when cmd.Wait returns
	err    error         // cmd.Wait's, once exited is closed
}

// Start starts exe with args and the listening sockets in files (which the
// caller still closes), with this process's standard streams and
// environment. The child is in this process's process group, so a signal
// to the group (Ctrl-C) reaches both during the hand-over.
func Start(exe string, args []string, files []*os.File) (*Child, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = append(append([]*os.File(nil), files...), w)
	cmd.Env = append(environ(),
		envListenFDs+"="+strconv.Itoa(len(files)),
		envReadyFD+"="+strconv.Itoa(3+len(files)))
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, err
	}
	c := &Child{cmd: cmd, ready: r, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// environ is this process's environment without the variables that
// passed descriptors to it: systemd's, which named this process, and ours.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", envListenFDs, envReadyFD:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Stop asks the child to stop as gracefully as it can (SIGTERM), and
// waits for it to exit; if ctx is done first, it kills the child. Either
// way the child is gone when Stop returns: the caller's deadline, not the
// child, bounds the wait. The error says the child had to be killed. Stop
// may be called while Wait waits, and on a child that has exited.
func (c *Child) Stop(ctx context.Context) error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
	}
	c.cmd.Process.Kill()
	<-c.exited
	return fmt.Errorf("new process %d did not stop (%v); killed it", c.Pid(), ctx.Err())
}

// Pid is the child's process ID.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Wait waits until the child is ready, or has failed: it exited, closed
// the pipe without a word, or was not ready within timeout, in which case
// Wait kills it. After a failure the child is gone. If ctx is done first,
// Wait returns ctx's error at once and leaves the child as it is, ready
// or not: the caller, which is stopping, ends it with Stop.
func (c *Child) Wait(ctx context.Context, timeout time.Duration) error {
	defer c.ready.Close()
	got := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.ready.Read(b[:])
		got <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var why error
	select {
	case err := <-got:
		if err == nil {
			return nil
		}
		if errors.Is(err, io.EOF) {
			// The pipe closed unwritten: the child exited, or closed it.
			// Wait for the exit status, which says more.
			select {
			case <-c.exited:
				return fmt.Errorf("new process %d exited before it was ready: %v", c.Pid(), c.err)
			case <-time.After(time.Second):
				why = errors.New("closed its readiness pipe without being ready")
			}
		} else {
			why = err
		}
	case <-c.exited:
		return fmt.Errorf("new process %d exited before it was ready: %v", c.Pid(), c.err)
	case <-t.C:
		why = fmt.Errorf("not ready after %v", timeout)
	case <-ctx.Done():
		// The caller is stopping, and stops the child beside itself. Not
		// here: how long the child may take is the caller's to decide.
		return fmt.Errorf("new process %d not ready yet: %w", c.Pid(), ctx.Err())
	}
	c.cmd.Process.Kill()
	<-c.exited
	return fmt.Errorf("new process %d %v; killed it", c.Pid(), why)
}
