package main

import (
	"bytes"
	"testing"
)

func TestLineRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		sender    int
		seq, sent int64
		size      int
	}{
		{0, 1, 0, minLineSize},
		{7, 42, 123456789, 64},
		{maxSenders, 9999999999, 1<<63 - 1, 4096},
	} {
		line := appendLine(nil, tc.sender, tc.seq, tc.sent, tc.size)
		if got, want := len(line), tc.size; got != want {
			t.Errorf("appendLine(%d, %d): %d bytes, want %d", tc.sender, tc.seq, got, want)
		}
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Errorf("appendLine(%d, %d) = %q: want one '\\n', at the end", tc.sender, tc.seq, line)
		}
		sender, seq, sent, ok := parseLine(line, tc.size)
		if !ok || sender != tc.sender || seq != tc.seq || sent != tc.sent {
			t.Errorf("parseLine(%q) = %d, %d, %d, %v; want %d, %d, %d, true", line, sender, seq, sent, ok, tc.sender, tc.seq, tc.sent)
		}
	}
	p := appendProbe(nil, 12)
	if s, ok := parseProbe(p); !ok || s != 12 {
		t.Errorf("parseProbe(%q) = %d, %v; want 12, true", p, s, ok)
	}
}

// TestParseLineRejects checks that any one byte changed, a byte lost or
// two lines joined is caught.
func TestParseLineRejects(t *testing.T) {
	const size = 64
	line := appendLine(nil, 3, 17, 987654321, size)
	for i := range line {
		if i >= 1 && i < headLen-1 && line[i] != ' ' {
			continue // another digit is another valid line; a letter is not
		}
		bad := bytes.Clone(line)
		bad[i] ^= 0x20
		if _, _, _, ok := parseLine(bad, size); ok {
			t.Errorf("parseLine accepts %q (byte %d changed)", bad, i)
		}
	}
	for i := 1; i < headLen-1; i++ {
		if line[i] == ' ' {
			continue
		}
		bad := bytes.Clone(line)
		bad[i] = 'x'
		if _, _, _, ok := parseLine(bad, size); ok {
			t.Errorf("parseLine accepts %q (digit %d a letter)", bad, i)
		}
	}
	// Another sequence number with the old padding: a line that lost its tail
	// and took another's.
	other := appendLine(nil, 3, 18, 987654321, size)
	mixed := append(bytes.Clone(other[:headLen]), line[headLen:]...)
	if _, _, _, ok := parseLine(mixed, size); ok {
		t.Errorf("parseLine accepts %q (head of one line, tail of another)", mixed)
	}
	if _, _, _, ok := parseLine(line[:size-1], size); ok {
		t.Errorf("parseLine accepts a line without its '\\n'")
	}
	if _, _, _, ok := parseLine(append(bytes.Clone(line[:size-1]), line...), size); ok {
		t.Errorf("parseLine accepts two lines joined")
	}
}
