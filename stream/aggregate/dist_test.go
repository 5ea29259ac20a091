package aggregate

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

func hist(count uint64, sum float64, buckets []uint64, bounds []float64, mm ...float64) *metrics.HistogramDataPoint {
	h := &metrics.HistogramDataPoint{Count: count, Sum: proto.Float64(sum), BucketCounts: buckets, ExplicitBounds: bounds}
	if len(mm) == 2 {
		h.Min, h.Max = proto.Float64(mm[0]), proto.Float64(mm[1])
	}
	return h
}

func TestHistograms(t *testing.T) {
	b := []float64{1, 5}
	a := New(Config{})
	add(t, a, spec10, mHist,
		P{In: 1, T: 1, Start: 0.5, Hist: hist(3, 6, []uint64{1, 1, 1}, b, 0.5, 7)},
		P{In: 2, T: 1, Start: 0.5, Hist: hist(2, 4, []uint64{0, 2, 0}, b, 2, 3)},
		P{In: 1, T: 2, Start: 0.5, Hist: hist(5, 10, []uint64{1, 2, 2}, b, 0.5, 8)},      // +2
		P{In: 2, T: 3, Start: 0.5, Hist: hist(1, 1, []uint64{1, 0, 0}, b, 1, 1)},         // reset (count down): +whole
		P{In: 3, T: 3, Start: 0.5, Hist: hist(9, 9, []uint64{3, 3, 3}, []float64{2, 5})}, // bounds mismatch
	)
	add(t, a, spec10, mHist, P{In: 1, T: 12, Start: 0.5, Hist: hist(6, 11, []uint64{1, 3, 2}, b, 0.5, 8)})
	got := flush(t, a, true)
	if len(got) != 2 {
		t.Fatalf("%d points, want 2: %v", len(got), got)
	}
	for i, want := range []*metrics.HistogramDataPoint{
		{Count: 5 + 2 + 1, Sum: proto.Float64(10 + 4 + 1), BucketCounts: []uint64{2, 4, 2}, ExplicitBounds: b, Min: proto.Float64(0.5), Max: proto.Float64(8)},
		{Count: 9, Sum: proto.Float64(16), BucketCounts: []uint64{2, 5, 2}, ExplicitBounds: b, Min: proto.Float64(0.5), Max: proto.Float64(8)},
	} {
		h := got[i].Hist
		h.Attributes, h.TimeUnixNano, h.StartTimeUnixNano = nil, 0, 0
		if !proto.Equal(h, want) {
			t.Errorf("point %d: %v, want %v", i, h, want)
		}
	}
	if got[0].Start != 0.5 || got[1].T != 20 {
		t.Errorf("times: %v", got)
	}
	if s := a.Stats()["r"]; s.PointsDropped["bounds_mismatch"] != 1 {
		t.Errorf("dropped %v", s.PointsDropped)
	}

	d := New(Config{})
	add(t, d, spec10, mHistD,
		P{In: 1, T: 1, Hist: hist(3, 6, []uint64{1, 1, 1}, b)},
		P{In: 2, T: 2, Hist: hist(2, 4, []uint64{0, 2, 0}, b, 2, 3)},
		P{In: 1, T: 3, Hist: hist(1, 1, []uint64{1, 0, 0}, b)})
	got = flush(t, d, true)
	want := &metrics.HistogramDataPoint{Count: 6, Sum: proto.Float64(11), BucketCounts: []uint64{2, 3, 1}, ExplicitBounds: b}
	h := got[0].Hist
	h.Attributes, h.TimeUnixNano, h.StartTimeUnixNano = nil, 0, 0
	if len(got) != 1 || !proto.Equal(h, want) {
		t.Errorf("delta: %v, want %v (min/max absent: not every point had them)", got, want)
	}
}

// expIndex is the bucket index of v at scale (OTLP: (base^i, base^(i+1)]).
func expIndex(v float64, scale int32) int64 {
	frac, exp := math.Frexp(v)
	if frac == 0.5 { // exact power of two: lower boundary
		return (int64(exp)-1)<<scale - 1
	}
	return int64(math.Ceil(math.Log2(v)*math.Ldexp(1, int(scale)))) - 1
}

