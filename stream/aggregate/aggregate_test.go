package aggregate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/sluice-dev/sluice/schemas"
)

var spec10 = Spec{Rule: "r", Interval: 10 * time.Second, Grace: 5 * time.Second}

func num(t, start, v float64, isInt bool) R {
	return R{Tenant: "t1", Kind: schemas.MetricSum, T: t, Start: start, V: v, Int: isInt, Attrs: "job=api"}
}

func TestSums(t *testing.T) {
	type step struct {
		pts   []P
		force bool
		want  []R
	}
	cases := []struct {
		name  string
		m     M
		steps []step
		stats func(t *testing.T, s RuleStats)
	}{
		{
			name: "first point counts whole, increases summed over inputs",
			m:    mCum,
			steps: []step{
				{pts: []P{{In: 1, T: 1, Start: 0.5, V: 100, Int: true}, {In: 2, T: 2, Start: 0.2, V: 7, Int: true}}},
				{pts: []P{{In: 1, T: 11, Start: 0.5, V: 110, Int: true}, {In: 2, T: 12, Start: 0.2, V: 10, Int: true}}, force: true,
					want: []R{num(10, 0.2, 107, true), num(20, 0.2, 120, true)}},
			},
		},
		{
			name: "reset by value drop and by start change",
			m:    mCum,
			steps: []step{
				{pts: []P{
					{In: 1, T: 1, Start: 1, V: 50}, {In: 1, T: 2, Start: 1, V: 60}, // +60
					{In: 1, T: 3, Start: 1, V: 5},   // value drop: +5
					{In: 1, T: 4, Start: 3.5, V: 8}, // start change: +8
					{In: 1, T: 5, Start: 3.5, V: 9}, // +1
				}, force: true, want: []R{num(10, 1, 74, false)}},
			},
		},
		{
			name: "out of order and duplicates dropped, nothing lost",
			m:    mCum,
			steps: []step{
				{pts: []P{{In: 1, T: 2, Start: 1, V: 20}, {In: 1, T: 1, Start: 1, V: 10}, {In: 1, T: 2, Start: 1, V: 20}, {In: 1, T: 3, Start: 1, V: 25}},
					force: true, want: []R{num(10, 1, 25, false)}},
				// an at-least-once replay of the same points adds nothing and emits nothing
				{pts: []P{{In: 1, T: 2, Start: 1, V: 20}, {In: 1, T: 3, Start: 1, V: 25}}, force: true},
			},
			stats: func(t *testing.T, s RuleStats) {
				if s.PointsOutOfOrder != 4 || s.PointsMerged != 2 {
					t.Errorf("out of order %d merged %d, want 4 and 2", s.PointsOutOfOrder, s.PointsMerged)
				}
			},
		},
		{
			name: "output never goes back when an input disappears",
			m:    mCum,
			steps: []step{
				{pts: []P{{In: 1, T: 1, V: 10, Int: true}, {In: 2, T: 1, V: 20, Int: true}}},
				{pts: []P{{In: 1, T: 11, V: 15, Int: true}}, force: true, want: []R{num(10, 0, 30, true), num(20, 0, 35, true)}},
			},
		},
		{
			name: "int then double goes double",
			m:    mCum,
			steps: []step{
				{pts: []P{{In: 1, T: 1, V: 10, Int: true}, {In: 2, T: 1, V: 0.5}}, force: true, want: []R{num(10, 0, 10.5, false)}},
			},
		},
		{
			name: "delta sums summed per interval",
			m:    mDelta,
			steps: []step{
				{pts: []P{{In: 1, T: 1, V: 3, Int: true}, {In: 2, T: 2, V: 4, Int: true}, {In: 1, T: 5, V: 1, Int: true}, {In: 1, T: 12, V: 2, Int: true}},
					force: true, want: []R{num(10, 0, 8, true), num(20, 10, 2, true)}},
			},
		},
		{
			name: "no_value flag dropped",
			m:    mDelta,
			steps: []step{
				{pts: []P{{In: 1, T: 1, V: 3, Int: true}, {In: 2, T: 2, V: 4, Int: true, Flags: 1}}, force: true, want: []R{num(10, 0, 3, true)}},
			},
			stats: func(t *testing.T, s RuleStats) {
				if s.PointsDropped["no_value"] != 1 {
					t.Errorf("dropped %v", s.PointsDropped)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{})
			for i, st := range tc.steps {
				add(t, a, spec10, tc.m, st.pts...)
				got := flush(t, a, st.force)
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("step %d (-want +got):\n%s", i, diff)
				}
			}
			if tc.stats != nil {
				tc.stats(t, a.Stats()["r"])
			}
		})
	}
}

