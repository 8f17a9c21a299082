//go:build unix && !aix && !netbsd

package sd

import "golang.org/x/sys/unix"

func monotonicUsec() uint64 {
	var ts unix.Timespec
	// clock_gettime(2) fails only for a bad clock id or pointer, neither
	// possible here; 0 is the answer that cannot be mistaken for a reading.
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
}