// expPoint builds a point of the values at scale.
func expPoint(vals []float64, scale int32) *metrics.ExponentialHistogramDataPoint {
	p := &metrics.ExponentialHistogramDataPoint{Scale: scale, Count: uint64(len(vals)), Positive: &metrics.ExponentialHistogramDataPoint_Buckets{}, Negative: &metrics.ExponentialHistogramDataPoint_Buckets{}}
	var sum float64
	fill := func(b *metrics.ExponentialHistogramDataPoint_Buckets, idx int64) {
		if len(b.BucketCounts) == 0 {
			b.Offset, b.BucketCounts = int32(idx), []uint64{0}
		}
		for idx < int64(b.Offset) {
			b.BucketCounts = append([]uint64{0}, b.BucketCounts...)
			b.Offset--
		}
		for idx >= int64(b.Offset)+int64(len(b.BucketCounts)) {
			b.BucketCounts = append(b.BucketCounts, 0)
		}
		b.BucketCounts[idx-int64(b.Offset)]++
	}
	for _, v := range vals {
		sum += v
		switch {
		case v == 0:
			p.ZeroCount++
		case v > 0:
			fill(p.Positive, expIndex(v, scale))
		default:
			fill(p.Negative, expIndex(-v, scale))
		}
	}
	p.Sum = proto.Float64(sum)
	return p
}

// counts maps index -> count of b.
func counts(b *metrics.ExponentialHistogramDataPoint_Buckets) map[int64]uint64 {
	m := map[int64]uint64{}
	for i, c := range b.GetBucketCounts() {
		if c != 0 {
			m[int64(b.Offset)+int64(i)] = c
		}
	}
	return m
}

func TestExponentialHistograms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		scales []int32
		spread float64 // values in [-spread, spread] (log-uniform)
	}{
		{"same scale", []int32{3, 3}, 100},
		{"different scales", []int32{5, 2, 0}, 1000},
		{"wide range caps at 160 buckets", []int32{8, 6}, 1e12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{})
			var all []float64
			var pts []P
			for i, sc := range tc.scales {
				var vals []float64
				for range 200 {
					v := math.Exp(rng.Float64() * math.Log(tc.spread))
					if rng.IntN(4) == 0 {
						v = -v
					}
					if rng.IntN(50) == 0 {
						v = 0
					}
					vals = append(vals, v)
				}
				all = append(all, vals...)
				pts = append(pts, P{In: uint64(i + 1), T: 1, Exp: expPoint(vals, sc)})
			}
			add(t, a, spec10, mExpD, pts...)
			got := flush(t, a, true)
			if len(got) != 1 {
				t.Fatalf("%d points", len(got))
			}
			e := got[0].Exp
			if len(e.Positive.GetBucketCounts()) > maxExpBuckets || len(e.Negative.GetBucketCounts()) > maxExpBuckets {
				t.Errorf("more than %d buckets: %d, %d", maxExpBuckets, len(e.Positive.GetBucketCounts()), len(e.Negative.GetBucketCounts()))
			}
			if want := slicesMin(tc.scales); e.Scale > want {
				t.Errorf("scale %d, want <= %d", e.Scale, want)
			}
			// brute force: every raw value at the output's scale
			want := expPoint(all, e.Scale)
			if e.Count != want.Count || e.ZeroCount != want.ZeroCount {
				t.Errorf("count %d zero %d, want %d %d", e.Count, e.ZeroCount, want.Count, want.ZeroCount)
			}
			if diff := cmp.Diff(counts(want.Positive), counts(e.Positive)); diff != "" {
				t.Errorf("positive (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(counts(want.Negative), counts(e.Negative)); diff != "" {
				t.Errorf("negative (-want +got):\n%s", diff)
			}
			if math.Abs(e.GetSum()-want.GetSum()) > 1e-6*math.Abs(want.GetSum()) {
				t.Errorf("sum %v, want %v", e.GetSum(), want.GetSum())
			}
		})
	}

	// cumulative: one input's points at falling scales; the increase is taken at the coarser one
	a := New(Config{})
	v1 := []float64{1.5, 3, 7, 100}
	v2 := append(append([]float64{}, v1...), 2.5, 40)
	add(t, a, spec10, mExp, P{In: 1, T: 1, Start: 1, Exp: expPoint(v1, 4)}, P{In: 2, T: 1, Start: 1, Exp: expPoint([]float64{9}, 4)})
	add(t, a, spec10, mExp, P{In: 1, T: 12, Start: 1, Exp: expPoint(v2, 1)})
	got := flush(t, a, true)
	if len(got) != 2 {
		t.Fatalf("%d points", len(got))
	}
	last := got[1].Exp
	want := expPoint(append(v2, 9), last.Scale)
	if last.Count != 7 || !cmp.Equal(counts(want.Positive), counts(last.Positive)) {
		t.Errorf("cumulative total: count %d %v, want 7 %v", last.Count, counts(last.Positive), counts(want.Positive))
	}
}

