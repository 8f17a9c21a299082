// Package chat holds what the chat peers share: cutting a connection's
// input at its last complete line, under the protocol's line limit.
//
// The chat protocol (bench/README.md, the chat cell): a line is the bytes
// up to and including '\n', at most max of them; every complete line a
// client sends goes, byte for byte, to every other client; a longer line
// disconnects its sender, whether or not its '\n' has arrived, and goes to
// no one.
package chat

import "bytes"

// Defaults of the peers' -max-line and -max-pending.
const (
	DefaultMaxLine    = 4096
	DefaultMaxPending = 256 << 10
)

// Cut splits b, the input a connection has not yet consumed, after its
// last complete line: lines is b's complete lines, rest the unfinished one
// after them. ok is false if a line is longer than max bytes, its '\n'
// counted, or if the unfinished line already holds max bytes, so that it
// cannot end within the limit: then lines holds only the lines before the
// long one, which may still be delivered, and the connection must close.
// lines and rest share b's memory.
func Cut(b []byte, max int) (lines, rest []byte, ok bool) {
	end := 0 // of the complete lines checked so far
	for {
		i := bytes.IndexByte(b[end:], '\n')
		if i < 0 {
			return b[:end], b[end:], len(b)-end < max
		}
		if i+1 > max {
			return b[:end], b[end:], false
		}
		end += i + 1
	}
}