func TestGauges(t *testing.T) {
	pts := []P{
		{In: 1, T: 1, V: 5, Int: true}, {In: 1, T: 3, V: 7, Int: true}, // latest of input 1: 7
		{In: 2, T: 2, V: 1, Int: true},
		{In: 3, T: 3, V: 4, Int: true}, // same time as input 1's latest: larger hash (3) wins Last
	}
	dbl := append([]P{{In: 4, T: 1, V: 0.5}}, pts...)
	cases := []struct {
		f     GaugeFunc
		pts   []P
		v     float64
		isInt bool
	}{
		{GaugeLast, pts, 4, true}, {GaugeSum, pts, 12, true}, {GaugeMin, pts, 1, true}, {GaugeMax, pts, 7, true},
		{GaugeAvg, pts, 4, false}, {GaugeCount, pts, 3, true},
		{GaugeSum, dbl, 12.5, false}, {GaugeMin, dbl, 0.5, false}, {GaugeLast, dbl, 4, true}, {GaugeCount, dbl, 4, true},
	}
	for _, tc := range cases {
		for _, m := range []M{mGauge, mUpDown} {
			t.Run(fmt.Sprintf("%v/%d/%d", tc.f, m.Kind, len(tc.pts)), func(t *testing.T) {
				a := New(Config{})
				sp := spec10
				sp.Gauge = tc.f
				add(t, a, sp, m, tc.pts...)
				add(t, a, sp, m, P{In: 1, T: 15, V: 100, Int: true}) // next interval: not in the first
				got := flush(t, a, false)
				want := []R{{Tenant: "t1", Kind: m.Kind, T: 10, V: tc.v, Int: tc.isInt, Attrs: "job=api"}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestLateAndGrace(t *testing.T) {
	a := New(Config{})
	// interval [0,10) closes when the watermark reaches 15
	add(t, a, spec10, mCum, P{In: 1, T: 1, V: 1}, P{In: 2, T: 1, V: 1})
	add(t, a, spec10, mCum, P{In: 1, T: 14, V: 2})
	add(t, a, spec10, mCum, P{In: 2, T: 9, V: 5}) // late but within grace: counted in [0,10)
	if got, want := flush(t, a, false), []R(nil); !cmp.Equal(got, want) {
		t.Fatalf("flushed before the watermark passed end+grace: %v", got)
	}
	add(t, a, spec10, mCum, P{In: 1, T: 16, V: 3})
	got := flush(t, a, false)
	if diff := cmp.Diff([]R{num(10, 0, 6, false)}, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// beyond grace: [0,10) is closed; input 2's increase goes to the oldest open interval
	add(t, a, spec10, mCum, P{In: 2, T: 9.5, V: 9})
	add(t, a, spec10, mCum, P{In: 1, T: 40, V: 4})
	got = flush(t, a, false)
	// [10,20): input 1 +1 (14) +1 (16) + input 2's late +4 = 12; [20,30) empty; [30,40) open
	if diff := cmp.Diff([]R{num(20, 0, 12, false)}, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	got = flush(t, a, true)
	if diff := cmp.Diff([]R{num(50, 0, 13, false)}, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if s := a.Stats()["r"]; s.PointsLate != 1 {
		t.Errorf("late %d, want 1", s.PointsLate)
	}

	// gauges: a late point is dropped
	g := New(Config{})
	add(t, g, spec10, mGauge, P{In: 1, T: 1, V: 1}, P{In: 1, T: 30, V: 2}, P{In: 2, T: 3, V: 100})
	got = flush(t, g, true)
	want := []R{{Tenant: "t1", Kind: schemas.MetricGauge, T: 10, V: 1, Attrs: "job=api"}, {Tenant: "t1", Kind: schemas.MetricGauge, T: 40, V: 2, Attrs: "job=api"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if s := g.Stats()["r"]; s.PointsLate != 1 {
		t.Errorf("gauge late %d, want 1", s.PointsLate)
	}
}

func TestIdleWatermark(t *testing.T) {
	a := New(Config{})
	b, in, out := batchOf(t, mDelta, []P{{In: 1, T: 1, V: 1}})
	defer b.Release()
	wall := time.Unix(5000, 0)
	if err := a.Add("t1", b, in, out, spec10, wall); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after time.Duration
		n     int
	}{{0, 0}, {5 * time.Second, 0}, {10 * time.Second, 0}, {18 * time.Second, 0}, {19 * time.Second, 1}, {40 * time.Second, 0}} {
		outs, err := a.Flush(wall.Add(c.after), false)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(decode(t, outs)); got != c.n {
			t.Errorf("after %v idle: %d points, want %d", c.after, got, c.n)
		}
	}
}

func TestStale(t *testing.T) {
	a := New(Config{Stale: time.Minute})
	add(t, a, spec10, mCum, P{In: 1, T: 1, V: 10}, P{In: 2, T: 1, V: 5})
	flush(t, a, true)
	// input 1 keeps reporting; input 2 goes quiet for more than Stale
	for ts := 11.0; ts < 100; ts += 10 {
		add(t, a, spec10, mCum, P{In: 1, T: ts, V: 10})
		flush(t, a, false)
	}
	if s := a.Stats()["r"]; s.InputSeries != 1 || s.OutputSeries != 1 {
		t.Fatalf("after input 2 went stale: %d inputs, %d outputs; want 1, 1", s.InputSeries, s.OutputSeries)
	}
	// it comes back: a new input, its value counts whole again
	add(t, a, spec10, mCum, P{In: 2, T: 101, V: 6})
	got := flush(t, a, true)
	// 90 and 100: input 1 unchanged, input 2's 5 stays in the total
	if diff := cmp.Diff([]R{num(90, 0, 15, false), num(100, 0, 15, false), num(110, 0, 21, false)}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// the whole output goes stale
	add(t, a, spec10, mCum, P{Out: 2, In: 9, T: 300, V: 1})
	flush(t, a, true)
	add(t, a, spec10, mCum, P{Out: 2, In: 9, T: 310, V: 1})
	flush(t, a, true)
	if s := a.Stats()["r"]; s.OutputSeries != 1 || s.InputSeries != 1 {
		t.Fatalf("after output 1 went stale: %d inputs, %d outputs; want 1, 1", s.InputSeries, s.OutputSeries)
	}
}

func TestTenantsApart(t *testing.T) {
	a := New(Config{})
	addTenant(t, a, "a", spec10, mDelta, P{In: 1, T: 1, V: 1, Int: true})
	addTenant(t, a, "b", spec10, mDelta, P{In: 1, T: 1, V: 2, Int: true})
	got := flush(t, a, true)
	want := []R{{Tenant: "a", Kind: schemas.MetricSum, T: 10, V: 1, Int: true, Attrs: "job=api"}, {Tenant: "b", Kind: schemas.MetricSum, T: 10, V: 2, Int: true, Attrs: "job=api"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLimit(t *testing.T) {
	a := New(Config{})
	sp := spec10
	sp.Limit = 10
	var pts []P
	for i := range 20 {
		pts = append(pts, P{In: uint64(100 + i), Out: uint64(1000 + i), T: 1, V: float64(i), Int: true, Attrs: []string{"series", fmt.Sprint(i)}})
	}
	add(t, a, sp, mDelta, pts...)
	got := flush(t, a, true)
	var want []R
	for i := range 10 {
		want = append(want, R{Tenant: "t1", Kind: schemas.MetricSum, T: 10, V: float64(i), Int: true, Attrs: fmt.Sprint("series=", i)})
	}
	want = append(want, R{Tenant: "t1", Kind: schemas.MetricSum, T: 10, V: 10 + 11 + 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19, Int: true, Attrs: "otel.metric.overflow=true"})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if s := a.Stats()["r"]; s.SeriesFolded != 10 || s.OutputSeries != 11 || !maps.Equal(s.FoldedByMetric, map[string]uint64{"requests": 10}) {
		t.Errorf("folded %d %v, outputs %d; want 10 of %s, 11", s.SeriesFolded, s.FoldedByMetric, s.OutputSeries, "requests")
	}
	// The counts by metric are part of the snapshot.
	var buf bytes.Buffer
	if err := a.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(&buf, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Stats()["r"].FoldedByMetric; !maps.Equal(got, a.Stats()["r"].FoldedByMetric) {
		t.Errorf("restored: folded by metric %v", got)
	}
}

// Snapshots of versions 1 (before the folded series by metric) and 2 (an
// empty distribution written for every interval without one, compressed
// with zstd) restore.
func TestRestoreVersion1(t *testing.T) {
	a := New(Config{})
	add(t, a, spec10, mCum, P{In: 1, T: 1, V: 1})
	var buf bytes.Buffer
	if err := a.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	want := flush(t, a, true)
	if len(want) != 1 {
		t.Fatalf("flushed %v, want one point", want)
	}
	v3, err := payload(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 has an empty distribution after the interval table's one
	// entry (the unused entry 0: no gauge entries, no distribution), which
	// the free list (empty) follows.
	tail := []byte{1, 0, 0, 0}
	if !bytes.HasSuffix(v3, tail) {
		t.Fatalf("the snapshot ends in %v, want the interval table %v", v3[len(v3)-len(tail):], tail)
	}
	empty := &writer{}
	empty.dist(&dist{})
	raw := slices.Concat(v3[:len(v3)-1], empty.b, v3[len(v3)-1:])
	raw[len(snapMagic)] = 2
	// Compressed as version 2 was written: a zstd frame.
	v2, err := Restore(bytes.NewReader(zstdSnapshot(t, raw)), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := flush(t, v2, true); !cmp.Equal(got, want) {
		t.Errorf("version 2 restored: %+v, want %+v", got, want)
	}
	// Version 1 is version 2 without each rule's count of folded metrics
	// (one 0 byte here, after the rule's counters).
	r := &reader{p: raw[len(snapMagic)+1:]}
	r.varint()
	r.varint()
	r.varint()
	for range r.count(1) {
		r.str()
	}
	if r.count(1) != 1 {
		t.Fatal("want one rule")
	}
	r.str()
	for range 5 + nDrop {
		r.uvarint()
	}
	at := len(raw) - len(r.p)
	if raw[at] != 0 {
		t.Fatalf("byte %d is %d, want the empty count", at, raw[at])
	}
	v1 := append(append([]byte{}, raw[:at]...), raw[at+1:]...)
	v1[len(snapMagic)] = 1
	b, err := decodeSnapshot(v1, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := flush(t, b, true); !cmp.Equal(got, want) {
		t.Errorf("version 1 restored: %+v, want %+v", got, want)
	}
}

func TestTypeChange(t *testing.T) {
	a := New(Config{})
	add(t, a, spec10, mCum, P{In: 1, T: 1, V: 1})
	add(t, a, spec10, mDelta, P{In: 2, T: 2, V: 1}) // same output hash, other temporality
	got := flush(t, a, true)
	if diff := cmp.Diff([]R{num(10, 0, 1, false)}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if s := a.Stats()["r"]; s.PointsDropped["type_change"] != 1 {
		t.Errorf("dropped %v", s.PointsDropped)
	}
}

// A point without a time counts at the now of its Add.
func TestTimelessPointTakesNow(t *testing.T) {
	a := New(Config{})
	add(t, a, spec10, mGauge, P{In: 1, T: 0, V: 5})
	got := flush(t, a, true)
	if len(got) != 1 || got[0].T != 1010 || got[0].V != 5 {
		t.Fatalf("got %+v, want one point at 1010 (the end of now's interval)", got)
	}
}

// A point from the future (another tenant's clock) does not move the
// watermark past the wall clock: the points of other series stay on time.
func TestFuturePointDoesNotCloseOthers(t *testing.T) {
	a := New(Config{})
	addTenant(t, a, "t2", spec10, mGauge, P{In: 1, T: 100000, V: 1})
	add(t, a, spec10, mGauge, P{In: 2, T: 995, V: 7})
	if st := a.Stats()["r"]; st.PointsLate != 0 {
		t.Fatalf("%d points late", st.PointsLate)
	}
	var t1 []R
	for _, r := range flush(t, a, true) {
		if r.Tenant == "t1" {
			t1 = append(t1, r)
		}
	}
	if len(t1) != 1 || t1[0].V != 7 || t1[0].T != 1000 {
		t.Fatalf("tenant t1: %+v", t1)
	}
}

// An Aggregator holds maxSpecs specs (a series keeps a uint16): the last
// one works, through a snapshot too; a further one is an error that
// leaves no trace.
func TestSpecLimit(t *testing.T) {
	a := New(Config{})
	for i := range maxSpecs - 1 {
		if _, err := a.specID(Spec{Rule: "r", Interval: time.Second, Limit: i + 1}); err != nil {
			t.Fatal(err)
		}
	}
	add(t, a, spec10, mDelta, P{In: 1, T: 1, V: 3, Int: true}) // the last spec
	var buf bytes.Buffer
	if err := a.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(&buf, Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, in, out := batchOf(t, mDelta, []P{{In: 1, T: 2, V: 1, Int: true}})
	defer b.Release()
	over := spec10
	over.Rule = "over"
	if err := r.Add("t1", b, in, out, over, time.Unix(1000, 0)); err == nil {
		t.Fatal("Add with one spec too many succeeded")
	}
	if _, ok := r.Stats()["over"]; ok {
		t.Error("the refused spec's rule is in the stats")
	}
	want := []R{{Tenant: "t1", Kind: schemas.MetricSum, T: 10, V: 3, Int: true, Attrs: "job=api"}}
	if diff := cmp.Diff(want, flush(t, r, true)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// An interval's count of points saturates below the bit that says its sum
// is a double.
func TestIntervalCountSaturates(t *testing.T) {
	var iv ival
	addNum(&iv, 1, true)
	iv.countPoint()
	iv.n = ivCount - 1
	iv.countPoint()
	iv.countPoint()
	if iv.points() != ivCount || iv.isDouble() || iv.v != 1 {
		t.Fatalf("after saturating: %d points, double %v, v %d", iv.points(), iv.isDouble(), iv.v)
	}
	addNum(&iv, math.Float64bits(0.5), false)
	iv.countPoint()
	if iv.points() != ivCount || !iv.isDouble() || math.Float64frombits(iv.v) != 1.5 {
		t.Fatalf("after a double: %d points, double %v, v %v", iv.points(), iv.isDouble(), math.Float64frombits(iv.v))
	}
}

// TestSourcesWatermark: the watermark follows the slowest source that is
// not idle. A source running ahead (a backlog drained partition after
// partition) does not make another's points late; a source silent for
// longer than the grace stops holding it back; expected sources
// (Config.Sources) hold it until they are heard from or silent that long.
func TestSourcesWatermark(t *testing.T) {
	wall := time.Unix(5000, 0)
	addFrom := func(a *Aggregator, src int32, wall time.Time, pts ...P) {
		t.Helper()
		b, in, out := batchOf(t, mGauge, pts)
		defer b.Release()
		if err := a.AddFrom(src, "t1", b, in, out, spec10, wall); err != nil {
			t.Fatal(err)
		}
	}
	flushAt := func(a *Aggregator, wall time.Time) []R {
		t.Helper()
		outs, err := a.Flush(wall, false)
		if err != nil {
			t.Fatal(err)
		}
		return decode(t, outs)
	}
	gauge := func(ts, v float64) R {
		return R{Tenant: "t1", Kind: schemas.MetricGauge, T: ts, V: v, Attrs: "job=api"}
	}

	a := New(Config{Sources: 2})
	addFrom(a, 0, wall, P{In: 1, T: 1, V: 1}, P{In: 1, T: 100, V: 2}) // source 0 runs 100 s ahead
	addFrom(a, 1, wall, P{In: 2, T: 2, V: 3}, P{In: 2, T: 12, V: 4})
	if s := a.Stats()["r"]; s.PointsLate != 0 {
		t.Fatalf("%d points of the slower source late", s.PointsLate)
	}
	if got := flushAt(a, wall); len(got) != 0 {
		t.Fatalf("flushed %v while source 1 is at 12 s", got)
	}
	addFrom(a, 1, wall, P{In: 2, T: 30, V: 5}) // [0,10) and [10,20) close
	if diff := cmp.Diff([]R{gauge(10, 3), gauge(20, 4)}, flushAt(a, wall)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// Source 1 falls silent: a minute later source 0 leads alone, and
	// what source 1 sends then is late.
	addFrom(a, 0, wall.Add(time.Minute), P{In: 1, T: 110, V: 6})
	addFrom(a, 1, wall.Add(time.Minute+time.Second), P{In: 2, T: 40, V: 7})
	if s := a.Stats()["r"]; s.PointsLate != 1 {
		t.Fatalf("%d points late, want the one source 1 sent after it fell silent", s.PointsLate)
	}

	e := New(Config{Sources: 2})
	addFrom(e, 0, wall, P{In: 1, T: 1, V: 1}, P{In: 1, T: 100, V: 2})
	if got := flushAt(e, wall); len(got) != 0 {
		t.Fatalf("flushed %v before source 1 was heard from", got)
	}
	// No more points: at the next flush past the grace, source 1 has been
	// silent too long to hold the watermark.
	if diff := cmp.Diff([]R{gauge(10, 1)}, flushAt(e, wall.Add(10*time.Second))); diff != "" {
		t.Fatalf("source 1 silent past the grace: (-want +got):\n%s", diff)
	}

	// A source whose points went elsewhere tells its progress: it moves
	// the watermark at once, and only as far as it says.
	p := New(Config{Sources: 2})
	addFrom(p, 0, wall, P{In: 1, T: 1, V: 1}, P{In: 1, T: 12, V: 2}, P{In: 1, T: 100, V: 3})
	p.Progress(1, int64(16*time.Second), wall)
	if diff := cmp.Diff([]R{gauge(10, 1)}, flushAt(p, wall)); diff != "" {
		t.Fatalf("source 1 at 16 s: (-want +got):\n%s", diff)
	}
	p.Progress(1, int64(40*time.Second), wall)
	if diff := cmp.Diff([]R{gauge(20, 2)}, flushAt(p, wall)); diff != "" {
		t.Fatalf("source 1 at 40 s: (-want +got):\n%s", diff)
	}
	p.Progress(1, int64(30*time.Second), wall) // never backwards
	addFrom(p, 1, wall, P{In: 2, T: 36, V: 4})
	if s := p.Stats()["r"]; s.PointsLate != 0 {
		t.Fatalf("%d points late, want none: [30 s, 40 s) stays open until the watermark passes 45 s", s.PointsLate)
	}
	// Once it tells its progress, a source's points no longer move it: a
	// batch is in series order, and the second series' older point is
	// not late for the first's newer one.
	addFrom(p, 1, wall, P{In: 3, T: 70, V: 5}, P{In: 4, T: 45, V: 6})
	if s := p.Stats()["r"]; s.PointsLate != 0 {
		t.Fatalf("%d points late, want none: source 1 said it is at 40 s", s.PointsLate)
	}
	if got := flushAt(p, wall); len(got) != 0 {
		t.Fatalf("flushed %v before source 1 told it passed 40 s", got)
	}
	p.Progress(1, int64(70*time.Second), wall)
	if got := flushAt(p, wall); len(got) != 2 || got[1] != gauge(50, 6) {
		t.Fatalf("source 1 at 70 s: flushed %v, want [30 s, 40 s) and [40 s, 50 s) with 6", got)
	}
	// A source that stopped telling (a worker of an older version) is
	// moved by its points again.
	later := wall.Add(time.Duration(toldFor) + time.Second)
	addFrom(p, 1, later, P{In: 3, T: 90, V: 8})
	addFrom(p, 0, later, P{In: 1, T: 200, V: 7})
	if got := flushAt(p, later); len(got) != 1 || got[0] != gauge(80, 5) {
		t.Fatalf("source 1's points at 90 s: flushed %v, want [70 s, 80 s) with 5", got)
	}
}

// A source behind (its raw partition not yet all read by the workers) holds
// the watermark however long it is silent, and stops the wall clock from
// moving an idle one: a worker that stalls past the grace does not make the
// points it sends next late. The same calls without Behind do.
func TestBehindHoldsTheWatermark(t *testing.T) {
	wall := time.Unix(5000, 0)
	stall := wall.Add(time.Minute)
	run := func(tell bool) (late uint64, flushed []R) {
		a := New(Config{Sources: 2})
		add := func(src int32, at time.Time, pts ...P) {
			t.Helper()
			b, in, out := batchOf(t, mGauge, pts)
			defer b.Release()
			if err := a.AddFrom(src, "t1", b, in, out, spec10, at); err != nil {
				t.Fatal(err)
			}
		}
		add(0, wall, P{In: 1, T: 1, V: 1}, P{In: 1, T: 100, V: 2})
		add(1, wall, P{In: 2, T: 2, V: 3}, P{In: 2, T: 12, V: 4})
		if tell {
			a.Behind(stall, func(src int32) bool { return src == 1 })
		}
		add(0, stall, P{In: 1, T: 110, V: 5})
		add(1, stall.Add(time.Second), P{In: 2, T: 13, V: 6}, P{In: 2, T: 40, V: 7})
		outs, err := a.Flush(stall.Add(time.Second), false)
		if err != nil {
			t.Fatal(err)
		}
		return a.Stats()["r"].PointsLate, decode(t, outs)
	}
	if late, got := run(true); late != 0 || len(got) != 2 || got[1].V != 6 {
		t.Fatalf("source 1 behind through the stall: %d late, flushed %v; want none late and [10 s, 20 s) closed with 6", late, got)
	}
	if late, _ := run(false); late != 2 {
		t.Fatalf("without Behind: %d late, want both of source 1's points after the stall", late)
	}
	// An idle watermark stays while a source is behind, and follows the
	// wall clock again a grace after it is not.
	e := New(Config{Sources: 1})
	b, in, out := batchOf(t, mGauge, []P{{In: 1, T: 1, V: 1}})
	defer b.Release()
	if err := e.AddFrom(0, "t1", b, in, out, spec10, wall); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after  time.Duration
		behind bool
		n      int
	}{{30 * time.Second, true, 0}, {40 * time.Second, true, 0}, {58 * time.Second, false, 0}, {59 * time.Second, false, 1}} {
		at := wall.Add(c.after)
		e.Behind(at, func(int32) bool { return c.behind })
		outs, err := e.Flush(at, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(decode(t, outs)); got != c.n {
			t.Errorf("%v after the point, behind %v: %d points, want %d", c.after, c.behind, got, c.n)
		}
	}

	// Behind without end: a source that sends nothing is held for MaxHold,
	// then falls silent.
	h := New(Config{Sources: 1})
	if err := h.AddFrom(0, "t1", b, in, out, spec10, wall); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after time.Duration
		n     int
	}{{MaxHold, 0}, {MaxHold + 20*time.Second, 1}} {
		at := wall.Add(c.after)
		h.Behind(at, func(int32) bool { return true })
		outs, err := h.Flush(at, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(decode(t, outs)); got != c.n {
			t.Errorf("behind for %v without a point: %d points flushed, want %d", c.after, got, c.n)
		}
	}
}

// Progress records that come before any point (a raw partition whose points
// went to other aggregation partitions) do not make the other sources
// silent: there is no grace yet to be silent for, and their points, which
// come next, are not late.
func TestProgressBeforeAnyPoint(t *testing.T) {
	wall := time.Unix(5000, 0)
	a := New(Config{Sources: 2})
	a.Progress(0, int64(100*time.Second), wall)
	a.Progress(0, int64(101*time.Second), wall.Add(time.Millisecond))
	if outs, err := a.Flush(wall.Add(2*time.Millisecond), false); err != nil || len(outs) != 0 {
		t.Fatalf("flushed %d outputs (%v) before any point", len(outs), err)
	}
	b, in, out := batchOf(t, mGauge, []P{{In: 1, T: 10, V: 1}})
	defer b.Release()
	if err := a.AddFrom(1, "t1", b, in, out, spec10, wall.Add(3*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats()["r"]; s.PointsLate != 0 {
		t.Fatalf("%d points of source 1 late after source 0's progress records", s.PointsLate)
	}
	if wm, _ := a.Watermark(); wm != int64(10*time.Second) {
		t.Fatalf("watermark %v, want source 1's 10s", time.Duration(wm))
	}
}

// A Flush that closes more than flushChunk points returns them in parts,
// every point once.
func TestFlushInParts(t *testing.T) {
	a := New(Config{})
	const n = flushChunk + flushChunk/2
	pts := make([]P, n)
	for i := range pts {
		pts[i] = P{In: uint64(i + 1), Out: uint64(i + 1), T: 1, V: float64(i)}
	}
	add(t, a, spec10, mGauge, pts...)
	outs, err := a.Flush(time.Unix(1000, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, o := range outs {
		if o.Points > flushChunk || o.Batch.Len() != o.Points {
			t.Errorf("an output of %d points (batch %d), want at most %d", o.Points, o.Batch.Len(), flushChunk)
		}
		total += o.Points
	}
	if len(outs) != 2 || total != n {
		t.Fatalf("%d outputs of %d points in all, want 2 of %d", len(outs), total, n)
	}
	var sum float64
	for _, r := range decode(t, outs) {
		sum += r.V
	}
	if want := float64(n) * float64(n-1) / 2; sum != want {
		t.Errorf("values sum to %v, want %v", sum, want)
	}

	// FlushTo hands over the parts one by one; an error of emit ends it,
	// and the parts not handed over are released.
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	b := New(Config{Allocator: mem})
	add(t, b, spec10, mGauge, pts...)
	calls := 0
	stop := errors.New("stop")
	err = b.FlushTo(time.Unix(1000, 0), true, func(o Output) error {
		calls++
		o.Batch.Release()
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("FlushTo: %v after %d parts, want %v after 1", err, calls, stop)
	}
	mem.AssertSize(t, 0)
}

// Aggregators that share their FlushBuffers, flushing one after another,
// write what each would write alone.
func TestSharedFlushBuffers(t *testing.T) {
	var shared FlushBuffers
	fill := func(a *Aggregator, tenant string, base float64) {
		for i := range 3 {
			addTenant(t, a, tenant, spec10, mGauge, P{In: uint64(i + 1), Out: uint64(i + 1), T: 1, V: base + float64(i), Attrs: []string{"job", fmt.Sprint(i)}})
		}
	}
	var got, want [][]R
	for round := range 2 {
		for i, tenant := range []string{"t1", "t2"} {
			alone, withShared := New(Config{}), New(Config{FlushBuffers: &shared})
			fill(alone, tenant, float64(10*i+100*round))
			fill(withShared, tenant, float64(10*i+100*round))
			want = append(want, flush(t, alone, true))
			got = append(got, flush(t, withShared, true))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" || len(want[3]) != 3 {
		t.Errorf("(-alone +shared):\n%s", diff)
	}
}

// TestLowFirst: the indexes a flush freed come out from high to low (the
// free list is taken from its end), none lost or repeated, whether they
// are dense (the bitmap) or sparse (sorted).
func TestLowFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var mark []uint64
	for _, c := range []struct{ n, span int }{{0, 1}, {1, 1}, {2, 2}, {64, 64}, {65, 200}, {1000, 1500}, {1000, 100000}, {5, 1 << 30}} {
		for range 20 {
			seen := map[uint32]bool{}
			base := uint32(r.IntN(1000))
			var free []uint32
			for len(free) < c.n {
				x := base + uint32(r.IntN(c.span))
				if !seen[x] {
					seen[x] = true
					free = append(free, x)
				}
			}
			want := slices.Clone(free)
			slices.Sort(want)
			slices.Reverse(want)
			mark = lowFirst(free, mark)
			if !slices.Equal(free, want) {
				t.Fatalf("%d indexes over %d: got %v, want %v", c.n, c.span, free, want)
			}
		}
	}
}

// TestFlushBuffersGroup: points go to their tenant's group of their header
// whether the group is the previous point's (remembered) or found again,
// before and after the buffers are built and reused.
func TestFlushBuffersGroup(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var o FlushBuffers
	for round := range 3 {
		type key struct{ tenant, hdr uint32 }
		want := map[key][]byte{}
		points := map[uint32]int{}
		for i := range 500 {
			k := key{uint32(r.IntN(3)), uint32(r.IntN(4))}
			if i > 0 && r.IntN(2) == 0 { // runs of the same header, as series come
				k = key{uint32(i % 2), 7}
			}
			g := o.group(k.tenant, k.hdr)
			if g.hdr != k.hdr {
				t.Fatalf("round %d, point %d: group of header %d for %d", round, i, g.hdr, k.hdr)
			}
			g.pts = append(g.pts, byte(i))
			want[k] = append(want[k], byte(i))
			points[k.tenant]++
		}
		if len(o.tenants) != len(points) {
			t.Fatalf("round %d: %d tenants, want %d", round, len(o.tenants), len(points))
		}
		for _, to := range o.tenants {
			if to.points != points[to.tenant] {
				t.Errorf("round %d: tenant %d counted %d points, want %d", round, to.tenant, to.points, points[to.tenant])
			}
			for _, g := range to.groups {
				if w := want[key{to.tenant, g.hdr}]; !bytes.Equal(g.pts, w) {
					t.Errorf("round %d: tenant %d header %d holds %v, want %v", round, to.tenant, g.hdr, g.pts, w)
				}
			}
		}
		o.reset() // as build leaves them for the next part

	}
}

// TestFlushRounds: a flush that closes several intervals of each series
// writes them a round at a time, every series' oldest first, each
// series' own in order (its running total intact).
func TestFlushRounds(t *testing.T) {
	a := New(Config{})
	var pts []P
	for step := range 3 {
		for i, s := range []string{"a", "b", "c"} {
			pts = append(pts, P{In: uint64(i + 1), Out: uint64(i + 1), T: float64(1 + 10*step), V: float64(10 * (step + 1)), Int: true, Attrs: []string{"s", s}})
		}
	}
	add(t, a, spec10, mCum, pts...)
	var got []string
	for _, r := range flush(t, a, true) {
		got = append(got, fmt.Sprintf("%s@%g=%g", r.Attrs, r.T, r.V))
	}
	want := []string{"s=a@10=10", "s=b@10=10", "s=c@10=10", "s=a@20=20", "s=b@20=20", "s=c@20=20", "s=a@30=30", "s=b@30=30", "s=c@30=30"}
	if !slices.Equal(got, want) {
		t.Errorf("flushed\n%v\nwant\n%v", got, want)
	}
}
