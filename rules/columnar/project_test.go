package columnar

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// varyAttrs gives every item of req one of k attribute key lists (the
// layouts the projected memo keys rows by), with values drawn per item:
// often the template's, else another value (of any type) or one unique to
// the item. Some items lose a key or repeat one, so layouts vary too and
// some have duplicate keys. Every item also gets an "id" unique to it,
// the attribute rules delete.
func varyAttrs(req proto.Message, r *rand.Rand, k int) {
	pool := make([][]*common.KeyValue, k)
	for i := range pool {
		pool[i] = genAttrs(r)
	}
	uniq := 0
	other := func() *common.AnyValue {
		uniq++
		switch r.IntN(6) {
		case 0:
			return sval(fmt.Sprintf("u%d", uniq))
		case 1:
			return &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(r.IntN(3))}}
		case 2:
			return &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: r.IntN(2) == 0}}
		case 3:
			return sval([]string{"/healthz", "/api/v1/items/12", "a"}[r.IntN(3)])
		}
		return sval([]string{"a", "b", "c"}[r.IntN(3)])
	}
	items := func(l protoreflect.List) {
		t := pool[r.IntN(k)]
		l.Truncate(0)
		for _, kv := range t {
			if r.IntN(12) == 0 {
				continue // a key missing: another layout
			}
			kv = proto.Clone(kv).(*common.KeyValue)
			if r.IntN(3) == 0 {
				kv.Value = other()
			}
			l.Append(protoreflect.ValueOfMessage(kv.ProtoReflect()))
			if r.IntN(40) == 0 { // a repeated key
				l.Append(protoreflect.ValueOfMessage(proto.Clone(kv).ProtoReflect()))
			}
		}
		if r.IntN(4) != 0 {
			uniq++
			l.Append(protoreflect.ValueOfMessage(str("id", fmt.Sprintf("%016x", uniq)).ProtoReflect()))
		}
	}
	eachItemAttrs(req, items)
}

// projectPool: rules that read a few attributes by key, with every action
// that edits attributes without reading their values.
var projectPool = map[otlpwire.Signal][]string{
	otlpwire.Metrics: {
		`delete: ['attributes["id"]']`,
		`when: attributes["route"] == "/healthz"
    drop: true`,
		`set:
      attributes["env"]: '"prod"'`,
		`when: type == "gauge"
    aggregate: {without: [id, k2]}`,
		`when: attributes["k1"] == "b"
    limit: {max_series: 3}`,
		`keep_keys: {attributes: [k0, k1, route, num]}`,
	},
	otlpwire.Logs: {
		`delete: ['attributes["id"]', 'attributes["k2"]']`,
		`when: attributes["route"] == "/healthz" || severity_number < 5
    drop: true`,
		`set:
      attributes["env"]: '"prod"'`,
		`keep_keys: {attributes: [k0, k1, num, id]}`,
	},
	otlpwire.Traces: {
		`delete: ['attributes["id"]']`,
		`when: attributes["http.route"] == "/healthz"
    drop: true`,
		`set:
      attributes["env"]: '"prod"'`,
		`when: kind == "server"
    keep_keys: {attributes: [http.route, k0, id]}`,
	},
}

// TestProjectedMemo: rules applied once per layout and distinct values of
// the attributes they read give what the reference (the rules on each
// item alone) gives, marks included, on random data where every item has
// a unique attribute and other values vary per item: every signal, every
// action, on_error paths (the pools' rules on "num", which is sometimes
// not a number).
func TestProjectedMemo(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 15
	}
	projected := 0
	for _, sig := range otlpwire.Signals {
		pool := append(slices.Clone(projectPool[sig]), rulePool[sig]...)
		for seed := range n {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(sig)+31))
			// Mostly rules of projectPool, at times with others of
			// rulePool (some read the attributes whole, some write fields).
			var idx []int
			for _, i := range r.Perm(len(projectPool[sig]))[:1+r.IntN(len(projectPool[sig]))] {
				idx = append(idx, i)
			}
			if seed%3 == 0 {
				for _, i := range r.Perm(len(rulePool[sig]))[:1+r.IntN(2)] {
					idx = append(idx, len(projectPool[sig])+i)
				}
			}
			set := parse(t, ruleYAMLFrom(sig, pool, idx))
			req := gen(sig, r)
			switch seed % 4 {
			case 1: // rows that repeat whole: past the probe, keyed whole
				dupAttrs(req, r, 1+r.IntN(3))
				req = repeat(t, req, 300)
			case 2: // many rows keyed by layout, past the probe
				varyAttrs(req, r, 1+r.IntN(4))
				req = repeat(t, req, 300)
			default:
				varyAttrs(req, r, 1+r.IntN(4))
			}
			if New(set, Options{}).sigs[sig].project {
				projected++
			}
			t.Run(fmt.Sprintf("%s/%d", sig, seed), func(t *testing.T) {
				check(t, set, req)
				if sig == otlpwire.Metrics {
					checkMarks(t, set, req)
				}
			})
		}
	}
	if projected < n {
		t.Fatalf("only %d rule sets used the projected memo: the test checks little", projected)
	}
}

