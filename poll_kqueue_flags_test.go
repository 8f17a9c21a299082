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
		// Our own shutdown(SHUT_WR) sets EV_EOF on the write filter too:
		// this side can send no more, which is not "closed both ways".
		{"write EOF", kevWrite, kevEOF, 0, flagWritable},
		{"write EOF, edge-triggered", kevWrite, kevEOF | evClear, 0, flagWritable},
		{"write EOF with EPIPE", kevWrite, kevEOF, epipe, all},
		{"write EOF with reset", kevWrite, kevEOF, econnreset, all},
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

func TestKqueueHint(t *testing.T) {
	all := flagReadable | flagWritable | flagReadClosed | flagHangUp | flagError
	tests := []struct {
		name string
		f    flags
		in   Interest
		want flags
	}{
		{"read EOF, now reading", flagReadable | flagReadClosed, Readable, flagReadable},
		{"read EOF, now writing", flagReadable | flagReadClosed, Writable, 0},
		{"read EOF, now both", flagReadable | flagReadClosed, Readable | Writable, flagReadable},
		{"writable, now reading", flagWritable, Readable, 0},
		{"writable, now writing, edge-triggered", flagWritable, Writable | EdgeTriggered, flagWritable},
		{"error, now reading", all, Readable, flagReadable},
		{"error, now both", all, Readable | Writable, flagReadable | flagWritable},
		{"error, now no interest", all, 0, 0},
		{"nothing", 0, Readable | Writable, 0},
	}
	for _, tt := range tests {
		if got := kqueueHint(tt.f, tt.in); got != tt.want {
			t.Errorf("%s: kqueueHint(%s, %#x) = %s, want %s", tt.name, flagString(tt.f), tt.in, flagString(got), flagString(tt.want))
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
