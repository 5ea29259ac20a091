package cardinality

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	common "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// t0 starts a window of DefaultWindow.
var t0 = time.Unix(0, 0).Add(100_000 * DefaultWindow)

func within(t *testing.T, what string, got uint64, want, tol float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > tol*want {
		t.Errorf("%s = %d, want %.0f within %.1f%%", what, got, want, tol*100)
	}
}

func metricOf(t *testing.T, tr TenantReport, name string) MetricReport {
	t.Helper()
	for _, m := range tr.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("tenant %s: no metric %q in %+v", tr.Tenant, name, tr.Metrics)
	return MetricReport{}
}

func labelOf(m MetricReport, key string) (LabelReport, bool) {
	for _, l := range m.Labels {
		if l.Key == key {
			return l, true
		}
	}
	return LabelReport{}, false
}

func oneTenant(t *testing.T, r Report, name string) TenantReport {
	t.Helper()
	if len(r.Tenants) != 1 || r.Tenants[0].Tenant != name {
		t.Fatalf("report has tenants %+v, want only %s", r.Tenants, name)
	}
	return r.Tenants[0]
}

// podsAndRoutes: 1,000 pods (a resource each) × 20 routes of metric m
// before the rules; after them, the pod is gone: 20 series.
func podsAndRoutes(t *testing.T, tr *Tracker, tenant string, now time.Time) {
	before, after := &req{}, &req{}
	var routes [][]*common.KeyValue
	for r := range 20 {
		routes = append(routes, kvs("http.route", fmt.Sprintf("/api/%d", r), "http.method", "GET"))
	}
	for p := range 1000 {
		before.add(kvs("service.name", "api", "k8s.pod.name", fmt.Sprintf("api-7d9f-%d", p)), "m", routes...)
	}
	for range 3 { // the same series again, from other resources
		after.add(kvs("service.name", "api"), "m", routes...)
	}
	observe(t, tr, tenant, Before, before, now)
	observe(t, tr, tenant, After, after, now)
}

func TestCounts(t *testing.T) {
	tr := New(Config{})
	podsAndRoutes(t, tr, "acme", t0)
	ten := oneTenant(t, tr.Report("acme", 0, t0), "acme")
	m := metricOf(t, ten, "m")
	within(t, "series before", m.SeriesBefore, 20000, 0.03) // dense, precision 14: σ 0.8%
	if m.SeriesAfter != 20 {                                // small sets are exact
		t.Errorf("series after = %d, want 20", m.SeriesAfter)
	}
	if ten.SeriesBefore != m.SeriesBefore || ten.SeriesAfter != m.SeriesAfter {
		t.Errorf("tenant totals %d/%d, want the one metric's %d/%d", ten.SeriesBefore, ten.SeriesAfter, m.SeriesBefore, m.SeriesAfter)
	}
	for _, c := range []struct {
		key           string
		before, after uint64
	}{{"k8s.pod.name", 1000, 0}, {"http.route", 20, 20}, {"http.method", 1, 1}, {"service.name", 1, 1}} {
		l, ok := labelOf(m, c.key)
		if !ok {
			t.Errorf("no label %s in %+v", c.key, m.Labels)
			continue
		}
		if c.before > 100 {
			within(t, c.key+" before", l.ValuesBefore, float64(c.before), 0.05) // dense, precision 12: σ 1.6%
		} else if l.ValuesBefore != c.before {
			t.Errorf("%s before = %d, want %d", c.key, l.ValuesBefore, c.before)
		}
		if l.ValuesAfter != c.after {
			t.Errorf("%s after = %d, want %d", c.key, l.ValuesAfter, c.after)
		}
	}
	if len(m.Labels) != 4 || m.Labels[0].Key != "k8s.pod.name" || m.Labels[1].Key != "http.route" {
		t.Errorf("labels %+v, want 4, k8s.pod.name then http.route first", m.Labels)
	}
	if m.LabelsTruncated || ten.Other != nil {
		t.Errorf("truncated %v, other %+v; want neither", m.LabelsTruncated, ten.Other)
	}
}

