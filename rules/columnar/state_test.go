package columnar

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// Helpers of the step tests (build_test.go, eval_test.go): a state as
// Engine.Apply has it, on small batches whose rows are known.

// stepState returns the state Engine.Apply would use for req under set,
// after begin: the batch is decoded, nothing evaluated. The batch is
// released, and the allocator checked for leaks, when the test ends.
func stepState(t *testing.T, set *rules.Set, req proto.Message) *state {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	sig := sigOf(req)
	bl := schemas.NewBuilder(sig, mem)
	if _, err := bl.Append(body); err != nil {
		t.Fatal(err)
	}
	b := bl.Build()
	bl.Release()
	e := New(set, Options{Allocator: mem})
	st := newState(e)
	st.begin(b, sig, e.sigs[sig])
	t.Cleanup(func() {
		st.end()
		b.Release()
		mem.AssertSize(t, 0)
	})
	return st
}

// noRules is a set with a rule for every signal that changes nothing.
func noRules(t *testing.T) *rules.Set {
	return parse(t, `rules:
  - {name: m, signal: metrics, when: "false", drop: true}
  - {name: l, signal: logs, when: "false", drop: true}
  - {name: t, signal: traces, when: "false", drop: true}
`)
}

func ival(v int64) *common.AnyValue {
	return &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: v}}
}

func res(name string) *resource.Resource {
	return &resource.Resource{Attributes: []*common.KeyValue{str("service.name", name)}}
}

func gauge(name, unit string, routes ...string) *metrics.Metric {
	var pts []*metrics.NumberDataPoint
	for _, r := range routes {
		pts = append(pts, &metrics.NumberDataPoint{Attributes: []*common.KeyValue{str("route", r)}, Value: &metrics.NumberDataPoint_AsInt{AsInt: 1}})
	}
	return &metrics.Metric{Name: name, Unit: unit, Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}}}
}

// metricsReq has 2 resources, 3 scopes, 4 metrics and 6 points:
//
//	point     0    1    2    3    4    5
//	resource  0    0    0    0    1    1
//	scope     0    0    0    1    2    2
//	metric    0    0    1    2    3    3
//	route     /a   /b   /a   /a   /a   /c
func metricsReq() *colmetrics.ExportMetricsServiceRequest {
	return &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{
		{Resource: res("a"), ScopeMetrics: []*metrics.ScopeMetrics{
			{Scope: &common.InstrumentationScope{Name: "s0"}, Metrics: []*metrics.Metric{gauge("cpu", "1", "/a", "/b"), gauge("mem", "By", "/a")}},
			{Scope: &common.InstrumentationScope{Name: "s1"}, Metrics: []*metrics.Metric{gauge("req", "1", "/a")}},
		}},
		{Resource: res("b"), ScopeMetrics: []*metrics.ScopeMetrics{
			{Scope: &common.InstrumentationScope{Name: "s2"}, Metrics: []*metrics.Metric{gauge("cpu", "1", "/a", "/c")}},
		}},
	}}
}

func logRec(sev int, text, body string, attrs ...*common.KeyValue) *logs.LogRecord {
	return &logs.LogRecord{SeverityNumber: logs.SeverityNumber(sev), SeverityText: text, Body: sval(body), Attributes: attrs}
}

// logsReq has 2 resources, one scope each, and 5 records: 0-2 under
// resource 0 (service a), 3-4 under resource 1 (service b).
func logsReq() *collogs.ExportLogsServiceRequest {
	return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{
		{Resource: res("a"), ScopeLogs: []*logs.ScopeLogs{{Scope: &common.InstrumentationScope{Name: "s0", Version: "1"}, LogRecords: []*logs.LogRecord{
			logRec(9, "INFO", "m0", str("k", "0")),
			logRec(13, "WARN", "m1", str("k", "1"), &common.KeyValue{Key: "n", Value: ival(1)}),
			logRec(17, "ERROR", "m2"),
		}}}},
		{Resource: res("b"), ScopeLogs: []*logs.ScopeLogs{{Scope: &common.InstrumentationScope{Name: "s1", Version: "2"}, LogRecords: []*logs.LogRecord{
			logRec(9, "INFO", "m3", str("k", "0")),
			logRec(5, "DEBUG", "m4", str("k", "0")),
		}}}},
	}}
}

// tracesReq has one resource and scope, and 3 spans: 0 without status,
// 1 with status ok, 2 with status error "boom".
func tracesReq() *coltrace.ExportTraceServiceRequest {
	return &coltrace.ExportTraceServiceRequest{ResourceSpans: []*trace.ResourceSpans{{Resource: res("a"), ScopeSpans: []*trace.ScopeSpans{{Spans: []*trace.Span{
		{TraceId: []byte{1}, SpanId: []byte{1}, Name: "a", StartTimeUnixNano: 1, EndTimeUnixNano: 2_000_001},
		{TraceId: []byte{1}, SpanId: []byte{2}, Name: "b", Status: &trace.Status{Code: trace.Status_STATUS_CODE_OK}},
		{TraceId: []byte{1}, SpanId: []byte{3}, Name: "c", Status: &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "boom"}},
	}}}}}}
}

// u32s is an Arrow uint32 array of vals, released when the test ends.
func u32s(t *testing.T, vals ...int32) *array.Uint32 {
	a := u32Column(memory.DefaultAllocator, vals).(*array.Uint32)
	t.Cleanup(a.Release)
	return a
}

// strings32 returns the values of a string column.
func stringsOf(a arrow.Array) []string {
	s := a.(*array.String)
	out := make([]string, s.Len())
	for i := range out {
		out[i] = s.Value(i)
	}
	return out
}

func u32sOf(a arrow.Array) []int32 {
	u := a.(*array.Uint32)
	out := make([]int32, u.Len())
	for i := range out {
		out[i] = int32(u.Value(i))
	}
	return out
}

// setPatches gives item rows the patches ps (row -> patch), as evaluate
// would have recorded them.
func setPatches(st *state, ps map[int]patch) {
	for i := range st.n {
		st.patchOf[i] = -1
	}
	for i := range st.n {
		if p, ok := ps[i]; ok {
			st.patchOf[i] = int32(len(st.patches))
			st.patches = append(st.patches, p)
		}
	}
}
