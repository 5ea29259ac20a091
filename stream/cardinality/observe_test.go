package cardinality

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// gen makes random metrics requests whose attribute sets repeat and overlap
// as in real data, in the shapes Observe has paths for: keys in one order
// or shuffled, on the resource or the point (the same series either way),
// duplicate keys, values of every type, no resource, no attributes, many
// series for one metric.
type gen struct {
	r       *rand.Rand
	metrics int // names m0, m1, ...
	ids     int // values of key "id"; over 1,536 a metric's series sketch can go dense
	// usual: values of the encodings the decoder numbers the sets of
	// (short strings, small ints; see schemas.Batch.ItemSetIDs) only
	usual bool
}

var genKeys = []string{"a", "b", "c", "service.name", "k8s.pod.name", "http.route"}

// resPool: resources carry the first k of these.
var resPool = kvs("service.name", "api", "k8s.pod.name", "api-7d9f-1", "host.name", "node-1")

func (g *gen) value() *common.AnyValue {
	r := g.r
	k := r.IntN(16)
	if g.usual && k > 0 && k < 7 {
		k = 7
	}
	switch k {
	case 0:
		return &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(r.IntN(3))}}
	case 1:
		return &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: []float64{0, math.Copysign(0, -1), 1.5}[r.IntN(3)]}}
	case 2:
		return &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: r.IntN(2) == 0}}
	case 3:
		return &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: []byte{'x', byte('0' + r.IntN(2))}}}
	case 4:
		return &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: &common.ArrayValue{Values: []*common.AnyValue{
			{Value: &common.AnyValue_StringValue{StringValue: fmt.Sprint(r.IntN(2))}}}}}}
	case 5:
		return &common.AnyValue{} // present, empty
	case 6:
		return nil // no value
	default: // strings, some equal to the other types' text
		return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: []string{"0", "1", "x0", "GET", "POST", "", "/api/v1/items/{id}"}[r.IntN(7)]}}
	}
}

func (g *gen) attrs(n int, shuffle bool) []*common.KeyValue {
	keys := slices.Clone(genKeys)
	if shuffle {
		g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	}
	var out []*common.KeyValue
	for i := range n {
		k := keys[i%len(keys)]
		if g.r.IntN(20) == 0 && len(out) > 0 {
			k = out[0].Key // a duplicate key
		}
		out = append(out, &common.KeyValue{Key: k, Value: g.value()})
	}
	return out
}

func (g *gen) request(resources, points int) *colmetrics.ExportMetricsServiceRequest {
	r := g.r
	q := &colmetrics.ExportMetricsServiceRequest{}
	for range resources {
		rm := &metrics.ResourceMetrics{}
		k := r.IntN(len(resPool) + 1)
		res := resPool[:k]
		if r.IntN(3) == 0 {
			res = g.attrs(r.IntN(4), r.IntN(2) == 0)
		}
		if len(res) > 0 || r.IntN(4) > 0 {
			rm.Resource = &resource.Resource{Attributes: res}
		}
		sm := &metrics.ScopeMetrics{}
		for range 1 + r.IntN(4) {
			var pts []*metrics.NumberDataPoint
			layout := r.IntN(6)
			for range 1 + r.IntN(points) {
				var as []*common.KeyValue
				switch r.IntN(4) {
				case 0: // another layout
					as = g.attrs(r.IntN(6), r.IntN(2) == 0)
				case 1: // attributes of other resources on the point: the same
					// series as a point without them of a resource with them
					as = append(g.attrs(layout, false), resPool[k:k+r.IntN(len(resPool)-k+1)]...)
				default:
					as = g.attrs(layout, false)
				}
				if g.ids > 0 && r.IntN(2) == 0 {
					as = append(as, &common.KeyValue{Key: "id", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(r.IntN(g.ids))}}})
				}
				pts = append(pts, &metrics.NumberDataPoint{Attributes: as, TimeUnixNano: 1, Value: &metrics.NumberDataPoint_AsInt{AsInt: 1}})
			}
			sm.Metrics = append(sm.Metrics, &metrics.Metric{Name: fmt.Sprintf("m%d", r.IntN(g.metrics)),
				Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}}})
		}
		rm.ScopeMetrics = []*metrics.ScopeMetrics{sm}
		q.ResourceMetrics = append(q.ResourceMetrics, rm)
	}
	return q
}

