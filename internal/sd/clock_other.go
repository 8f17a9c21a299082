//go:build !unix || aix || netbsd

package sd

// x/sys/unix has no clock_gettime for AIX and no CLOCK_MONOTONIC constant
// for NetBSD, and the other systems here are not Unix. None runs systemd,
// so nothing there reads MONOTONIC_USEC.
func monotonicUsec() uint64 { return 0 }
