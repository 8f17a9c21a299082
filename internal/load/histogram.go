package load

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, in the manner of HdrHistogram: values below
// subCount nanoseconds get a bucket each, and every power of two above that
// is cut into halfCount equal buckets. A bucket is thus never wider than
// 1/halfCount of its lowest value, and Quantile, which answers with the
// bucket's midpoint, is within half that (0.4%) of the true value.
const (
	subBits   = 8
	subCount  = 1 << subBits // 256
	halfCount = subCount / 2 // 128

	// histMax is the largest value kept exactly in its bucket, about 68.7s;
	// larger values are counted in the last bucket (Max stays exact).
	histMax = 1<<36 - 1

	histBuckets = (36-subBits)*halfCount + subCount // index(histMax) + 1
)

// Histogram counts latencies from 1ns to about 68s with under 1% error.
// Record allocates nothing and costs a few instructions; histograms of
// several loops combine with Merge. The zero value is empty and ready to
// use. A Histogram is not safe for concurrent use.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// bucketOf returns the bucket index of a value in nanoseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	if v > histMax {
		v = histMax
	}
	shift := bits.Len64(v) - subBits
	return shift*halfCount + int(v>>uint(shift))
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < subCount {
		return uint64(i), 1
	}
	shift := i/halfCount - 1
	sub := uint64(i - shift*halfCount)
	return sub << uint(shift), 1 << uint(shift)
}

// Record adds one value. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest value recorded, or 0.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest value recorded, or 0.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the average of the values recorded, or 0.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.n)))
}

// Quantile returns the value below or at which a fraction q of the recorded
// values lie (q = 0.99 for the 99th percentile), or 0 if h is empty. The
// answer is the middle of the bucket holding that value, clamped to the
// smallest and largest values recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := max(uint64(math.Ceil(q*float64(h.n))), 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := int64(low + width/2)
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
