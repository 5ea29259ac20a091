package cardinality

import (
	"fmt"
	"testing"
	"time"

	common "go.opentelemetry.io/proto/otlp/common/v1"
)

// TestSeriesFilter checks the filter of a dense series sketch: a hash it
// reports as a repeat was inserted before (never a new one: Observe skips
// the label values of repeats), repeats within its capacity are found, and
// it holds no more than maxFilterSlots and its generation's room.
// Repeats are found as long as the filter has room for them (it is a
// cache: at load 5/8 and above a hash may replace another).
func TestSeriesFilter(t *testing.T) {
	h := func(i int) uint64 { return fmix64(uint64(i) + 777) }
	for _, c := range []struct {
		name string
		room int
		n    int     // distinct hashes, inserted twice
		most float64 // at least this share of repeats is found
	}{
		{"fits", maxFilterBytes, 10_000, 0.995},
		{"beyond its largest table", maxFilterBytes, 60_000, 0.2},
		{"no room", 0, 5000, 0},
		{"room for the first table only", 16 * 2048, 2500, 0.99},
		{"room for the first table only, beyond it", 16 * 2048, 5000, 0.3},
	} {
		t.Run(c.name, func(t *testing.T) {
			room := c.room
			s := newSeriesSketch(&room)
			for i := range c.n {
				if !s.insert(h(i)) {
					t.Fatalf("hash %d, new, reported as a repeat", i)
				}
			}
			if s.dense == nil {
				t.Fatal("not dense")
			}
			found := 0
			for i := range c.n {
				if !s.insert(h(i)) {
					found++
				}
			}
			if c.room == 0 && found != 0 {
				t.Errorf("%d repeats found without a filter", found)
			}
			if float64(found) < c.most*float64(c.n) {
				t.Errorf("%d of %d repeats found, want %.0f%% at least", found, c.n, 100*c.most)
			}
			// New hashes after the repeats, and a third round: a new hash
			// is always new, whatever the filter holds.
			for i := c.n; i < c.n+c.n/2; i++ {
				if !s.insert(h(i)) {
					t.Fatalf("hash %d, new, reported as a repeat after %d", i, c.n)
				}
			}
			within(t, "estimate", s.estimate(), float64(c.n+c.n/2), 0.05)
			filter := 0
			if len(s.set) > 1 {
				filter = 8 * len(s.set)
			}
			if filter > 8*maxFilterSlots || filter > c.room || room < 0 || c.room-room != filter {
				t.Errorf("filter of %d bytes, room %d of %d left", filter, room, c.room)
			}
			if want := 1<<seriesPrecision + 64 + filter; s.bytes() != want {
				t.Errorf("bytes() = %d, want %d", s.bytes(), want)
			}
		})
	}
}

// TestSeriesFilterLabels checks through Observe that a series the filter of
// a dense metric does not hold adds its label values: after a metric went
// dense and its series repeated, each new series brings a new value of tag
// (a filter that took a new series for a repeat, as a Bloom filter may,
// would lose some).
func TestSeriesFilterLabels(t *testing.T) {
	tr := New(Config{})
	now := time.Unix(0, 0)
	series := func(from, to int) *req {
		var pts [][]*common.KeyValue
		for i := from; i < to; i++ {
			tag := "old"
			if i >= 3000 {
				tag = fmt.Sprint("new-", i)
			}
			pts = append(pts, kvs("id", fmt.Sprint(i), "tag", tag))
		}
		return (&req{}).add(kvs("service.name", "api"), "m", pts...)
	}
	for range 3 {
		observe(t, tr, "t", Before, series(0, 3000), now)
	}
	for i := 3000; i < 3300; i += 10 { // ten new series at a time, among the old ones
		observe(t, tr, "t", Before, series(0, i+10), now)
	}
	s := tr.tenants["t"].stages[Before].cur.metrics["m"].series
	if s.dense == nil || len(s.set) <= 1 {
		t.Fatal("the metric has no filter: the test misses it")
	}
	m := metricOf(t, oneTenant(t, tr.Report("t", 0, now), "t"), "m")
	within(t, "series", m.SeriesBefore, 3300, 0.03)
	if l, _ := labelOf(m, "tag"); l.ValuesBefore != 301 {
		t.Errorf("tag: %d values, want 301 (exact)", l.ValuesBefore)
	}
	if l, _ := labelOf(m, "service.name"); l.ValuesBefore != 1 {
		t.Errorf("service.name: %d values, want 1", l.ValuesBefore)
	}
}

// TestFilterRoom checks that the filters of a generation hold at most
// maxFilterBytes, however many metrics go dense.
func TestFilterRoom(t *testing.T) {
	tr := New(Config{})
	now := time.Unix(0, 0)
	q := &req{}
	var pts [][]*common.KeyValue
	for i := range 2000 {
		pts = append(pts, kvs("id", fmt.Sprint(i)))
	}
	metrics := 2*maxFilterBytes/(32<<10) + 10 // twice as many as room for their 32 KiB filters
	for m := range metrics {
		q.add(nil, fmt.Sprint("m", m), pts...)
	}
	observe(t, tr, "t", Before, q, now)
	g := tr.tenants["t"].stages[Before].cur
	held, with := 0, 0
	for _, m := range g.metrics {
		if m.series.dense == nil {
			t.Fatalf("%s: not dense", m.name)
		}
		if len(m.series.set) > 1 {
			held += 8 * len(m.series.set)
			with++
		}
	}
	if held > maxFilterBytes || held != maxFilterBytes-g.filterRoom {
		t.Errorf("filters hold %d bytes, room left %d, of %d", held, g.filterRoom, maxFilterBytes)
	}
	if with == 0 || with == metrics {
		t.Errorf("%d of %d metrics have a filter", with, metrics)
	}
}

// TestSeriesFilterDropped checks that a filter that cannot grow is dropped,
// its bytes given back, when most lookups miss (its series do not fit),
// and kept when they fit.
func TestSeriesFilterDropped(t *testing.T) {
	h := func(i int) uint64 { return fmix64(uint64(i) + 4242) }
	for _, c := range []struct {
		name string
		n    int // distinct hashes, inserted in turn, 10 rounds
		kept bool
	}{{"fits", 2500, true}, {"does not fit", 20_000, false}} {
		t.Run(c.name, func(t *testing.T) {
			const room0 = 16 * 2048 // the first table only
			room := room0
			s := newSeriesSketch(&room)
			for range 10 {
				for i := 0; i < c.n; i += 100 { // runs of 100 points, as Observe's
					fresh := 0
					for j := i; j < i+100; j++ {
						if s.insert(h(j)) {
							fresh++
						}
					}
					s.tally(100, fresh)
				}
			}
			if kept := len(s.set) > 1; kept != c.kept {
				t.Errorf("filter kept %v, want %v", kept, c.kept)
			}
			if want := room0 - 8*len(s.set); len(s.set) == 1 && room != room0 || len(s.set) > 1 && room != want {
				t.Errorf("room %d left, filter of %d slots", room, len(s.set))
			}
			within(t, "estimate", s.estimate(), float64(c.n), 0.05)
		})
	}
}
