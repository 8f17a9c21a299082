package server

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTimerHeap: timers pushed and stopped at random, across several
// chunks, come due in order of their time, and each stopped one never.
func TestTimerHeap(t *testing.T) {
	var h timerHeap
	live := map[*Timer]bool{}
	for round := range 20000 {
		switch {
		case rand.IntN(3) > 0 || len(live) == 0:
			tm := &Timer{at: rand.Int64N(1 << 20), idx: -1}
			h.push(tm)
			live[tm] = true
		default:
			for tm := range live {
				if !tm.Stop() {
					t.Fatalf("round %d: Stop of a pending timer reported false", round)
				}
				if tm.Stop() {
					t.Fatalf("round %d: a second Stop reported true", round)
				}
				delete(live, tm)
				break
			}
		}
		if h.len() != len(live) {
			t.Fatalf("round %d: %d timers in the heap, want %d", round, h.len(), len(live))
		}
	}
	var want []int64
	for tm := range live {
		want = append(want, tm.at)
	}
	slices.Sort(want)
	for i, at := range want {
		tm := h.due(at)
		if tm == nil || tm.at != at || !live[tm] || tm.idx != -1 {
			t.Fatalf("due %d: got %v, want the timer at %d", i, tm, at)
		}
		delete(live, tm)
	}
	if h.len() != 0 || h.due(1<<62) != nil || len(h.chunks) > 1 {
		t.Fatalf("after every timer came due: %d left, %d chunks", h.len(), len(h.chunks))
	}
}
