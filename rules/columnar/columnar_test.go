package columnar

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

func parse(t testing.TB, yaml string) *rules.Set {
	t.Helper()
	set, err := rules.Parse(map[string][]byte{"r.yaml": []byte(yaml)})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, yaml)
	}
	return set
}

func exampleSet(t testing.TB) *rules.Set {
	t.Helper()
	b, err := os.ReadFile("../testdata/good/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Parse(map[string][]byte{"example.yaml": b})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func sigOf(req proto.Message) otlpwire.Signal {
	switch req.(type) {
	case *colmetrics.ExportMetricsServiceRequest:
		return otlpwire.Metrics
	case *collogs.ExportLogsServiceRequest:
		return otlpwire.Logs
	}
	return otlpwire.Traces
}

// testPool recycles the buffers of every test's batches and poisons them
// when freed: an output that uses a released input's memory shows.
var testPool = arrowpool.NewPoisoned()

// runEngine: OTLP -> Arrow -> Engine -> OTLP, with a checked allocator on
// the poisoning pool; the input batch is released before the output is
// read, as the worker does. It reports whether the engine returned its
// input.
func runEngine(t testing.TB, set *rules.Set, req proto.Message) (proto.Message, bool) {
	t.Helper()
	mem := memory.NewCheckedAllocator(testPool)
	return runOn(t, New(set, Options{Allocator: mem}), mem, req)
}

// runOn is runEngine with engine e on mem.
func runOn(t testing.TB, e *Engine, mem *memory.CheckedAllocator, req proto.Message) (proto.Message, bool) {
	t.Helper()
	return runOnSets(t, e, mem, req, false)
}

// applyReq decodes req on mem (its attribute sets found, with sets, as the
// worker gives them) and applies e: the output, to release, and whether
// it is the input.
func applyReq(t testing.TB, e *Engine, mem memory.Allocator, req proto.Message, sets bool) (*schemas.Batch, bool) {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	bl := schemas.NewBuilder(sigOf(req), mem)
	defer bl.Release()
	if _, err := bl.Append(body); err != nil {
		t.Fatal(err)
	}
	in := bl.Build()
	if sets {
		in.FindItemAttrSets(nil)
	}
	out, err := e.Apply(in)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		in.Release()
	}
	return out, out == in
}

// runOnSets is runOn; with sets, the input batch has its attribute sets
// (FindItemAttrSets), as the worker gives them.
func runOnSets(t testing.TB, e *Engine, mem *memory.CheckedAllocator, req proto.Message, sets bool) (proto.Message, bool) {
	t.Helper()
	out, same := applyReq(t, e, mem, req, sets)
	enc, err := schemas.ToOTLP(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	out.Release()
	mem.AssertSize(t, 0)
	got := req.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(enc, got); err != nil {
		t.Fatal(err)
	}
	return got, same
}

func reference(set *rules.Set, req proto.Message) proto.Message {
	switch r := req.(type) {
	case *colmetrics.ExportMetricsServiceRequest:
		return refMetrics(set, r)
	case *collogs.ExportLogsServiceRequest:
		return refLogs(set, r)
	}
	return refTraces(set, req.(*coltrace.ExportTraceServiceRequest))
}

func check(t *testing.T, set *rules.Set, req proto.Message) {
	t.Helper()
	got, _ := runEngine(t, set, req)
	want := reference(set, req)
	if !proto.Equal(got, want) {
		t.Fatalf("columnar and reference differ\ngot:  %s\nwant: %s", prototext.Format(got), prototext.Format(want))
	}
}

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

func sval(s string) *common.AnyValue {
	return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: s}}
}

