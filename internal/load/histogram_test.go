package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// within reports whether got is within frac of want.
func within(got, want time.Duration, frac float64) bool {
	return math.Abs(float64(got-want)) <= frac*float64(want)+1
}

func TestBucketsAreContiguous(t *testing.T) {
	prevLow, prevWidth := bucketRange(0)
	for i := 1; i < histBuckets; i++ {
		low, width := bucketRange(i)
		if low != prevLow+prevWidth {
			t.Fatalf("bucket %d starts at %d, want %d", i, low, prevLow+prevWidth)
		}
		if got := bucketOf(low); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", low, got, i)
		}
		if got := bucketOf(low + width - 1); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", low+width-1, got, i)
		}
		if low >= subCount && float64(width) > float64(low)/halfCount {
			t.Fatalf("bucket %d is %d wide at %d: over 1/%d", i, width, low, halfCount)
		}
		prevLow, prevWidth = low, width
	}
	if got, want := prevLow+prevWidth-1, uint64(histMax); got != want {
		t.Errorf("last bucket ends at %d, want %d", got, want)
	}
	if got := bucketOf(math.MaxUint64); got != histBuckets-1 {
		t.Errorf("bucketOf(MaxUint64) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestQuantileUniform(t *testing.T) {
	// 1µs, 2µs, ... 100ms: the q-quantile is q × 100ms.
	var h Histogram
	const n = 100_000
	for i := 1; i <= n; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := time.Duration(math.Ceil(q*n)) * time.Microsecond
		if got := h.Quantile(q); !within(got, want, 0.01) {
			t.Errorf("Quantile(%v) = %v, want %v ± 1%%", q, got, want)
		}
	}
	if got, want := h.Count(), uint64(n); got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if got, want := h.Min(), time.Microsecond; got != want {
		t.Errorf("Min = %v, want %v", got, want)
	}
	if got, want := h.Max(), 100*time.Millisecond; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if got, want := h.Mean(), 50000500*time.Nanosecond; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

func TestQuantileLogNormal(t *testing.T) {
	// A long-tailed distribution from 1µs to seconds, compared with the
	// exact order statistics of the same sample.
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 200_000)
	for i := range vals {
		v := time.Duration(math.Exp(rng.NormFloat64()*2+math.Log(50e3))) + time.Microsecond
		vals[i] = min(v, 60*time.Second)
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
		want := vals[int(math.Ceil(q*float64(len(vals))))-1]
		if got := h.Quantile(q); !within(got, want, 0.01) {
			t.Errorf("Quantile(%v) = %v, want %v ± 1%%", q, got, want)
		}
	}
}

func TestQuantileEdges(t *testing.T) {
	var h Histogram
	if got := h.Quantile(0.99); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
	h.Record(-5)
	h.Record(0)
	if got := h.Quantile(1); got != 0 {
		t.Errorf("Quantile(1) of zeros = %v, want 0", got)
	}
	h.Reset()
	// Beyond the range: counted in the last bucket, Max exact.
	h.Record(3 * time.Minute)
	if got, want := h.Max(), 3*time.Minute; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if got := h.Quantile(0.5); got < 60*time.Second || got > 3*time.Minute {
		t.Errorf("Quantile(0.5) = %v, want between 60s and 3m", got)
	}
	h.Reset()
	// One value: every quantile is that value, exactly.
	h.Record(123456789)
	for _, q := range []float64{0, 0.5, 1} {
		if got, want := h.Quantile(q), time.Duration(123456789); got != want {
			t.Errorf("Quantile(%v) of one value = %v, want %v", q, got, want)
		}
	}
}

func TestMerge(t *testing.T) {
	// Merging per-loop histograms equals recording everything in one.
	rng := rand.New(rand.NewPCG(3, 4))
	var parts [4]Histogram
	var all, merged Histogram
	for range 50_000 {
		v := time.Duration(rng.ExpFloat64() * 1e5)
		parts[rng.IntN(len(parts))].Record(v)
		all.Record(v)
	}
	for i := range parts {
		merged.Merge(&parts[i])
	}
	merged.Merge(new(Histogram))
	if merged.counts != all.counts || merged.n != all.n || merged.min != all.min || merged.max != all.max {
		t.Fatal("merged histogram differs from the one that recorded everything")
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if got, want := merged.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("merged Quantile(%v) = %v, want %v", q, got, want)
		}
	}
}

func TestRecordAllocs(t *testing.T) {
	h := new(Histogram)
	d := time.Duration(1)
	if got := testing.AllocsPerRun(1000, func() {
		h.Record(d)
		d = d*3 + 7
	}); got != 0 {
		t.Errorf("Record allocates %v times, want 0", got)
	}
}

func BenchmarkRecord(b *testing.B) {
	h := new(Histogram)
	var d time.Duration
	for b.Loop() {
		h.Record(d)
		d += 997
	}
}
