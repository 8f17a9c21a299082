package check

import (
	"bytes"
	"fmt"
	"strconv"
)

// Script builders.
func tx(s string) step      { return step{kind: send, data: []byte(s)} }
func txBytes(b []byte) step { return step{kind: send, data: b} }
func txSlow(s string) step  { return step{kind: send, data: []byte(s), bytewise: true} }
func rx(s string) step      { return step{kind: expect, data: []byte(s)} }
func answers(n int) step    { return rx(repeat(answer, n)) }
func silent() step          { return step{kind: quiet} }
func hangUp() step          { return step{kind: closeWrite} }
func closed() step          { return step{kind: eof} }
func closedOrReset() step   { return step{kind: eof, resetOK: true} }
func repeat(s string, n int) string {
	return string(bytes.Repeat([]byte(s), n))
}

// stillOpen ends a case whose connection must stay open: another message
// is answered, then a half-close ends it with a FIN.
func stillOpen() []step {
	return []step{tx("ping\n"), answers(1), hangUp(), closed()}
}

// goodbye ends a case by a half-close with nothing pending.
func goodbye() []step { return []step{hangUp(), closed()} }

func steps(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("check: %T in a script", p))
		}
	}
	return out
}

// q quotes s for a case name.
func q(s string) string { return strconv.Quote(s) }

// Cases returns the scripts Run plays against a server whose MaxMessage is
// max: first the examples of PROTOCOL.md's table, then boundary cases.
func Cases(max int) []Case {
	a := func(n int) string { return repeat("a", n) }
	long := 2*max + min(88, max) // 600 bytes with the default 256: cut, cut, rest
	binary := make([]byte, 0, 256)
	for b := 0; b < 256 && len(binary) < max; b++ {
		if b != '\n' {
			binary = append(binary, byte(b))
		}
	}
	var pipelined, pipelinedClose bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&pipelined, "message %d\n", i)
	}
	pipelinedClose.Write(pipelined.Bytes())
	pipelinedClose.WriteString("close\nnot answered\n")

	return []Case{
		// The table of PROTOCOL.md, in its order.
		{q("hello\n"), steps(tx("hello\n"), answers(1), silent(), goodbye())},
		{q("a\nb\nc\n") + " in one write", steps(tx("a\nb\nc\n"), answers(3), goodbye())},
		{q("hel") + " then " + q("lo\r\n"), steps(tx("hel"), silent(), tx("lo\r\n"), answers(1), goodbye())},
		{q("\n") + " (empty message)", steps(tx("\n"), answers(1), goodbye())},
		{q("close\n"), steps(tx("close\n"), rx(closing), closed())},
		{q("x\nclose\ny\n") + " in one write", steps(tx("x\nclose\ny\n"), answers(1), rx(closing), closedOrReset())},
		{fmt.Sprintf("%d bytes without LF, then LF", long),
			steps(tx(a(long)), answers(2), silent(), tx("\n"), answers(1), goodbye())},
		{q("bye") + " then EOF", steps(tx("bye"), silent(), hangUp(), answers(1), closed())},
		{fmt.Sprintf("%d bytes + LF", max), steps(tx(a(max)+"\n"), answers(1), goodbye())},
		{fmt.Sprintf("%d bytes + CRLF", max), steps(tx(a(max)+"\r\n"), answers(2), goodbye())},
		{q("close") + " then EOF", steps(tx("close"), silent(), hangUp(), rx(closing), closed())},
		{"EOF with nothing sent", steps(hangUp(), closed())},

		// MaxMessage boundaries: the limit counts raw bytes, a CR included,
		// and a cut is answered at once.
		{fmt.Sprintf("%d bytes + LF", max-1), steps(tx(a(max-1)+"\n"), answers(1), goodbye())},
		{fmt.Sprintf("%d bytes + LF", max+1),
			steps(tx(a(max+1)), answers(1), silent(), tx("\n"), answers(1), goodbye())},
		{fmt.Sprintf("%d bytes + CRLF", max-1), steps(tx(a(max-1)+"\r\n"), answers(1), goodbye())},
		{fmt.Sprintf("%d bytes then EOF", max), steps(tx(a(max)), silent(), hangUp(), answers(1), closed())},
		{fmt.Sprintf("%d bytes then EOF", max+1), steps(tx(a(max+1)), answers(1), hangUp(), answers(1), closed())},
		{fmt.Sprintf("%d bytes + %s (a cut, then close)", max, q("close\n")),
			steps(tx(a(max)+"close\n"), answers(1), rx(closing), closed())},
		{fmt.Sprintf("%d bytes, one write per byte, then LF", max+1),
			steps(txSlow(a(max+1)), answers(1), tx("\n"), answers(1), goodbye())},

		// Splitting never changes the answers.
		{q("hello\r\n") + " one byte per write", steps(txSlow("hello\r\n"), answers(1), goodbye())},
		{q("close\r\n") + " one byte per write", steps(txSlow("close\r\n"), rx(closing), closed())},
		{q("clo") + " then " + q("se\n"), steps(tx("clo"), silent(), tx("se\n"), rx(closing), closed())},
		{q("a\nb") + " then " + q("\n"), steps(tx("a\nb"), answers(1), silent(), tx("\n"), answers(1), goodbye())},
		{"1000 messages in one write", steps(txBytes(pipelined.Bytes()), answers(1000), goodbye())},
		{"1000 messages, " + q("close\n") + " and more in one write",
			steps(txBytes(pipelinedClose.Bytes()), answers(1000), rx(closing), closedOrReset())},

		// The CR rule and "close".
		{q("close\r\n"), steps(tx("close\r\n"), rx(closing), closed())},
		{q("close\r") + " then EOF", steps(tx("close\r"), silent(), hangUp(), rx(closing), closed())},
		{q("\r\n") + " (empty message)", steps(tx("\r\n"), answers(1), goodbye())},
		{q("close\r\r\n") + " (ordinary)", steps(tx("close\r\r\n"), answers(1), stillOpen())},
		{q("Close\n") + " (ordinary)", steps(tx("Close\n"), answers(1), stillOpen())},
		{q(" close\n") + " (ordinary)", steps(tx(" close\n"), answers(1), stillOpen())},
		{q("close \n") + " (ordinary)", steps(tx("close \n"), answers(1), stillOpen())},
		{q("closeclose\n") + " (ordinary)", steps(tx("closeclose\n"), answers(1), stillOpen())},
		{q("clos\n") + " (ordinary)", steps(tx("clos\n"), answers(1), stillOpen())},
		{q("\rclose\n") + " (ordinary)", steps(tx("\rclose\n"), answers(1), stillOpen())},

		// Any bytes are a message.
		{q("\x00\n") + " (NUL)", steps(tx("\x00\n"), answers(1), stillOpen())},
		{q("close\x00\n") + " (ordinary)", steps(tx("close\x00\n"), answers(1), stillOpen())},
		{q("\xff\xfe\xc3\n") + " (invalid UTF-8)", steps(tx("\xff\xfe\xc3\n"), answers(1), stillOpen())},
		{fmt.Sprintf("%d bytes of binary (all but LF) + LF", len(binary)),
			steps(txBytes(append(binary, '\n')), answers(1), stillOpen())},
	}
}