// TestExample checks the example rules by hand-written expectations.
func TestExample(t *testing.T) {
	set := exampleSet(t)
	t.Run("traces", func(t *testing.T) {
		span := func(route string, extra ...*common.KeyValue) *trace.Span {
			return &trace.Span{TraceId: []byte{1, 2}, SpanId: []byte{3}, Name: "GET", Attributes: append([]*common.KeyValue{str("http.route", route)}, extra...)}
		}
		req := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{
			Resource: &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "a")}},
			ScopeSpans: []*trace.ScopeSpans{{Spans: []*trace.Span{
				span("/healthz"), span("/x", str("user.email", "Bob@Example.com")), span("/readyz"), span("/y"),
			}}},
		}, {
			Resource:   &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "b")}},
			ScopeSpans: []*trace.ScopeSpans{{Spans: []*trace.Span{span("/healthz")}}},
		}}}
		got, _ := runEngine(t, set, req)
		want := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{
			Resource: &resource.Resource{Attributes: []*common.KeyValue{str("service.name", "a")}},
			ScopeSpans: []*trace.ScopeSpans{{Spans: []*trace.Span{
				// sha256("Bob@Example.com"), lowercase hex
				span("/x", str("user.email", "e2ed52b8ed4d1ff8a1e68e1e1d05e19436d6e3d2f28db7b2b0a0a35ffb84d62f")), span("/y"),
			}}},
		}}}
		// compute the hash independently of the rules' function
		want.ResourceSpans[0].ScopeSpans[0].Spans[0].Attributes[1].Value = sval(sha256hex("Bob@Example.com"))
		if !proto.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", prototext.Format(got), prototext.Format(want))
		}
	})
	t.Run("logs", func(t *testing.T) {
		var recs []*logs.LogRecord
		for sev := 1; sev <= 24; sev++ {
			recs = append(recs, &logs.LogRecord{SeverityNumber: logs.SeverityNumber(sev), Body: sval(fmt.Sprint("msg ", sev))})
		}
		req := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{{LogRecords: recs}}}}}
		got, _ := runEngine(t, set, req)
		want := proto.Clone(req).(*collogs.ExportLogsServiceRequest)
		want.ResourceLogs[0].ScopeLogs[0].LogRecords = want.ResourceLogs[0].ScopeLogs[0].LogRecords[8:]
		if !proto.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", prototext.Format(got), prototext.Format(want))
		}
	})
	t.Run("metrics", func(t *testing.T) {
		pt := func(kvs ...*common.KeyValue) *metrics.NumberDataPoint {
			return &metrics.NumberDataPoint{Attributes: kvs, Value: &metrics.NumberDataPoint_AsDouble{AsDouble: 1}}
		}
		req := &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{
			ScopeMetrics: []*metrics.ScopeMetrics{{Metrics: []*metrics.Metric{{Name: "m", Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: []*metrics.NumberDataPoint{
				pt(str("route", "/api/v1/items/123"), str("user.id", "u1"), str("k8s.pod.name", "p-1"), str("method", "GET")),
				pt(str("route", "/api/v1/items/{id}")),
				pt(str("method", "GET")), // no route: replace_regex fails, rule skipped
			}}}}}}},
		}}}
		got, _ := runEngine(t, set, req)
		want := proto.Clone(req).(*colmetrics.ExportMetricsServiceRequest)
		pts := want.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetGauge().DataPoints
		pts[0].Attributes = []*common.KeyValue{str("route", "/api/v1/items/{id}"), str("method", "GET"), str("pod", "p-1")}
		if !proto.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", prototext.Format(got), prototext.Format(want))
		}
		check(t, set, req)
	})
}

// TestNoop: rules that change nothing return the input batch.
func TestNoop(t *testing.T) {
	for _, y := range []string{
		"rules:\n  - name: a\n    signal: traces\n    when: attributes[\"x\"] == \"never\"\n    drop: true\n",
		"rules:\n  - name: a\n    signal: logs\n    set:\n      attributes[\"http.method\"]: '\"GET\"'\n",
		"rules:\n  - name: a\n    signal: metrics\n    drop: true\n", // another signal
	} {
		set := parse(t, y)
		req := genTraces(rand.New(rand.NewPCG(1, 1)))
		if strings.Contains(y, "logs") {
			l := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{{LogRecords: []*logs.LogRecord{{Attributes: []*common.KeyValue{str("http.method", "GET")}}}}}}}}
			if _, same := runEngine(t, set, l); !same {
				t.Errorf("%s: not the same batch", y)
			}
			continue
		}
		if _, same := runEngine(t, set, req); !same {
			t.Errorf("%s: not the same batch", y)
		}
	}
}

func TestWritesResource(t *testing.T) {
	for y, want := range map[string]bool{
		"    drop: true\n":                                          false,
		"    sample: 0.5\n":                                         false,
		"    set:\n      attributes[\"a\"]: '1'\n":                  false,
		"    set:\n      resource[\"a\"]: '1'\n":                    true,
		"    delete: ['attributes[\"a\"]']\n":                       false,
		"    delete: ['resource[\"a\"]']\n":                         true,
		"    rename:\n      attributes[\"a\"]: attributes[\"b\"]\n": false,
		"    rename:\n      attributes[\"a\"]: resource[\"b\"]\n":   true,
		"    rename:\n      resource[\"a\"]: attributes[\"b\"]\n":   true,
		"    keep_keys: {attributes: [a]}\n":                        false,
		"    keep_keys: {resource: [a]}\n":                          true,
		"    set:\n      name: '\"x\"'\n":                           false,
	} {
		set := parse(t, "rules:\n  - name: a\n    signal: metrics\n    when: value > 1\n"+y)
		if got := writesResource(set.All()[0]); got != want {
			t.Errorf("%q: writesResource = %v, want %v", y, got, want)
		}
	}
}

