package main

import "bytes"

// lines cuts one connection's input into lines of at most max bytes, the
// '\n' counted, holding an unfinished line between reads. It is the
// protocol's framing alone, with no I/O, so that it can be tested on any
// split of any input.
type lines struct {
	max  int
	held []byte // the unfinished line, under max bytes
}

// heldKeep is the most capacity held kept once its line is complete: a
// buffer near max for every quiet connection would cost more than the
// allocation it saves.
const heldKeep = 1 << 10

// feed passes the complete lines of in, after the line held from earlier
// input, to emit, one or more lines at a time and in order, and holds
// in's unfinished rest. emit's argument is valid only during the call; it
// may alias in.
//
// feed returns false, having passed the lines before it, at a line of
// more than max bytes, or an unfinished one of max bytes already, which
// cannot end in time: the connection must then end, and feed not be
// called again. The lines passed in all and the answer depend only on the
// bytes fed, never on how they were split.
func (l *lines) feed(in []byte, emit func([]byte)) bool {
	if len(l.held) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			if len(l.held)+len(in) >= l.max {
				return false
			}
			l.held = append(l.held, in...)
			return true
		}
		if len(l.held)+i+1 > l.max {
			return false
		}
		l.held = append(l.held, in[:i+1]...)
		emit(l.held)
		l.held = l.held[:0]
		if cap(l.held) > heldKeep {
			l.held = nil
		}
		in = in[i+1:]
	}
	end := 0 // of the complete lines checked
	for {
		i := bytes.IndexByte(in[end:], '\n')
		if i < 0 {
			break
		}
		if i+1 > l.max {
			if end > 0 {
				emit(in[:end])
			}
			return false
		}
		end += i + 1
	}
	if end > 0 {
		emit(in[:end])
	}
	if len(in)-end >= l.max {
		return false
	}
	l.held = append(l.held, in[end:]...)
	return true
}
