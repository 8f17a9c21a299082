package poll

import (
	"fmt"
	"strings"
	"testing"
)

func TestKqueueFlags(t *testing.T) {
	const (
		evAdd      = 0x1  // EV_ADD, echoed back in an event's flags
		evClear    = 0x20 // EV_CLEAR, likewise
		econnreset = 54   // errno in fflags; the BSDs agree on 54
		epipe      = 32
	)
	all := flagReadable | flagWritable | flagError
	tests := []struct {
		name   string
		filter kevFilter
		flags  uint32
		fflags uint32
		want   flags
	}{
		{"read data", kevRead, 0, 0, flagReadable},
		{"read data, edge-triggered", kevRead, evAdd | evClear, 0, flagReadable},
		// data may still be queued: the caller reads until EOF.
		{"read EOF", kevRead, kevEOF, 0, flagReadable | flagReadClosed},
		{"read EOF, edge-triggered", kevRead, kevEOF | evClear, 0, flagReadable | flagReadClosed},
		{"read EOF with reset", kevRead, kevEOF, econnreset, all | flagReadClosed},
		{"read, fflags without EOF", kevRead, 0, econnreset, flagReadable},
		{"write ready", kevWrite, 0, 0, flagWritable},
		{"write EOF", kevWrite, kevEOF, 0, flagWritable | flagHangUp},
		{"write EOF with EPIPE", kevWrite, kevEOF, epipe, all | flagHangUp},
		{"EV_ERROR on read", kevRead, kevError, 0, all},
		{"EV_ERROR on write", kevWrite, kevError, 0, all},
		{"EV_ERROR and EV_EOF on read", kevRead, kevError | kevEOF, 0, all},
		{"EV_ERROR and EV_EOF on write", kevWrite, kevError | kevEOF, epipe, all},
		{"unknown filter", kevOther, 0, 0, 0},
		{"unknown filter, EOF", kevOther, kevEOF, econnreset, 0},
		{"unknown filter, EV_ERROR", kevOther, kevError, 0, 0},
		{"filter out of range", kevFilter(200), kevEOF, 0, 0},
	}
	for _, tt := range tests {
		got := kqueueFlags(tt.filter, tt.flags, tt.fflags)
		if got != tt.want {
			t.Errorf("%s: kqueueFlags(%d, %#x, %d) = %s, want %s",
				tt.name, tt.filter, tt.flags, tt.fflags, flagString(got), flagString(tt.want))
		}
	}
}

// flagString names the bits of f, for test messages.
func flagString(f flags) string {
	if f == 0 {
		return "none"
	}
	var names []string
	for _, b := range []struct {
		f    flags
		name string
	}{
		{flagReadable, "readable"},
		{flagWritable, "writable"},
		{flagReadClosed, "read-closed"},
		{flagHangUp, "hang-up"},
		{flagError, "error"},
	} {
		if f&b.f != 0 {
			names = append(names, b.name)
			f &^= b.f
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("%#x", uint8(f)))
	}
	return strings.Join(names, "|")
}