// Rule pools for the property test: every action and target kind.
var rulePool = map[otlpwire.Signal][]string{
	otlpwire.Metrics: {
		`when: attributes["k0"] == "a"
    drop: true`,
		`when: value < 20
    keep: true`,
		`set:
      attributes["route"]: replace_regex(attributes["route"], "/[0-9]+", "/{id}")`,
		`when: attributes["k1"] == "b"
    set:
      name: concat(name, "_b")
      unit: '"By"'`,
		`when: attributes["k2"] == "c"
    set:
      resource["tier"]: '"gold"'`,
		`delete: ['attributes["k3"]', 'resource["host.name"]']`,
		`when: type == "sum"
    keep_keys: {attributes: ["k0", "k1", "route"]}`,
		`keep_keys: {resource: ["service.name"]}`,
		`rename:
      attributes["k4"]: resource["moved"]
      resource["service.name"]: attributes["svc"]`,
		`sample: 0.5`,
		`set:
      attributes["n2"]: attributes["num"] + 1`,
		`on_error: drop
    set:
      attributes["n3"]: attributes["num"] * 2`,
		`when: resource["service.name"] == "svc-1"
    set:
      attributes["k5"]: nil
      attributes["arr"]: '[1, "x"]'`,
		`when: scope.name == "s1"
    set:
      name: '"renamed"'`,
	},
	otlpwire.Logs: {
		`when: severity_number < 9
    drop: true`,
		`when: attributes["k0"] != "a"
    keep: true`,
		`set:
      body: concat("[", severity_text, "] ", body)`,
		`when: attributes["k1"] == "b"
    set:
      severity_text: '"WARN"'
      severity_number: '13'`,
		`when: attributes["k2"] == "c"
    set:
      resource["tier"]: '"gold"'
      attributes["tid"]: trace_id`,
		`delete: ['attributes["k3"]', 'resource["host.name"]']`,
		`keep_keys: {attributes: ["k0", "k1"], resource: ["service.name"]}`,
		`rename:
      attributes["k4"]: attributes["k44"]`,
		`sample: 0.3`,
		`on_error: drop
    set:
      attributes["n"]: attributes["num"] + 1`,
		`set:
      body: nil`,
		`when: attributes["k5"] == "a"
    set:
      body: '42'`,
	},
	otlpwire.Traces: {
		`when: attributes["http.route"] in ["/healthz", "/readyz"]
    drop: true`,
		`when: '"user.email" in attributes'
    set:
      attributes["user.email"]: sha256(attributes["user.email"])`,
		`when: kind == "server" && duration_ms > 5
    set:
      name: concat(name, " slow")
      status_message: '"slow"'`,
		`when: status_code == "error"
    set:
      resource["had.error"]: 'true'`,
		`delete: ['attributes["k3"]']`,
		`keep_keys: {attributes: ["http.route", "k0"]}`,
		`rename:
      attributes["k0"]: attributes["zz"]
      resource["host.name"]: resource["host"]`,
		`sample: 0.5`,
		`when: parent_span_id == ""
    set:
      attributes["root"]: 'true'
      attributes["sid"]: span_id`,
		`on_error: drop
    set:
      attributes["x"]: parse_int(attributes["k1"])`,
		`when: attributes["k2"] == "c"
    keep: true`,
	},
}

func ruleYAML(sig otlpwire.Signal, idx []int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for _, i := range idx {
		fmt.Fprintf(&b, "  - name: r%d\n    signal: %s\n    %s\n", i, sig, rulePool[sig][i])
	}
	return b.String()
}

// TestEachRule applies every rule of the pools alone, on every signal.
func TestEachRule(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		for i := range rulePool[sig] {
			set := parse(t, ruleYAML(sig, []int{i}))
			for seed := range 3 {
				check(t, set, gen(sig, rand.New(rand.NewPCG(uint64(seed), uint64(i)))))
			}
		}
	}
}

