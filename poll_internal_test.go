package poll

import (
	"testing"
	"time"
)

func TestTimeoutMillis(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want int
	}{
		{-1, -1},
		{-time.Hour, -1},
		{0, 0},
		{1, 1},
		{time.Millisecond - 1, 1},
		{time.Millisecond, 1},
		{time.Millisecond + 1, 2},
		{50 * time.Millisecond, 50},
		{time.Second, 1000},
		{(1<<31 - 1) * time.Millisecond, 1<<31 - 1},
		{1 << 62, 1<<31 - 1},
	} {
		if got := timeoutMillis(c.in); got != c.want {
			t.Errorf("timeoutMillis(%v): got %d, want %d", c.in, got, c.want)
		}
	}
}