// batch decodes q with poisoned buffers, then maybe reorders its points
// (so that runs of a metric are cut short) or slices them (so that the
// columns have offsets).
func (g *gen) batch(tb testing.TB, q *colmetrics.ExportMetricsServiceRequest) *schemas.Batch {
	tb.Helper()
	body, err := proto.Marshal(q)
	if err != nil {
		tb.Fatal(err)
	}
	bld := schemas.NewBuilder(otlpwire.Metrics, poisoner{})
	defer bld.Release()
	if _, err := bld.Append(body); err != nil {
		tb.Fatal(err)
	}
	b := bld.Build()
	b.ItemAttrSets, b.ItemSetIDs = nil, nil // point by point; TestObserveSets and TestObserveKeptSets number them
	n := b.Len()
	switch g.r.IntN(3) {
	case 1: // shuffled
		rs := make([][2]int32, n)
		for i, p := range g.r.Perm(n) {
			rs[i] = [2]int32{int32(p), int32(p) + 1}
		}
		cols := make([]arrow.Array, b.Items.NumCols())
		for c := range cols {
			d := schemas.Take(poisoner{}, b.Items.Column(c).Data(), rs, nil)
			cols[c] = array.MakeFromData(d)
			d.Release()
		}
		items := array.NewRecordBatch(b.Items.Schema(), cols, int64(n))
		for _, c := range cols {
			c.Release()
		}
		b.Items.Release()
		b.Items = items
	case 2: // sliced
		lo := g.r.IntN(n/2 + 1)
		items := b.Items.NewSlice(int64(lo), int64(n))
		b.Items.Release()
		b.Items = items
	}
	return b
}

// TestObserveBoth: Observe at Both leaves a tracker exactly as Observe at
// Before then at After does, over random batches and tenants, windows
// going by, other batches at Before and After in between, and bounds that
// bite (metrics, labels, tenants).
func TestObserveBoth(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r, g, cfg := randomCase(seed, 7)
			seq, both := New(cfg), New(cfg)
			now := time.Unix(0, 0).Add(1000 * cfg.Window)
			observe := func(tr *Tracker, tenant string, st Stage, b *schemas.Batch) {
				t.Helper()
				if err := tr.Observe(tenant, st, b, now); err != nil {
					t.Fatal(err)
				}
			}
			dense := false
			for step := range 40 {
				tenant := fmt.Sprint("t", r.IntN(3))
				q := g.request(1+r.IntN(4), 1+r.IntN(600))
				if g.ids > 0 && step%10 == 5 { // one metric's series go dense
					for i := range 2000 {
						q.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetGauge().DataPoints = append(
							q.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetGauge().DataPoints,
							&metrics.NumberDataPoint{Attributes: kvs("a", "1", "id", fmt.Sprint(i)), TimeUnixNano: 1})
					}
				}
				b := g.batch(t, q)
				if r.IntN(3) > 0 || step%10 == 5 { // the rules left the batch as it was
					observe(seq, tenant, Before, b)
					observe(seq, tenant, After, b)
					observe(both, tenant, Both, b)
				} else { // they changed it
					out := g.batch(t, g.request(1+r.IntN(3), 1+r.IntN(100)))
					for _, tr := range []*Tracker{seq, both} {
						observe(tr, tenant, Before, b)
						observe(tr, tenant, After, out)
					}
					out.Release()
				}
				b.Release()
				if r.IntN(4) == 0 {
					now = now.Add(time.Duration(r.IntN(int(cfg.Window))))
				}
				dense = dense || anyDense(both)
				if step%10 == 9 || step == 39 {
					want, got := seq.Report("", 0, now), both.Report("", 0, now)
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("step %d: Both reports\n%+v\nBefore then After\n%+v", step, got, want)
					}
				}
			}
			if g.ids > 0 && !dense {
				t.Error("no series sketch went dense: the test misses that path")
			}
		})
	}
}

// randomCase is the random source, the batch generator and the tracker's
// configuration of seed: some seeds with an id attribute of many values
// (sketches go dense), some with bounds that bite.
func randomCase(seed, stream uint64) (*rand.Rand, *gen, Config) {
	r := rand.New(rand.NewPCG(seed, stream))
	g := &gen{r: r, metrics: 6}
	if seed%3 == 2 {
		g.ids = 3000
	}
	cfg := Config{Window: time.Minute}
	if seed%2 == 1 {
		cfg.MaxMetrics, cfg.MaxLabels, cfg.MaxTenants = 3, 4, 2
	}
	return r, g, cfg
}

