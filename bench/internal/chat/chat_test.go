package chat

import (
	"strings"
	"testing"
)

func TestCut(t *testing.T) {
	x := strings.Repeat
	for _, tc := range []struct {
		in          string
		max         int
		lines, rest string
		ok          bool
	}{
		{"", 8, "", "", true},
		{"\n", 8, "\n", "", true}, // an empty line is a line
		{"\n\n", 8, "\n\n", "", true},
		{"ab", 8, "", "ab", true},
		{"ab\ncd", 8, "ab\n", "cd", true},
		{"ab\ncd\n", 8, "ab\ncd\n", "", true},
		{x("a", 7) + "\n", 8, x("a", 7) + "\n", "", true},                       // max, '\n' included
		{x("a", 8) + "\n", 8, "", x("a", 8) + "\n", false},                      // max+1
		{x("a", 7), 8, "", x("a", 7), true},                                     // may still end in time
		{x("a", 8), 8, "", x("a", 8), false},                                    // cannot
		{"ab\n" + x("a", 9) + "\ncd\n", 8, "ab\n", x("a", 9) + "\ncd\n", false}, // lines before a long one stay
		{"ab\n" + x("a", 8), 8, "ab\n", x("a", 8), false},
		{"\n" + x("a", 7), 8, "\n", x("a", 7), true},
	} {
		lines, rest, ok := Cut([]byte(tc.in), tc.max)
		if string(lines) != tc.lines || string(rest) != tc.rest || ok != tc.ok {
			t.Errorf("Cut(%q, %d) = %q, %q, %v; want %q, %q, %v", tc.in, tc.max, lines, rest, ok, tc.lines, tc.rest, tc.ok)
		}
	}
}

// TestCutSplits checks that, fed a stream in pieces and keeping rest as a
// peer does, Cut yields the same lines however the stream is split.
func TestCutSplits(t *testing.T) {
	const max = 6
	stream := "a\n\nbcdef\nxy\n" + "zzzzzz" // the last line is too long
	want := "a\n\nbcdef\nxy\n"
	for size := 1; size <= len(stream); size++ {
		var got, pending []byte
		ok := true
		for i := 0; i < len(stream) && ok; i += size {
			pending = append(pending, stream[i:min(i+size, len(stream))]...)
			var lines, rest []byte
			lines, rest, ok = Cut(pending, max)
			got = append(got, lines...)
			pending = append(pending[:0], rest...)
		}
		if string(got) != want || ok {
			t.Errorf("in pieces of %d: lines %q, ok %v; want %q, false", size, got, ok, want)
		}
	}
}
