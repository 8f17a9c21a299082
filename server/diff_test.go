package server_test

// Differential tests across engines. One build holds one engine, so these
// build cmd/tcpoll once per engine, run each as a server process, and play
// the same seeded client sessions against all of them. The answers are a
// pure function of each client's byte stream (PROTOCOL.md), so every
// transcript must also equal a Framer fed the whole stream.

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var diffSeed = flag.Uint64("diff.seed", 1, "seed of TestDifferential's sessions")

// diffEngines are the engines, the build tags that select them, and serve
// flags: poll-direct is the poll engine sending with send(2) rather than
// through io_uring.
var diffEngines = []struct {
	name, tags string
	flags      []string
}{
	{"poll", "", nil},
	{"poll-direct", "", []string{"-direct-send"}},
	{"evio", "evio", nil},
	{"stdnet", "stdnet", nil},
}

// diffMaxMessage is the servers' -max-message: small, so long lines and
// cuts are common.
const diffMaxMessage = 64

// buildEngines builds cmd/tcpoll for every engine into a temporary
// directory and returns the binaries by build tags. The go command's
// cache makes builds after the first one quick.
func buildEngines(t *testing.T) map[string]string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		skipUnderWine(t, "no go command for Windows inside Wine")
		t.Fatalf("the differential test builds tcpoll with the go command: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bins := make(map[string]string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, e := range diffEngines {
		if e.flags != nil {
			continue // the binary of the entry without flags
		}
		bin := filepath.Join(dir, "tcpoll-"+e.name)
		if runtime.GOOS == "windows" {
			bin += ".exe"
		}
		wg.Go(func() {
			args := []string{"build", "-o", bin}
			if e.tags != "" {
				args = append(args, "-tags", e.tags)
			}
			cmd := exec.Command(goTool, append(args, "./cmd/tcpoll")...)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
			bins[e.tags] = bin
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return bins
}

// serverProc is a tcpoll serve process.
type serverProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	engine string
	waited chan struct{}
	err    error // Wait's result, once waited is closed

	mu     sync.Mutex
	stderr bytes.Buffer // the log, for failure messages
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+) engine=(\S+)`)

// startProc runs cmd, which must run "tcpoll serve", and waits for its
// "listening" log line.
func startProc(t *testing.T, cmd *exec.Cmd) *serverProc {
	t.Helper()
	p := &serverProc{t: t, cmd: cmd, waited: make(chan struct{})}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if p.stderr.Len() < 1<<20 {
				p.stderr.WriteString(line + "\n")
			}
			if p.addr == "" {
				if m := listeningRE.FindStringSubmatch(line); m != nil {
					p.addr, p.engine = m[1], m[2]
					close(found)
				}
			}
			p.mu.Unlock()
		}
		io.Copy(io.Discard, errPipe)
	}()
	go func() {
		<-readDone // Wait closes the pipe: read it to the end first
		p.err = cmd.Wait()
		close(p.waited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.waited:
		default:
			cmd.Process.Kill()
			<-p.waited
		}
	})
	select {
	case <-found:
	case <-p.waited:
		t.Fatalf("%v exited before listening: %v\n%s", cmd.Args, p.err, p.log())
	case <-time.After(10 * time.Second):
		t.Fatalf("%v: no listening line in 10s\n%s", cmd.Args, p.log())
	}
	return p
}

func (p *serverProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends SIGINT (Kill on Windows) and returns the exit error.
func (p *serverProc) stop() error {
	if runtime.GOOS == "windows" {
		p.cmd.Process.Kill()
	} else {
		p.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-p.waited:
		return p.err
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.waited
		return fmt.Errorf("did not exit within 15s of SIGINT")
	}
}

// session is one client's scripted conversation.
type session struct {
	chunks [][]byte        // written in order
	pauses []time.Duration // before each chunk
	slow   bool            // the client reads slowly, in small pieces
	stream []byte          // all chunks
	close  int             // offset just past the first "close" message, or -1
	desc   string
}

// transcript is what a client received, and how its connection ended.
type transcript struct {
	got string
	end string // "EOF", "reset" or another error
}

// played is a transcript and the client's address, to find the
// connection in the server's log.
type played struct {
	transcript
	local string
}

// makeSession draws a session from r: a mix of the messages PROTOCOL.md
// singles out, cut at random points.
func makeSession(r *rand.Rand) session {
	var b bytes.Buffer
	var kinds []string
	closeAt := -1
	for n := r.IntN(30); n >= 0; n-- {
		var k string
		switch x := r.IntN(100); {
		case x < 25:
			k = "word"
			for range r.IntN(12) {
				b.WriteByte(byte('a' + r.IntN(26)))
			}
			b.WriteByte('\n')
		case x < 32:
			k = "empty"
			b.WriteString("\n")
		case x < 42:
			k = "cr"
			b.WriteString([]string{"\r\n", "\r\r\n", "a\rb\r\n", "\r"}[r.IntN(4)])
		case x < 55:
			k = "long"
			b.WriteString(strings.Repeat("L", 1+r.IntN(4*diffMaxMessage)))
			if r.IntN(2) == 0 {
				b.WriteByte('\r')
			}
			b.WriteByte('\n')
		case x < 65:
			k = "edge"
			n := diffMaxMessage + r.IntN(5) - 2
			b.WriteString(strings.Repeat("E", n))
			b.WriteString([]string{"\n", "\r\n", "\r\r\n"}[r.IntN(3)])
		case x < 75:
			k = "binary"
			for range 1 + r.IntN(40) {
				b.WriteByte(byte(r.IntN(256)))
			}
		case x < 85:
			k = "not close"
			b.WriteString([]string{"Close\n", " close\n", "close \n", "clos\n", "closee\n", "close\r\r\n", "\x00close\n", "close\x00\n"}[r.IntN(8)])
		case x < 88:
			k = "close"
			b.WriteString([]string{"close\n", "close\r\n"}[r.IntN(2)])
			if closeAt < 0 {
				closeAt = b.Len()
			}
		case x < 91:
			k = "flood"
			b.WriteString(strings.Repeat("\n", 1000+r.IntN(60000)))
		default:
			k = "pipelined"
			b.WriteString(strings.Repeat("p\n", 1+r.IntN(500)))
		}
		kinds = append(kinds, k)
	}
	if r.IntN(3) == 0 {
		// EOF with a message pending.
		kinds = append(kinds, "pending")
		b.WriteString([]string{"bye", "close", "close\r", "x\r", strings.Repeat("T", 1+r.IntN(2*diffMaxMessage))}[r.IntN(5)])
	}
	s := session{stream: b.Bytes(), close: closeAt, slow: r.IntN(6) == 0}
	for rest := s.stream; len(rest) > 0; {
		var n int
		switch x := r.IntN(10); {
		case x < 2:
			n = 1 + r.IntN(3)
		case x < 7:
			n = 1 + r.IntN(100)
		default:
			n = 1 + r.IntN(20000)
		}
		n = min(n, len(rest))
		var pause time.Duration
		if r.IntN(5) == 0 {
			pause = time.Duration(r.IntN(3000)) * time.Microsecond
		}
		s.chunks = append(s.chunks, rest[:n])
		s.pauses = append(s.pauses, pause)
		rest = rest[n:]
	}
	s.desc = fmt.Sprintf("%d bytes in %d chunks, slow reader %v: %s", len(s.stream), len(s.chunks), s.slow, strings.Join(kinds, " "))
	return s
}

// play runs s against the server at addr.
func (s session) play(addr string) played {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return played{transcript: transcript{end: "dial: " + err.Error()}}
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	c.SetDeadline(deadline)
	go func() {
		for i, ch := range s.chunks {
			time.Sleep(s.pauses[i])
			if _, err := c.Write(ch); err != nil {
				// The server closed after "close" (evio) and reset.
				break
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	if s.slow {
		buf = buf[:512]
	}
	for i := 0; ; i++ {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			end := "EOF"
			switch {
			case err == io.EOF:
			case isReset(err):
				end = "reset"
			default:
				end = err.Error()
			}
			return played{transcript{got: got.String(), end: end}, c.LocalAddr().String()}
		}
		if s.slow && i%16 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// playAll plays the sessions against addr, conc at a time.
func playAll(addr string, sessions []session, conc int) []played {
	out := make([]played, len(sessions))
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, s := range sessions {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = s.play(addr)
		})
	}
	wg.Wait()
	return out
}

// describeDiff says where got and want part.
func describeDiff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("%d bytes, want %d; first difference at byte %d", len(got), len(want), i)
}

// TestDifferential plays the same seeded sessions against every engine and
// requires byte-identical transcripts, equal to the Framer's answers.
//
// evio is held to what it can do (see engine_evio.go), and that is pinned
// down: it never answers at EOF, so its transcript is the Framer's answers
// without End. And where the client goes on writing after "close", evio
// closes with input unread or still arriving, so the server's kernel
// resets the connection and discards the answers still in its send
// buffer: the transcript is then a prefix of those answers (often far
// shorter: 128000 of 1429879 bytes in one run), ended by a reset, or by
// EOF when the client's write took the reset error first.
func TestDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/tcpoll for each engine")
	}
	bins := buildEngines(t)
	r := rand.New(rand.NewPCG(*diffSeed, 0x7c9011))
	sessions := make([]session, 200)
	for i := range sessions {
		sessions[i] = makeSession(r)
	}
	results := make(map[string][]played)
	logs := make(map[string]string)
	var mu sync.Mutex
	t.Run("engines", func(t *testing.T) {
		for _, e := range diffEngines {
			t.Run(e.name, func(t *testing.T) {
				t.Parallel()
				args := append([]string{"serve", "-addr", "127.0.0.1:0", "-max-message", fmt.Sprint(diffMaxMessage)}, e.flags...)
				p := startProc(t, exec.Command(bins[e.tags], args...))
				if want, _, _ := strings.Cut(e.name, "-"); p.engine != want {
					t.Errorf("engine %q, want %q", p.engine, want)
				}
				tr := playAll(p.addr, sessions, 20)
				if err := p.stop(); err != nil {
					t.Errorf("exit after SIGINT: %v, want status 0\n%s", err, tail(p.log(), 2000))
				}
				mu.Lock()
				results[e.name] = tr
				logs[e.name] = p.log()
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	evioTruncated := 0
	for _, e := range diffEngines {
		bad := 0
		for i, s := range sessions {
			got := results[e.name][i]
			want := transcript{got: model(diffMaxMessage, s.stream, true), end: "EOF"}
			if e.name == "evio" {
				want.got = model(diffMaxMessage, s.stream, false)
				if s.close >= 0 && s.close < len(s.stream) && strings.HasPrefix(want.got, got.got) && (got.end == "reset" || got.end == "EOF") {
					if got.got != want.got {
						evioTruncated++
					}
					want = got.transcript
				}
			}
			if got.transcript != want {
				if bad++; bad <= 5 {
					t.Errorf("%s, session %d (%s): got %s then %s; want then %s\nserver log:\n%s",
						e.name, i, s.desc, describeDiff(got.got, want.got), got.end, want.end, grepLines(logs[e.name], got.local))
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d sessions differ in all", e.name, bad)
		}
	}
	t.Logf("evio lost answers after \"close\" in %d of %d sessions", evioTruncated, len(sessions))
	// The engines that meet PROTOCOL.md agree with each other exactly.
	for i := range sessions {
		if a, b := results["poll"][i], results["stdnet"][i]; a.transcript != b.transcript {
			t.Errorf("session %d: poll and stdnet differ: %s; ends %s, %s", i, describeDiff(a.got, b.got), a.end, b.end)
		}
	}
}

// grepLines returns the lines of log that contain s.
func grepLines(log, s string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if s != "" && strings.Contains(line, s) {
			b.WriteString(line)
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestDiffAcceptErrors runs each engine with a descriptor limit so low that
// accept fails with EMFILE. The server must neither spin nor stop: once
// descriptors are free again, a new client is served. evio cannot: an
// accept error ends its loops (engine_evio.go), and that is pinned down.
func TestDiffAcceptErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/tcpoll for each engine")
	}
	sh, err := exec.LookPath("sh")
	if err != nil || runtime.GOOS == "windows" {
		t.Skip("needs sh and ulimit")
	}
	bins := buildEngines(t)
	for _, e := range diffEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			// A limit set by the shell before exec is also the hard limit,
			// which the Go runtime cannot raise.
			p := startProc(t, exec.Command(sh, append([]string{"-c", `ulimit -n 48 && exec "$0" serve -addr 127.0.0.1:0 "$@"`, bins[e.tags]}, e.flags...)...))
			var conns []net.Conn
			for range 80 {
				c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
				if err != nil {
					break // the backlog is full
				}
				conns = append(conns, c)
			}
			time.Sleep(300 * time.Millisecond)
			for _, c := range conns {
				c.Close()
			}
			if e.name == "evio" {
				// evio_unix.go:283-289: the accept error ends evio, and
				// the command exits with Serve's error.
				select {
				case <-p.waited:
				case <-time.After(ioTimeout):
					t.Fatalf("evio still running after EMFILE; if it survives accept errors now, update engine_evio.go")
				}
				if p.err == nil || !strings.Contains(p.log(), "evio stopped") {
					t.Errorf("evio exited with %v; want an error saying evio stopped\n%s", p.err, tail(p.log(), 2000))
				}
				return
			}
			if !strings.Contains(p.log(), "accept failed") {
				t.Errorf("no accept failure logged with 80 connections and 48 descriptors")
			}
			// Served again once descriptors are free (accepts back off for
			// at most a second).
			deadline := time.Now().Add(ioTimeout)
			for {
				got, err := roundTrip(p.addr)
				if err == nil && got == acks(1, true) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not served after EMFILE: read %q, %v\n%s%s", got, err,
						grepLines(p.log(), "fatal error")+grepLines(p.log(), "panic:"), tail(p.log(), 2000))
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := p.stop(); err != nil {
				t.Errorf("exit after SIGINT: %v\n%s", err, tail(p.log(), 2000))
			}
		})
	}
}

// roundTrip sends "hi" and "close" and reads to the end.
func roundTrip(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hi\nclose\n")); err != nil {
		return "", err
	}
	return readEnd(c, 2*time.Second)
}
