package main

// A data line is fixed-size, its every byte known to the receiver but the
// send time:
//
//	D<sender, 5 digits> <seq, 10 digits> <sent, 19 digits> <padding>\n
//
// sent is nanoseconds since the run's start on this process's monotonic
// clock; the padding repeats one letter, 'a' + (sender+seq)%26, so that a
// line mixed up with another or cut and joined shows. A probe line, sent
// before the run to learn that every client is in the room, is
//
//	P<sender, 5 digits>\n
const (
	dataMark  = 'D'
	probeMark = 'P'
	// headLen is a data line's bytes before its padding.
	headLen = 1 + 5 + 1 + 10 + 1 + 19 + 1
	// minLineSize is the shortest data line: no padding.
	minLineSize = headLen + 1
	probeLen    = 1 + 5 + 1
	maxSenders  = 99999
)

// appendLine appends the data line of sender's seq-th line, sent at sent
// nanoseconds, size bytes long in all.
func appendLine(b []byte, sender int, seq, sent int64, size int) []byte {
	b = append(b, dataMark)
	b = appendDigits(b, int64(sender), 5)
	b = append(b, ' ')
	b = appendDigits(b, seq, 10)
	b = append(b, ' ')
	b = appendDigits(b, sent, 19)
	b = append(b, ' ')
	pad := padding(sender, seq)
	for range size - headLen - 1 {
		b = append(b, pad)
	}
	return append(b, '\n')
}

// appendProbe appends sender's probe line.
func appendProbe(b []byte, sender int) []byte {
	b = append(b, probeMark)
	b = appendDigits(b, int64(sender), 5)
	return append(b, '\n')
}

func padding(sender int, seq int64) byte { return byte('a' + (int64(sender)+seq)%26) }

// appendDigits appends v, which is not negative, in exactly n decimal
// digits, keeping the low ones.
func appendDigits(b []byte, v int64, n int) []byte {
	b = append(b, make([]byte, n)...)
	d := b[len(b)-n:]
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// parseDigits reads b as a decimal number; ok is false if a byte is not a
// digit.
func parseDigits(b []byte) (v int64, ok bool) {
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// parseLine checks that line, '\n' included, is a data line of size bytes
// and returns what it carries.
func parseLine(line []byte, size int) (sender int, seq, sent int64, ok bool) {
	if len(line) != size || line[0] != dataMark || line[6] != ' ' || line[17] != ' ' || line[37] != ' ' || line[size-1] != '\n' {
		return 0, 0, 0, false
	}
	s, ok1 := parseDigits(line[1:6])
	seq, ok2 := parseDigits(line[7:17])
	sent, ok3 := parseDigits(line[18:37])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, false
	}
	pad := padding(int(s), seq)
	for _, c := range line[headLen : size-1] {
		if c != pad {
			return 0, 0, 0, false
		}
	}
	return int(s), seq, sent, true
}

// parseProbe checks that line, '\n' included, is a probe line and returns
// its sender.
func parseProbe(line []byte) (sender int, ok bool) {
	if len(line) != probeLen || line[0] != probeMark {
		return 0, false
	}
	s, ok := parseDigits(line[1:6])
	return int(s), ok
}
