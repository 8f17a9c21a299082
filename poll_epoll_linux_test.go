//go:build !tcpoll_poll && !tcpoll_kqsim

package poll

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestEpollFlags(t *testing.T) {
	all := flagReadable | flagWritable | flagReadClosed | flagHangUp | flagError
	tests := []struct {
		name string
		bits uint32
		want flags
	}{
		{"nothing", 0, 0},
		{"in", unix.EPOLLIN, flagReadable},
		{"pri", unix.EPOLLPRI, flagReadable},
		{"in|pri", unix.EPOLLIN | unix.EPOLLPRI, flagReadable},
		{"out", unix.EPOLLOUT, flagWritable},
		{"in|out", unix.EPOLLIN | unix.EPOLLOUT, flagReadable | flagWritable},
		// The peer's FIN: data sent before it may still be queued.
		{"rdhup", unix.EPOLLRDHUP, flagReadable | flagReadClosed},
		{"in|rdhup", unix.EPOLLIN | unix.EPOLLRDHUP, flagReadable | flagReadClosed},
		{"out|rdhup", unix.EPOLLOUT | unix.EPOLLRDHUP, flagReadable | flagWritable | flagReadClosed},
		// HUP and ERR come whatever the interest and make both directions
		// ready, so the next read or write reports them.
		{"hup", unix.EPOLLHUP, flagReadable | flagWritable | flagReadClosed | flagHangUp},
		{"in|rdhup|hup", unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP, flagReadable | flagWritable | flagReadClosed | flagHangUp},
		{"err", unix.EPOLLERR, flagReadable | flagWritable | flagError},
		{"out|err", unix.EPOLLOUT | unix.EPOLLERR, flagReadable | flagWritable | flagError},
		{"err|hup", unix.EPOLLERR | unix.EPOLLHUP, all},
		{"everything", unix.EPOLLIN | unix.EPOLLPRI | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR, all},
		// Bits epoll_wait does not report by themselves translate to nothing.
		{"et|oneshot", unix.EPOLLET | unix.EPOLLONESHOT, 0},
	}
	for _, tt := range tests {
		if got := epollFlags(tt.bits); got != tt.want {
			t.Errorf("epollFlags(%s = %#x) = %s, want %s", tt.name, tt.bits, flagString(got), flagString(tt.want))
		}
	}
}

func TestEpollInterest(t *testing.T) {
	tests := []struct {
		in   Interest
		want uint32
	}{
		{0, 0},
		{Readable, unix.EPOLLIN | unix.EPOLLRDHUP},
		{Writable, unix.EPOLLOUT},
		{Readable | Writable, unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLOUT},
		{Readable | EdgeTriggered, unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET},
		{Writable | EdgeTriggered, unix.EPOLLOUT | unix.EPOLLET},
		{EdgeTriggered, unix.EPOLLET},
	}
	for _, tt := range tests {
		if got := epollInterest(tt.in); got != tt.want {
			t.Errorf("epollInterest(%#x) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

func TestEpollTokenRoundTrip(t *testing.T) {
	tokens := []uint64{
		0,
		1,
		1<<31 - 1,
		1 << 31, // the sign bit of the low half
		1<<32 - 1,
		1 << 32, // the first bit of the high half
		1<<32 + 1,
		1 << 63,
		0xdeadbeef_cafef00d,
		^uint64(0) - 1,
		wakeToken,
	}
	for _, token := range tokens {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT}
		setToken(&ev, token)
		if got := epollToken(&ev); got != token {
			t.Errorf("epollToken after setToken(%#x) = %#x", token, got)
		}
		if ev.Events != unix.EPOLLIN|unix.EPOLLOUT {
			t.Errorf("setToken(%#x) changed Events to %#x", token, ev.Events)
		}
		// Overwriting must not keep bits of the previous token.
		setToken(&ev, ^token)
		if got := epollToken(&ev); got != ^token {
			t.Errorf("epollToken after setToken(%#x) over %#x = %#x", ^token, token, got)
		}
	}
}