// TestProperty compares the engine with the reference on random data and
// random rule sets.
func TestProperty(t *testing.T) {
	n := 150
	if testing.Short() {
		n = 30
	}
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 99))
		sig, set := randomRules(t, r)
		req := gen(sig, r)
		t.Run(fmt.Sprint(seed), func(t *testing.T) { check(t, set, req) })
	}
}

// TestPropertyReused is TestProperty with one Engine applying batch after
// batch, as a worker does: its state, reused across batches (the memo,
// the build plan's slices), must not carry anything from one to the next.
func TestPropertyReused(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 10
	}
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 77))
		sig, set := randomRules(t, r)
		mem := memory.NewCheckedAllocator(testPool)
		e := New(set, Options{Allocator: mem})
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			for batch := range 6 {
				req := gen(sig, r)
				if batch%2 == 1 {
					dupAttrs(req, r, 1+r.IntN(4)) // the memo hits
				}
				// Batches 3 and 5 come with their attribute sets.
				got, _ := runOnSets(t, e, mem, req, batch >= 3)
				if want := reference(set, req); !proto.Equal(got, want) {
					t.Fatalf("batch %d: columnar and reference differ\ngot:  %s\nwant: %s", batch, prototext.Format(got), prototext.Format(want))
				}
			}
		})
	}
}

// randomRules picks a signal and a set of one to five rules of its pool.
func randomRules(t *testing.T, r *rand.Rand) (otlpwire.Signal, *rules.Set) {
	sig := otlpwire.Signals[r.IntN(3)]
	pool := rulePool[sig]
	idx := r.Perm(len(pool))[:1+r.IntN(min(5, len(pool)))]
	return sig, parse(t, ruleYAML(sig, idx))
}

func gen(sig otlpwire.Signal, r *rand.Rand) proto.Message {
	switch sig {
	case otlpwire.Metrics:
		return genMetrics(r)
	case otlpwire.Logs:
		return genLogs(r)
	}
	return genTraces(r)
}

func genAttrs(r *rand.Rand) []*common.KeyValue {
	var kvs []*common.KeyValue
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "route", "num", "user.email", "http.route", "b"}
	for _, i := range r.Perm(len(keys))[:r.IntN(len(keys))] {
		k := keys[i]
		var v *common.AnyValue
		switch k {
		case "route", "http.route":
			v = sval([]string{"/api/v1/items/12", "/healthz", "/readyz", "/x/7/y/8"}[r.IntN(4)])
		case "num":
			v = &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(r.IntN(100))}}
			if r.IntN(4) == 0 {
				v = sval("nan")
			}
		case "b":
			switch r.IntN(4) {
			case 0:
				v = &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: []byte{1, 2}}}
			case 1:
				v = &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: true}}
			case 2:
				v = &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: 1.5}}
			default:
				v = &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: &common.ArrayValue{Values: []*common.AnyValue{sval("a")}}}}
			}
		default:
			v = sval([]string{"a", "b", "c", "12"}[r.IntN(4)])
		}
		kvs = append(kvs, &common.KeyValue{Key: k, Value: v})
	}
	return kvs
}

func genResource(r *rand.Rand, i int) *resource.Resource {
	if r.IntN(6) == 0 {
		return nil
	}
	return &resource.Resource{Attributes: []*common.KeyValue{str("service.name", fmt.Sprint("svc-", i%3)), str("host.name", fmt.Sprint("h", i))}}
}

func genScope(r *rand.Rand, i int) *common.InstrumentationScope {
	if r.IntN(5) == 0 {
		return nil
	}
	return &common.InstrumentationScope{Name: fmt.Sprint("s", i%2), Version: "1"}
}

