// Package proc reads what the bench clients report about a server
// process from Linux's /proc: its resident memory, its peak, its threads
// and the CPU time it has used.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// TickDuration is one clock tick of /proc/PID/stat (USER_HZ, which Linux
// fixes at 100 on every architecture Go runs on).
const TickDuration = 10 * time.Millisecond

// RSS returns the resident set size of pid in kB (VmRSS).
func RSS(pid int) (int64, error) { return statusField(pid, "VmRSS:") }

// HWM returns the peak resident set size of pid in kB (VmHWM): the
// kernel's high-water mark, which no sampling can miss.
func HWM(pid int) (int64, error) { return statusField(pid, "VmHWM:") }

// Threads returns the number of threads of pid.
func Threads(pid int) (int, error) {
	n, err := statusField(pid, "Threads:")
	return int(n), err
}

func statusField(pid int, name string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, name)
}

// Ticks returns the user plus system CPU time of pid, all its threads, in
// clock ticks.
func Ticks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

// CPU returns the user plus system CPU time of pid.
func CPU(pid int) (time.Duration, error) {
	t, err := Ticks(pid)
	return time.Duration(t) * TickDuration, err
}

// Alive reports whether pid exists and is not a zombie: a server that
// crashed but was not yet reaped by the script that started it is dead.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// ParsePIDs parses a comma-separated list of process ids, at least one.
func ParsePIDs(s string) ([]int, error) {
	var pids []int
	for f := range strings.SplitSeq(s, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("process id %q: want a positive number", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// CPUSum returns the user plus system CPU time of the processes pids,
// added up: a server made of several processes (a TLS terminator in front
// of a plaintext server).
func CPUSum(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := CPU(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}