// TestSeriesIdentity: the identity is the label set, whatever the order of
// the attributes and whether a label sits on the resource or the point.
func TestSeriesIdentity(t *testing.T) {
	tr := New(Config{})
	q := &req{}
	q.add(kvs("a", "1", "b", "2"), "m", kvs("c", "3", "d", "4"), kvs("d", "4", "c", "3"))
	q.add(kvs("b", "2", "a", "1"), "m", kvs("d", "4", "c", "3"))
	q.add(kvs("b", "2", "a", "1", "c", "3"), "m", kvs("d", "4"))
	q.add(kvs("a", "1", "b", "2"), "m", kvs("c", "3", "d", "5")) // another series
	q.add(kvs("a", "1", "b", "2"), "m", kvs("c", "4", "d", "3")) // values swapped: another
	q.add(kvs("a", "1", "b", "2"), "m", kvs("d", "3", "c", "4")) // same as the previous
	observe(t, tr, "x", Before, q, t0)
	m := metricOf(t, oneTenant(t, tr.Report("x", 0, t0), "x"), "m")
	if m.SeriesBefore != 3 {
		t.Errorf("series = %d, want 3", m.SeriesBefore)
	}
	if l, _ := labelOf(m, "d"); l.ValuesBefore != 3 {
		t.Errorf("label d has %d values, want 3", l.ValuesBefore)
	}
}

func TestTenantsSeparated(t *testing.T) {
	tr := New(Config{})
	observe(t, tr, "a", Before, (&req{}).add(kvs("service.name", "sa"), "ma", kvs("k", "1"), kvs("k", "2")), t0)
	observe(t, tr, "b", Before, (&req{}).add(kvs("service.name", "sb"), "mb", kvs("k", "1")), t0)
	observe(t, tr, "b", After, (&req{}).add(kvs("service.name", "sb"), "ma", kvs("k", "9")), t0)

	a := oneTenant(t, tr.Report("a", 0, t0), "a")
	if len(a.Metrics) != 1 || a.Metrics[0].Name != "ma" || a.Metrics[0].SeriesBefore != 2 || a.Metrics[0].SeriesAfter != 0 {
		t.Errorf("tenant a sees %+v", a.Metrics)
	}
	b := oneTenant(t, tr.Report("b", 0, t0), "b")
	if len(b.Metrics) != 2 || metricOf(t, b, "ma").SeriesBefore != 0 || metricOf(t, b, "ma").SeriesAfter != 1 {
		t.Errorf("tenant b sees %+v", b.Metrics)
	}
	if r := tr.Report("c", 0, t0); len(r.Tenants) != 0 {
		t.Errorf("unknown tenant: %+v", r)
	}
	all := tr.Report("", 0, t0)
	if len(all.Tenants) != 2 || all.Tenants[0].Tenant != "a" || all.Tenants[1].Tenant != "b" {
		t.Errorf("all tenants: %+v", all.Tenants)
	}
}

func TestWindowRotation(t *testing.T) {
	w := time.Minute
	tr := New(Config{Window: w})
	start := time.Unix(0, 0).Add(1000 * w)
	series := func(names ...string) *req {
		q := &req{}
		for _, n := range names {
			q.add(kvs("service.name", "s"), "m", kvs("id", n))
		}
		return q
	}
	count := func(at time.Time) uint64 {
		r := tr.Report("x", 0, at)
		if len(r.Tenants) == 0 {
			return 0
		}
		return metricOf(t, r.Tenants[0], "m").SeriesBefore
	}
	observe(t, tr, "x", Before, series("a", "b"), start)
	if got := count(start.Add(w - time.Second)); got != 2 {
		t.Errorf("in the first window: %d series, want 2", got)
	}
	observe(t, tr, "x", Before, series("c"), start.Add(w+time.Second))
	for _, c := range []struct {
		at   time.Duration
		want uint64
	}{
		{w + 2*time.Second, 3},   // a, b in the previous window, c in this one
		{2*w + time.Second, 1},   // a, b not seen for two windows: c only
		{3*w + time.Second, 0},   // nothing
		{3*w + 2*time.Second, 0}, // still nothing
	} {
		if got := count(start.Add(c.at)); got != c.want {
			t.Errorf("at +%v: %d series, want %d", c.at, got, c.want)
		}
	}
	// Seen again: counted again, and an old timestamp does not bring back
	// forgotten windows.
	observe(t, tr, "x", Before, series("a"), start.Add(4*w))
	observe(t, tr, "x", Before, series("d"), start)
	if got := count(start.Add(4 * w)); got != 2 {
		t.Errorf("after a late batch: %d series, want 2", got)
	}
}