func slicesMin(s []int32) int32 {
	m := s[0]
	for _, x := range s {
		m = min(m, x)
	}
	return m
}

func TestSummaries(t *testing.T) {
	s := func(c uint64, sum float64) *metrics.SummaryDataPoint {
		return &metrics.SummaryDataPoint{Count: c, Sum: sum, QuantileValues: []*metrics.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: 1}}}
	}
	drop := New(Config{})
	add(t, drop, spec10, mSum, P{In: 1, T: 1, Sum: s(1, 1)})
	if got := flush(t, drop, true); len(got) != 0 {
		t.Errorf("summary not dropped: %v", got)
	}
	if st := drop.Stats()["r"]; st.PointsDropped["summary"] != 1 {
		t.Errorf("dropped %v", st.PointsDropped)
	}
	a := New(Config{})
	sp := spec10
	sp.Summary = SummaryCountSum
	add(t, a, sp, mSum, P{In: 1, T: 1, Start: 1, Sum: s(10, 100)}, P{In: 2, T: 1, Start: 1, Sum: s(5, 7)}, P{In: 1, T: 2, Start: 1, Sum: s(12, 130)})
	got := flush(t, a, true)
	if len(got) != 1 || got[0].Sum.Count != 17 || got[0].Sum.Sum != 137 || len(got[0].Sum.QuantileValues) != 0 {
		t.Errorf("count_sum: %v, want count 17 sum 137 without quantiles", got)
	}
}

func TestDownscale(t *testing.T) {
	e := expb{off: -3, counts: []uint64{1, 2, 3, 4, 5, 6}} // indices -3..2
	e.downscale(1)                                         // -2,-2,-1,-1,0,0 / -3>>1=-2, -2>>1=-1 ...
	want := expb{off: -2, counts: []uint64{1, 5, 9, 6}}    // -3->-2; -2,-1->-1; 0,1->0; 2->1
	if !cmp.Equal(want, e, cmp.AllowUnexported(expb{})) {
		t.Errorf("got %+v, want %+v", e, want)
	}
}

// The last point of a cumulative histogram input lives in a table whose
// entry a stale input frees for the next new one.
func TestStaleInputFreesDist(t *testing.T) {
	a := New(Config{Stale: time.Minute})
	add(t, a, spec10, mHist, P{In: 1, T: 1, Hist: hist(1, 1, []uint64{1}, nil)}, P{In: 2, T: 1, Hist: hist(1, 1, []uint64{1}, nil)})
	for ts := 11.0; ts < 100; ts += 10 {
		add(t, a, spec10, mHist, P{In: 1, T: ts, Hist: hist(uint64(ts), 1, []uint64{uint64(ts)}, nil)})
		flush(t, a, false)
	}
	// The table also holds the merged points of open intervals.
	open := 0
	for _, s := range a.series {
		for _, iv := range s.open {
			if iv.x != 0 && a.ext[iv.x].d != 0 {
				open++
			}
		}
	}
	n := len(a.dists)
	if s, used := a.Stats()["r"], n-1-len(a.distFree); s.InputSeries != 1 || used != 1+open {
		t.Fatalf("after input 2 went stale: %d inputs, %d entries in use; want 1, %d (the input's and %d open intervals')", s.InputSeries, used, 1+open, open)
	}
	add(t, a, spec10, mHist, P{In: 3, T: 101, Hist: hist(1, 1, []uint64{1}, nil)})
	if len(a.dists) != n {
		t.Errorf("input 3: %d entries, want %d: its last point and its interval in free ones", len(a.dists), n)
	}
}