func anyDense(tr *Tracker) bool {
	for _, tn := range tr.tenants {
		for st := range tn.stages {
			for _, g := range []*generation{tn.stages[st].cur, tn.stages[st].prev} {
				if g == nil {
					continue
				}
				if g.other != nil && g.other.series.dense != nil {
					return true
				}
				for _, m := range g.metrics {
					if m.series.dense != nil {
						return true
					}
				}
			}
		}
	}
	return false
}

// TestObserveExact checks the counts against a plain model (maps of label
// sets) while every sketch is exact: over batches that repeat their series
// in other orders, on other metric rows and split differently between the
// resource and the point, in one window, at Before and at Both.
func TestObserveExact(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			g := &gen{r: r, metrics: 4, ids: 100}
			tr := New(Config{})
			before, after := model{}, model{}
			for range 6 {
				b := g.batch(t, g.request(1+r.IntN(3), 1+r.IntN(60)))
				st := []Stage{Before, Both}[r.IntN(2)]
				if err := tr.Observe("x", st, b, t0); err != nil {
					t.Fatal(err)
				}
				// The model reads the batch back as OTLP, so that it sees
				// exactly the points the tracker saw.
				body, err := schemas.ToOTLP(b, nil)
				b.Release()
				if err != nil {
					t.Fatal(err)
				}
				var seen colmetrics.ExportMetricsServiceRequest
				if err := proto.Unmarshal(body, &seen); err != nil {
					t.Fatal(err)
				}
				before.add(t, &seen)
				if st == Both {
					after.add(t, &seen)
				}
			}
			ten := oneTenant(t, tr.Report("x", 0, t0), "x")
			if len(ten.Metrics) != len(before) {
				t.Fatalf("%d metrics, want %d", len(ten.Metrics), len(before))
			}
			for name, mb := range before {
				got := metricOf(t, ten, name)
				ma := after[name]
				if ma == nil {
					ma = &modelMetric{}
				}
				if got.SeriesBefore != uint64(len(mb.series)) || got.SeriesAfter != uint64(len(ma.series)) {
					t.Errorf("%s: series %d before, %d after, want %d and %d", name, got.SeriesBefore, got.SeriesAfter, len(mb.series), len(ma.series))
				}
				if len(got.Labels) != len(mb.labels) {
					t.Errorf("%s: labels %+v, want %d", name, got.Labels, len(mb.labels))
				}
				for key, vals := range mb.labels {
					l, ok := labelOf(got, key)
					if !ok || l.ValuesBefore != uint64(len(vals)) || l.ValuesAfter != uint64(len(ma.labels[key])) {
						t.Errorf("%s: label %s: %+v, want %d values before, %d after", name, key, l, len(vals), len(ma.labels[key]))
					}
				}
			}
		})
	}
}

// model counts series and label values exactly, per metric name.
type model map[string]*modelMetric

type modelMetric struct {
	series map[string]bool
	labels map[string]map[string]bool
}