// repeat returns req with its resources repeated until it has n items or
// more (its encoding concatenated: repeated fields append).
func repeat(t *testing.T, req proto.Message, n int) proto.Message {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	sig := sigOf(req)
	items, err := otlpwire.Count(sig, body)
	if err != nil {
		t.Fatal(err)
	}
	if items == 0 {
		return req
	}
	var all []byte
	for k := 0; k*items < n; k++ {
		all = append(all, body...)
	}
	out := req.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(all, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkMarks compares the marks of ApplyMarked with the reference's.
func checkMarks(t *testing.T, set *rules.Set, req proto.Message) {
	t.Helper()
	in := req.(*colmetrics.ExportMetricsServiceRequest)
	_, want := refMetricsMarks(set, in)
	got := applyMarked(t, set, in)
	gotMarks := marksPerRow(got, len(want))
	if !slices.Equal(gotMarks, want) {
		t.Fatalf("marks per kept point:\n got %v\nwant %v", gotMarks, want)
	}
}

// TestProjectedMemoHits: on points that differ only in an attribute no
// rule reads the value of, the rules run once per distinct value of what
// they read (here 4 routes), not once per point.
func TestProjectedMemoHits(t *testing.T) {
	set := parse(t, `rules:
  - name: health
    signal: metrics
    when: attributes["route"] == "/healthz"
    drop: true
  - name: env
    signal: metrics
    set:
      attributes["env"]: '"prod"'
  - name: id
    signal: metrics
    delete: ['attributes["id"]']
`)
	req := &colmetrics.ExportMetricsServiceRequest{}
	n := 0
	for res := range 3 {
		sm := &metrics.ScopeMetrics{}
		for m := range 2 {
			g := &metrics.Gauge{}
			for range 100 {
				n++
				g.DataPoints = append(g.DataPoints, &metrics.NumberDataPoint{
					TimeUnixNano: uint64(n),
					Value:        &metrics.NumberDataPoint_AsDouble{AsDouble: 1},
					Attributes: []*common.KeyValue{
						str("route", []string{"/a", "/b", "/healthz", "/c"}[n%4]),
						str("id", fmt.Sprintf("%016x", n)),
						str("pod", fmt.Sprintf("pod-%d", n%7)),
					},
				})
			}
			sm.Metrics = append(sm.Metrics, &metrics.Metric{Name: fmt.Sprint("m", m), Data: &metrics.Metric_Gauge{Gauge: g}})
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metrics.ResourceMetrics{
			Resource:     &resource.Resource{Attributes: []*common.KeyValue{str("k8s.pod.name", fmt.Sprint("p", res))}},
			ScopeMetrics: []*metrics.ScopeMetrics{sm},
		})
	}
	check(t, set, req)

	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	bl := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	defer bl.Release()
	if _, err := bl.Append(body); err != nil {
		t.Fatal(err)
	}
	b := bl.Build()
	defer b.Release()
	e := New(set, Options{})
	if !e.sigs[otlpwire.Metrics].project {
		t.Fatal("the rules read one attribute's value, but the memo is not projected")
	}
	st := newState(e)
	st.begin(b, otlpwire.Metrics, e.sigs[otlpwire.Metrics])
	if err := st.evaluate(); err != nil {
		t.Fatal(err)
	}
	defer st.end()
	// The rules read no resource, scope or field: one entry per route.
	if misses := len(st.memo.entries); misses != 4 || st.memo.hits != st.n-4 || !st.memo.project {
		t.Fatalf("%d rows, %d memo entries, %d hits (projected %v): the rules ran per row", st.n, misses, st.memo.hits, st.memo.project)
	}
}

// TestProjectedMemoProbe: a batch whose rows repeat whole is keyed whole
// after the probe rows, one whose
// rows are all distinct stays keyed by layout; both give the reference's
// output.
func TestProjectedMemoProbe(t *testing.T) {
	set := parse(t, `rules:
  - name: env
    signal: metrics
    set:
      attributes["env"]: concat(attributes["route"], "-prod")
  - name: id
    signal: metrics
    delete: ['attributes["id"]']
`)
	for _, distinct := range []int{3, 5000} {
		req := &colmetrics.ExportMetricsServiceRequest{}
		g := &metrics.Gauge{}
		for n := range 2000 {
			g.DataPoints = append(g.DataPoints, &metrics.NumberDataPoint{
				TimeUnixNano: uint64(n),
				Value:        &metrics.NumberDataPoint_AsDouble{AsDouble: 1},
				Attributes: []*common.KeyValue{
					str("route", []string{"/a", "/b", "/c"}[n%3]),
					str("id", fmt.Sprintf("%016x", n%distinct)),
				},
			})
		}
		req.ResourceMetrics = []*metrics.ResourceMetrics{{ScopeMetrics: []*metrics.ScopeMetrics{{
			Metrics: []*metrics.Metric{{Name: "m", Data: &metrics.Metric_Gauge{Gauge: g}}}}}}}
		check(t, set, req)

		body, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		bl := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
		if _, err := bl.Append(body); err != nil {
			t.Fatal(err)
		}
		b := bl.Build()
		e := New(set, Options{})
		st := newState(e)
		st.begin(b, otlpwire.Metrics, e.sigs[otlpwire.Metrics])
		if err := st.evaluate(); err != nil {
			t.Fatal(err)
		}
		if want := distinct > 1000; st.memo.project != want {
			t.Errorf("%d distinct rows of 2000: keyed by layout %v, want %v", distinct, st.memo.project, want)
		}
		// 3 routes: 3 entries keyed by layout, and 3 keyed whole.
		if max := 3 + min(distinct, 3); len(st.memo.entries) > max {
			t.Errorf("%d distinct rows: %d memo entries, want at most %d", distinct, len(st.memo.entries), max)
		}
		st.end()
		b.Release()
		bl.Release()
	}
}

// TestAttributeValues: which attribute values a rule's outcome depends on.
func TestAttributeValues(t *testing.T) {
	for _, tt := range []struct {
		y    string
		keys []string
		all  bool
	}{
		{`when: attributes["a"] == "x" && attributes.b == 1
    drop: true`, []string{"a", "b"}, false},
		{`delete: ['attributes["id"]']`, nil, false},
		{`keep_keys: {attributes: [a]}`, nil, false},
		{`aggregate: {without: [id]}`, nil, false},
		{`set:
      attributes["env"]: concat(attributes["c"], "x")`, []string{"c", "env"}, false},
		{`rename:
      attributes["a"]: attributes["b"]`, []string{"a", "b"}, false},
		{`when: '"a" in attributes'
    drop: true`, nil, true},
		{`when: len(attributes) > 3
    drop: true`, nil, true},
		{`when: attributes["a" + "b"] == "x"
    drop: true`, []string{"ab"}, false},
		{`when: any(["a", "b"], {attributes[#] == "x"})
    drop: true`, nil, true},
		{`sample: 0.5`, nil, true},
	} {
		set := parse(t, "rules:\n  - name: a\n    signal: metrics\n    "+tt.y+"\n")
		keys, all := set.All()[0].AttributeValues()
		if all != tt.all || !slices.Equal(keys, tt.keys) {
			t.Errorf("%s: AttributeValues = %q, %v; want %q, %v", tt.y, keys, all, tt.keys, tt.all)
		}
	}
}