func genID(r *rand.Rand, n int) []byte {
	if r.IntN(5) == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func genMetrics(r *rand.Rand) *colmetrics.ExportMetricsServiceRequest {
	req := &colmetrics.ExportMetricsServiceRequest{}
	for ri := range 1 + r.IntN(3) {
		rm := &metrics.ResourceMetrics{Resource: genResource(r, ri)}
		for si := range 1 + r.IntN(2) {
			sm := &metrics.ScopeMetrics{Scope: genScope(r, si)}
			for mi := range r.IntN(4) {
				m := &metrics.Metric{Name: fmt.Sprint("m", mi), Unit: "1"}
				np := r.IntN(5)
				switch r.IntN(4) {
				case 0, 1:
					var pts []*metrics.NumberDataPoint
					for range np {
						p := &metrics.NumberDataPoint{Attributes: genAttrs(r), TimeUnixNano: uint64(r.IntN(1000))}
						if r.IntN(2) == 0 {
							p.Value = &metrics.NumberDataPoint_AsDouble{AsDouble: float64(r.IntN(400)) / 10}
						} else {
							p.Value = &metrics.NumberDataPoint_AsInt{AsInt: int64(r.IntN(40))}
						}
						pts = append(pts, p)
					}
					if r.IntN(2) == 0 {
						m.Data = &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}}
					} else {
						m.Data = &metrics.Metric_Sum{Sum: &metrics.Sum{DataPoints: pts, AggregationTemporality: 2, IsMonotonic: true}}
					}
				case 2:
					var pts []*metrics.HistogramDataPoint
					for range np {
						s := float64(r.IntN(40))
						pts = append(pts, &metrics.HistogramDataPoint{Attributes: genAttrs(r), Count: 3, Sum: &s, BucketCounts: []uint64{1, 2}, ExplicitBounds: []float64{5}})
					}
					m.Data = &metrics.Metric_Histogram{Histogram: &metrics.Histogram{DataPoints: pts, AggregationTemporality: 1}}
				default:
					var pts []*metrics.SummaryDataPoint
					for range np {
						pts = append(pts, &metrics.SummaryDataPoint{Attributes: genAttrs(r), Count: 2, Sum: float64(r.IntN(40)),
							QuantileValues: []*metrics.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: 1}}})
					}
					m.Data = &metrics.Metric_Summary{Summary: &metrics.Summary{DataPoints: pts}}
				}
				sm.Metrics = append(sm.Metrics, m)
			}
			rm.ScopeMetrics = append(rm.ScopeMetrics, sm)
		}
		req.ResourceMetrics = append(req.ResourceMetrics, rm)
	}
	return req
}

func genLogs(r *rand.Rand) *collogs.ExportLogsServiceRequest {
	req := &collogs.ExportLogsServiceRequest{}
	for ri := range 1 + r.IntN(3) {
		rl := &logs.ResourceLogs{Resource: genResource(r, ri)}
		for si := range 1 + r.IntN(2) {
			sl := &logs.ScopeLogs{Scope: genScope(r, si)}
			for range r.IntN(8) {
				l := &logs.LogRecord{
					TimeUnixNano: uint64(r.IntN(1000)), SeverityNumber: logs.SeverityNumber(1 + r.IntN(24)), SeverityText: "INFO",
					Attributes: genAttrs(r), TraceId: genID(r, 16), SpanId: genID(r, 8),
				}
				if l.TraceId == nil {
					l.TraceId = []byte{7} // sampling logs without trace id is random
				}
				switch r.IntN(4) {
				case 0:
				case 1:
					l.Body = &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: 5}}
				default:
					l.Body = sval(fmt.Sprint("message ", r.IntN(100)))
				}
				sl.LogRecords = append(sl.LogRecords, l)
			}
			rl.ScopeLogs = append(rl.ScopeLogs, sl)
		}
		req.ResourceLogs = append(req.ResourceLogs, rl)
	}
	return req
}

func genTraces(r *rand.Rand) *coltrace.ExportTraceServiceRequest {
	req := &coltrace.ExportTraceServiceRequest{}
	for ri := range 1 + r.IntN(3) {
		rs := &trace.ResourceSpans{Resource: genResource(r, ri)}
		for si := range 1 + r.IntN(2) {
			ss := &trace.ScopeSpans{Scope: genScope(r, si)}
			for range r.IntN(8) {
				sp := &trace.Span{
					TraceId: genID(r, 16), SpanId: genID(r, 8), ParentSpanId: genID(r, 8), Name: "op",
					Kind:              trace.Span_SpanKind(r.IntN(6)),
					StartTimeUnixNano: 1000, EndTimeUnixNano: 1000 + uint64(r.IntN(10_000_000)),
					Attributes: genAttrs(r),
				}
				if sp.TraceId == nil {
					sp.TraceId = []byte{9}
				}
				switch r.IntN(3) {
				case 0:
				case 1:
					sp.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "boom"}
				default:
					sp.Status = &trace.Status{Code: trace.Status_STATUS_CODE_OK}
				}
				ss.Spans = append(ss.Spans, sp)
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		req.ResourceSpans = append(req.ResourceSpans, rs)
	}
	return req
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