func (m model) add(t *testing.T, q *colmetrics.ExportMetricsServiceRequest) {
	t.Helper()
	enc := func(v *common.AnyValue) string {
		if v == nil {
			return "none"
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return "value:" + string(b)
	}
	for _, rm := range q.ResourceMetrics {
		res := rm.GetResource().GetAttributes()
		for _, sm := range rm.ScopeMetrics {
			for _, met := range sm.Metrics {
				mm := m[met.Name]
				if mm == nil {
					mm = &modelMetric{series: map[string]bool{}, labels: map[string]map[string]bool{}}
					m[met.Name] = mm
				}
				for _, p := range met.GetGauge().GetDataPoints() {
					var pairs []string
					for _, kv := range append(slices.Clone(res), p.Attributes...) {
						v := enc(kv.Value)
						pairs = append(pairs, fmt.Sprintf("%q=%q", kv.Key, v))
						if mm.labels[kv.Key] == nil {
							mm.labels[kv.Key] = map[string]bool{}
						}
						mm.labels[kv.Key][v] = true
					}
					slices.Sort(pairs)
					mm.series[strings.Join(pairs, ",")] = true
				}
			}
		}
	}
}

// TestObserveManyRows: batches of more distinct attribute sets than the
// row table holds (maxRows) are counted the same, whether the sets repeat
// (within each resource: the table is cleared when full) or not (the
// table is no longer used).
func TestObserveManyRows(t *testing.T) {
	for _, c := range []struct {
		name                     string
		resources, metrics, a, b int // metrics per resource, values of labels a and b
	}{
		{"distinct", 1, 5, 40, 25},
		{"repeating", 10, 3, 50, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := &req{}
			for r := range c.resources {
				var pts [][]*common.KeyValue
				for s := range c.a * c.b {
					pts = append(pts, kvs("r", fmt.Sprint(r), "a", fmt.Sprint(s%c.a), "b", fmt.Sprint(s/c.a)))
				}
				for m := range c.metrics {
					mpts := pts
					if c.resources == 1 { // sets distinct across metrics too
						mpts = nil
						for _, p := range pts {
							mpts = append(mpts, append(slices.Clone(p), kvs("m", fmt.Sprint(m))...))
						}
					}
					q.add(kvs("service.name", "api"), fmt.Sprintf("metric%d.%d", r, m), mpts...)
				}
			}
			if sets := c.resources * c.a * c.b; sets <= maxRows && c.resources > 1 || c.metrics*c.a*c.b <= maxRows && c.resources == 1 {
				t.Fatal("fewer sets than maxRows")
			}
			tr := New(Config{})
			observe(t, tr, "x", Both, q, t0)
			ten := oneTenant(t, tr.Report("x", 0, t0), "x")
			if len(ten.Metrics) != c.resources*c.metrics {
				t.Fatalf("%d metrics, want %d", len(ten.Metrics), c.resources*c.metrics)
			}
			for _, got := range ten.Metrics {
				series := uint64(c.a * c.b)
				want := []LabelReport{{"a", uint64(c.a), uint64(c.a)}, {"b", uint64(c.b), uint64(c.b)}}
				if c.resources == 1 {
					want = append(want, LabelReport{"m", 1, 1})
				}
				want = append(want, LabelReport{"r", 1, 1}, LabelReport{"service.name", 1, 1})
				if got.SeriesBefore != series || got.SeriesAfter != series || !reflect.DeepEqual(got.Labels, want) {
					t.Errorf("%+v, want %d series and labels %+v", got, series, want)
				}
			}
		})
	}
}

// TestSameValues: the row table tells values apart as their hashes do,
// even when runKey does not.
func TestSameValues(t *testing.T) {
	vals := []*common.AnyValue{
		{Value: &common.AnyValue_IntValue{IntValue: 1}}, {Value: &common.AnyValue_IntValue{IntValue: 2}},
		{Value: &common.AnyValue_DoubleValue{DoubleValue: 0}}, {Value: &common.AnyValue_DoubleValue{DoubleValue: math.Copysign(0, -1)}},
		{Value: &common.AnyValue_BoolValue{BoolValue: true}}, {Value: &common.AnyValue_BoolValue{BoolValue: false}},
		{Value: &common.AnyValue_BytesValue{BytesValue: []byte("ab")}}, {Value: &common.AnyValue_BytesValue{BytesValue: []byte("ba")}},
		{Value: &common.AnyValue_StringValue{StringValue: "1"}}, {}, nil,
	}
	q := &req{}
	var pts [][]*common.KeyValue
	for _, x := range vals {
		pts = append(pts, []*common.KeyValue{{Key: "k", Value: x}}, []*common.KeyValue{{Key: "k", Value: x}})
	}
	q.add(nil, "m", pts...)
	bld := schemas.NewBuilder(otlpwire.Metrics, poisoner{})
	defer bld.Release()
	if _, err := bld.Append(q.body(t)); err != nil {
		t.Fatal(err)
	}
	b := bld.Build()
	defer b.Release()
	var c columns
	if err := c.init(b); err != nil {
		t.Fatal(err)
	}
	a := &c.ptAttrs.vals
	for i := range vals {
		for j := range vals {
			same := a.same(2*i, 2*j+1, 1)
			if same != (i == j) {
				t.Errorf("values %v and %v: same %v", vals[i], vals[j], same)
			}
			if same && (a.runKey(2*i, 1) != a.runKey(2*j+1, 1) || a.hash(2*i) != a.hash(2*j+1)) {
				t.Errorf("values %v: runKey or hash differ", vals[i])
			}
			if !same && a.hash(2*i) == a.hash(2*j+1) {
				t.Errorf("values %v and %v: same hash", vals[i], vals[j])
			}
		}
	}
}
