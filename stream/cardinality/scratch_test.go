package cardinality

import (
	"fmt"
	"testing"
	"time"

	common "go.opentelemetry.io/proto/otlp/common/v1"
)

// TestRowGuess checks the guess of a point's attribute set (rowHashes):
// it is taken when the metrics of a resource carry their sets in the same
// order, and only when the values are the same: a metric row whose values
// differ from the guessed ones in the same keys and lengths (y-7 for x-7)
// counts its own series and values.
func TestRowGuess(t *testing.T) {
	const n = 50
	sets := func(prefix string, reverse bool) [][]*common.KeyValue {
		var out [][]*common.KeyValue
		for i := range n {
			if reverse {
				i = n - 1 - i
			}
			out = append(out, kvs("route", fmt.Sprint("/r", i%5), "id", fmt.Sprintf("%s-%02d", prefix, i)))
		}
		return out
	}
	res := kvs("service.name", "api")
	q := (&req{}).add(res, "m", sets("x", false)...)
	q.add(res, "n", sets("x", false)...) // the same sets in the same order: guessed
	q.add(res, "o", sets("x", true)...)  // in the other order
	q.add(res, "m", sets("y", false)...) // other values, same keys and lengths
	q.add(res, "p", sets("y", false)...) // guessed again
	tr := New(Config{})
	now := time.Unix(0, 0)
	observe(t, tr, "t", Before, q, now)
	r := oneTenant(t, tr.Report("t", 0, now), "t")
	for _, c := range []struct {
		metric string
		series uint64
	}{{"m", 2 * n}, {"n", n}, {"o", n}, {"p", n}} {
		m := metricOf(t, r, c.metric)
		if m.SeriesBefore != c.series {
			t.Errorf("%s: %d series, want %d", c.metric, m.SeriesBefore, c.series)
		}
		if l, _ := labelOf(m, "id"); l.ValuesBefore != c.series {
			t.Errorf("%s: %d values of id, want %d", c.metric, l.ValuesBefore, c.series)
		}
		if l, _ := labelOf(m, "route"); l.ValuesBefore != 5 {
			t.Errorf("%s: %d values of route, want 5", c.metric, l.ValuesBefore)
		}
	}
	// n's and p's points after their first, and o's after the turn.
	if sc := tr.scratches[0]; sc.guessed < 2*(n-1) {
		t.Errorf("%d points guessed, want %d at least", sc.guessed, 2*(n-1))
	}
}

// TestRowsGiveUp checks that a batch whose attribute sets never repeat
// stops using the table of sets after rowsTrial of them, and that one
// whose sets repeat keeps it.
func TestRowsGiveUp(t *testing.T) {
	res := kvs("service.name", "api")
	unique, repeating := &req{}, &req{}
	for m := range 10 {
		var u, r [][]*common.KeyValue
		for i := range 100 {
			u = append(u, kvs("route", fmt.Sprint("/r", i%5), "id", fmt.Sprintf("%d-%d", m, i)))
			r = append(r, kvs("route", fmt.Sprint("/r", i%5), "id", fmt.Sprint(i)))
		}
		unique.add(res, fmt.Sprint("m", m), u...)
		repeating.add(res, fmt.Sprint("m", m), r...)
	}
	for _, c := range []struct {
		name string
		q    *req
		skip bool
	}{{"unique", unique, true}, {"repeating", repeating, false}} {
		tr := New(Config{})
		now := time.Unix(0, 0)
		observe(t, tr, "t", Before, c.q, now)
		sc := tr.scratches[0]
		if sc.skipRows != c.skip {
			t.Errorf("%s: skipRows %v, want %v (%d rows, %d hits)", c.name, sc.skipRows, c.skip, sc.nrows, sc.hits)
		}
		if c.skip && sc.nrows != rowsTrial {
			t.Errorf("%s: %d rows, want %d", c.name, sc.nrows, rowsTrial)
		}
		r := oneTenant(t, tr.Report("t", 0, now), "t")
		for m := range 10 {
			if got := metricOf(t, r, fmt.Sprint("m", m)).SeriesBefore; got != 100 {
				t.Errorf("%s: m%d: %d series, want 100", c.name, m, got)
			}
		}
	}
}