func TestMaxMetrics(t *testing.T) {
	tr := New(Config{MaxMetrics: 2})
	q := &req{}
	for m := range 5 {
		for s := range 10 {
			q.add(kvs("service.name", "s"), fmt.Sprintf("m%d", m), kvs("id", fmt.Sprint(s)))
		}
	}
	observe(t, tr, "x", Before, q, t0)
	ten := oneTenant(t, tr.Report("x", 0, t0), "x")
	if len(ten.Metrics) != 2 || ten.Metrics[0].Name != "m0" || ten.Metrics[1].Name != "m1" {
		t.Errorf("metrics %+v, want m0 and m1", ten.Metrics)
	}
	if ten.Other == nil || ten.Other.MetricsBefore != 3 || ten.Other.SeriesBefore != 30 {
		t.Fatalf("other = %+v, want 3 metrics, 30 series", ten.Other)
	}
	if ten.SeriesBefore != 50 {
		t.Errorf("tenant series %d, want 50", ten.SeriesBefore)
	}
}

func TestMaxLabels(t *testing.T) {
	tr := New(Config{MaxLabels: 2})
	observe(t, tr, "x", Before, (&req{}).add(kvs("a", "1"), "m", kvs("b", "1", "c", "1"), kvs("b", "2", "c", "2")), t0)
	m := metricOf(t, oneTenant(t, tr.Report("x", 0, t0), "x"), "m")
	if len(m.Labels) != 2 || !m.LabelsTruncated || m.SeriesBefore != 2 {
		t.Errorf("got %+v, want 2 labels, truncated, 2 series (all keys identify series)", m)
	}
}

func TestMaxTenants(t *testing.T) {
	tr := New(Config{MaxTenants: 2})
	q := (&req{}).add(nil, "m", kvs("k", "v"), kvs("k", "w"))
	observe(t, tr, "a", Before, q, t0)
	observe(t, tr, "b", Before, q, t0)
	observe(t, tr, "c", Before, q, t0)
	r := tr.Report("", 0, t0)
	if len(r.Tenants) != 2 || r.DroppedBatches != 1 || r.DroppedPoints != 2 {
		t.Errorf("report %+v, want tenants a and b, one batch (2 points) dropped", r)
	}
	if len(tr.Report("c", 0, t0).Tenants) != 0 {
		t.Error("tenant c tracked")
	}
	observe(t, tr, "c", Both, q, t0) // counted at both stages
	if r := tr.Report("", 0, t0); r.DroppedBatches != 3 || r.DroppedPoints != 6 {
		t.Errorf("after a dropped batch at Both: %d batches, %d points dropped; want 3 and 6", r.DroppedBatches, r.DroppedPoints)
	}
	if r := tr.Report("a", 0, t0); r.DroppedBatches != 0 {
		t.Errorf("a tenant's report shows dropped counts: %+v", r)
	}
	// b stays active, a goes idle for two windows: c takes a's place.
	observe(t, tr, "b", Before, q, t0.Add(DefaultWindow))
	observe(t, tr, "c", Before, q, t0.Add(2*DefaultWindow))
	r = tr.Report("", 0, t0.Add(2*DefaultWindow))
	if len(r.Tenants) != 2 || r.Tenants[0].Tenant != "b" || r.Tenants[1].Tenant != "c" {
		t.Errorf("tenants %+v, want b and c", r.Tenants)
	}
}

func TestTopN(t *testing.T) {
	tr := New(Config{})
	q := &req{}
	for m := range 4 {
		var pts [][]*common.KeyValue
		for s := range 10 * (m + 1) {
			pts = append(pts, kvs("id", fmt.Sprint(s), "a", fmt.Sprint(s%2), "b", fmt.Sprint(s%3)))
		}
		q.add(nil, fmt.Sprintf("m%d", m), pts...)
	}
	observe(t, tr, "x", Before, q, t0)
	ten := oneTenant(t, tr.Report("x", 2, t0), "x")
	if len(ten.Metrics) != 2 || ten.Metrics[0].Name != "m3" || ten.Metrics[1].Name != "m2" {
		t.Fatalf("top 2: %+v", ten.Metrics)
	}
	if ten.SeriesBefore != 100 {
		t.Errorf("tenant series %d, want 100 (all metrics, not only the top)", ten.SeriesBefore)
	}
	if ls := ten.Metrics[0].Labels; len(ls) != 2 || ls[0] != (LabelReport{"id", 40, 0}) || ls[1] != (LabelReport{"b", 3, 0}) {
		t.Errorf("top labels %+v", ls)
	}
}

