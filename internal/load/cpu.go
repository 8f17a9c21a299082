//go:build unix

package load

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// cpuSample is the CPU time used so far by this process and the server.
type cpuSample struct {
	self     time.Duration
	server   time.Duration
	serverOK bool
}

func (r *run) sampleCPU() cpuSample {
	var s cpuSample
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if r.cfg.ServerPID != 0 {
		d, err := procCPU(r.cfg.ServerPID)
		s.server, s.serverOK = d, err == nil
	}
	return s
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. Linux
// fixes it at 100 on every architecture Go runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// procCPU returns the user plus system CPU time of process pid, all its
// threads, from /proc/PID/stat. Only Linux has that file.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("load: server CPU time: %w", err)
	}
	return parseStat(b)
}

// parseStat reads utime and stime, fields 14 and 15 of a /proc/PID/stat
// line. Field 2, the command name in parentheses, may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("load: malformed /proc stat line")
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("load: short /proc stat line")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("load: /proc stat field: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
