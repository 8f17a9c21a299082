//go:build !evio && !stdnet && (linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || aix)

package server

import (
	"bytes"
	"runtime"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

func TestConnSize(t *testing.T) {
	// The idle cost of a connection is this struct plus its Protocol value;
	// growing it shows up directly in the RSS-per-connection benchmark.
	// What only some connections need goes in connExt.
	if got, want := unsafe.Sizeof(conn{}), uintptr(40); got > want {
		t.Errorf("sizeof(conn) = %d, want at most %d", got, want)
	}
}

// TestSlotGrowsOnce has loops that accept at the same moment reach a chunk
// not made yet, as they do when the kernel's next numbers cross into it: the
// chunk must be made once, and every caller get a slot in that one.
func TestSlotGrowsOnce(t *testing.T) {
	const callers = 8
	chunk := uint64(unsafe.Sizeof([chunkSize]conn{}))
	for range 200 {
		tab := new(connTable)
		slots := make([]*conn, callers)
		var ready, start, done sync.WaitGroup
		ready.Add(callers)
		start.Add(1)
		done.Add(callers)
		for i := range callers {
			go func() {
				defer done.Done()
				ready.Done()
				start.Wait()
				c, err := tab.slot(3*chunkSize + i)
				if err != nil {
					t.Error(err)
				}
				slots[i] = c
			}()
		}
		ready.Wait()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start.Done()
		done.Wait()
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown >= 2*chunk {
			t.Fatalf("%d callers reaching one new chunk allocated %d bytes: more than one %d-byte chunk", callers, grown, chunk)
		}
		for i, c := range slots {
			if want := tab.get(3*chunkSize + i); c != want {
				t.Fatalf("caller %d got slot %p, the table holds %p", i, c, want)
			}
		}
	}
}

func TestListOrder(t *testing.T) {
	e := new(pollEngine)
	for _, fd := range []int{3, 5, 1030, 7, 2000} {
		if _, err := e.table.slot(fd); err != nil {
			t.Fatal(err)
		}
	}
	walk := func(l list) []int {
		var fds []int
		for fd := l.head; fd >= 0; fd = e.table.get(int(fd)).next {
			fds = append(fds, int(fd))
		}
		var back []int
		for fd := l.tail; fd >= 0; fd = e.table.get(int(fd)).prev {
			back = append(back, int(fd))
		}
		slices.Reverse(back)
		if !slices.Equal(fds, back) {
			t.Fatalf("forward %v, backward %v", fds, back)
		}
		return fds
	}
	l := newList()
	for _, fd := range []int{3, 5, 1030, 7} {
		l.pushBack(e, fd)
	}
	if got, want := walk(l), []int{3, 5, 1030, 7}; !slices.Equal(got, want) {
		t.Fatalf("after pushes: got %v, want %v", got, want)
	}
	l.remove(e, 5)   // middle
	l.remove(e, 3)   // head
	l.pushBack(e, 3) // back again
	l.remove(e, 3)   // tail
	l.pushBack(e, 2000)
	if got, want := walk(l), []int{1030, 7, 2000}; !slices.Equal(got, want) {
		t.Fatalf("after removes: got %v, want %v", got, want)
	}
	for _, fd := range []int{1030, 7, 2000} {
		l.remove(e, fd)
	}
	if l.head != -1 || l.tail != -1 {
		t.Fatalf("emptied list: head %d tail %d, want -1 -1", l.head, l.tail)
	}
}

func TestSlotRange(t *testing.T) {
	var tab connTable
	if _, err := tab.slot(-1); err == nil {
		t.Error("slot(-1) succeeded")
	}
	if _, err := tab.slot(dirSize * chunkSize); err == nil {
		t.Error("slot past the table succeeded")
	}
	c, err := tab.slot(12345)
	if err != nil {
		t.Fatal(err)
	}
	if c != tab.get(12345) || c.prev != -1 || c.next != -1 {
		t.Errorf("fresh slot: prev %d next %d, same %v", c.prev, c.next, c == tab.get(12345))
	}
}

func TestOutBufBounded(t *testing.T) {
	const limit = 64 << 10
	var o outBuf
	var want bytes.Buffer
	chunk := bytes.Repeat([]byte(Answer), 100)
	for want.Len() < limit-len(chunk) {
		o.append(chunk, limit+MaxExpansion)
		want.Write(chunk)
	}
	if cap(o.b) > limit+MaxExpansion {
		t.Errorf("cap %d after filling to %d, want at most %d", cap(o.b), want.Len(), limit+MaxExpansion)
	}
	// Writing half and queueing more reuses the written prefix.
	half := len(o.bytes()) / 2
	o.consume(half)
	want.Next(half)
	o.append(chunk, limit+MaxExpansion)
	want.Write(chunk)
	if cap(o.b) > limit+MaxExpansion {
		t.Errorf("cap %d after compaction, want at most %d", cap(o.b), limit+MaxExpansion)
	}
	if !bytes.Equal(o.bytes(), want.Bytes()) {
		t.Fatal("queued bytes differ from what was appended")
	}
	if !o.consume(len(o.bytes())) {
		t.Error("consume of everything did not report empty")
	}
}

func TestAnswered(t *testing.T) {
	for _, tc := range []struct {
		out     string
		closing bool
		want    int64
	}{
		{"", false, 0},
		{Answer, false, 1},
		{Answer + Answer + Answer, false, 3},
		{Closing, true, 1},
		{Answer + Closing, true, 2},
		{Answer + Answer, true, 2}, // End answering a pending message
	} {
		if got := answered([]byte(tc.out), tc.closing); got != tc.want {
			t.Errorf("answered(%q, %v) = %d, want %d", tc.out, tc.closing, got, tc.want)
		}
	}
}