func TestObserveErrors(t *testing.T) {
	tr := New(Config{})
	bld := schemas.NewBuilder(otlpwire.Logs, memory.DefaultAllocator)
	defer bld.Release()
	if _, err := bld.Append(otlptest.Request(otlpwire.Logs, otlptest.Shape{Resources: 1, Items: 1})); err != nil {
		t.Fatal(err)
	}
	logs := bld.Build()
	defer logs.Release()
	if err := tr.Observe("x", Before, logs, t0); !errors.Is(err, ErrNotMetrics) {
		t.Errorf("logs batch: %v", err)
	}
	if err := tr.Observe("x", Before, nil, t0); !errors.Is(err, ErrNotMetrics) {
		t.Errorf("nil batch: %v", err)
	}
	mb := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	defer mb.Release()
	b := mb.Build()
	defer b.Release()
	for _, st := range []Stage{Both + 1, Stage(7)} {
		if err := tr.Observe("x", st, b, t0); err == nil {
			t.Errorf("invalid stage %d accepted", st)
		}
	}
	for _, st := range []Stage{Before, After, Both} {
		if err := tr.Observe("x", st, b, t0); err != nil {
			t.Errorf("empty batch at %v: %v", st, err)
		}
	}
	if r := tr.Report("", 0, t0); len(r.Tenants) != 0 {
		t.Errorf("an empty batch made a tenant: %+v", r)
	}
}

// TestConcurrent: workers observe while the admin handler reports (run
// with -race).
func TestConcurrent(t *testing.T) {
	tr := New(Config{})
	q := (&req{}).add(kvs("service.name", "s"), "m", kvs("k", "1"), kvs("k", "2"))
	body := q.body(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			bld := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
			defer bld.Release()
			for i := range 50 {
				if _, err := bld.Append(body); err != nil {
					t.Error(err)
					return
				}
				b := bld.Build()
				err := tr.Observe(fmt.Sprint("t", w%2), Stage(i%3), b, t0.Add(time.Duration(i)*DefaultWindow/20)) // Before, After, Both
				b.Release()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			tr.Report("", 10, t0.Add(DefaultWindow))
		}
	})
	wg.Wait()
	r := tr.Report("", 0, t0.Add(2*DefaultWindow))
	if len(r.Tenants) != 2 || r.Tenants[0].SeriesBefore != 2 || r.Tenants[0].SeriesAfter != 2 {
		t.Errorf("report %+v", r)
	}
}

func TestSketch(t *testing.T) {
	h := func(i int) uint64 { return fmix64(uint64(i) + 12345) }
	for _, c := range []struct {
		p     uint8
		n     int
		exact bool
	}{{14, 0, true}, {14, 1, true}, {14, 1536, true}, {14, 1537, false}, {14, 100_000, false}, {12, 384, true}, {12, 385, false}, {12, 5000, false}} {
		s := newSketch(c.p)
		for range 2 { // repeats do not count
			for i := range c.n {
				s.insert(h(i))
			}
		}
		if (s.dense == nil) != c.exact {
			t.Errorf("p=%d n=%d: exact %v, want %v", c.p, c.n, s.dense == nil, c.exact)
		}
		if c.exact && s.estimate() != uint64(c.n) {
			t.Errorf("p=%d n=%d: estimate %d", c.p, c.n, s.estimate())
		}
		within(t, fmt.Sprintf("p=%d n=%d", c.p, c.n), s.estimate(), float64(c.n), 0.05)
		if max := 1<<c.p + 64; s.bytes() > max {
			t.Errorf("p=%d n=%d: %d bytes, more than %d", c.p, c.n, s.bytes(), max)
		}
	}
	// Unions: exact ∪ exact, exact ∪ dense, dense ∪ dense; overlap counted once.
	fill := func(from, to int) *sketch {
		s := newSketch(14)
		for i := from; i < to; i++ {
			s.insert(h(i))
		}
		return s
	}
	for _, c := range []struct {
		a, b *sketch
		want float64
	}{
		{fill(0, 100), fill(50, 150), 150},
		{fill(0, 100), nil, 100},
		{fill(0, 1000), fill(0, 5000), 5000},
		{fill(0, 5000), fill(2500, 10000), 10000},
	} {
		got := union(c.a, c.b)
		if c.want <= 1536 && got != uint64(c.want) {
			t.Errorf("union = %d, want %.0f exactly", got, c.want)
		}
		within(t, "union", got, c.want, 0.03)
		if union(c.b, c.a) != got {
			t.Errorf("union not symmetric")
		}
	}
	// A small metric holds little.
	m := &metric{name: "m", series: fill(0, 20)}
	for _, k := range []string{"a", "b", "c", "d"} {
		l := label{key: k, values: newSketch(labelPrecision)}
		for i := range 5 {
			l.values.insert(h(i))
		}
		m.labels = append(m.labels, l)
	}
	if n := m.bytes(); n > 2000 {
		t.Errorf("a metric of 20 series and 4 labels holds %d bytes", n)
	}
}
