package otlpwire_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	. "github.com/sluice-dev/sluice/internal/otlpwire" // the tests are outside the package: see export_test.go
)

// Requests shaped like what an OpenTelemetry SDK or Collector sends.

func benchResource(i int) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
		strAttr("service.name", fmt.Sprintf("checkout-%d", i)),
		strAttr("service.version", "1.42.0"),
		strAttr("service.instance.id", fmt.Sprintf("6f1c9a2e-%04d-4b7e-9a51-3c2d1e0f9b8a", i)),
		strAttr("host.name", fmt.Sprintf("ip-10-0-%d-17.eu-west-1.compute.internal", i)),
		strAttr("k8s.namespace.name", "shop"),
		strAttr("k8s.pod.name", fmt.Sprintf("checkout-7f9c6d-%05d", i)),
		strAttr("telemetry.sdk.name", "opentelemetry"),
		strAttr("telemetry.sdk.language", "go"),
		strAttr("telemetry.sdk.version", "1.47.0"),
	}}
}

func benchAttrs(r *rand.Rand, n int) []*commonpb.KeyValue {
	kvs := make([]*commonpb.KeyValue, n)
	for i := range kvs {
		kvs[i] = strAttr(fmt.Sprintf("attr.%d", i), fmt.Sprintf("value-%06d", r.IntN(1000000)))
	}
	return kvs
}

// benchMetrics: per resource, one scope with nm metrics (60% sums, 20%
// gauges, 20% histograms of 10 buckets) of np points with 6 attributes.
func benchMetrics(nr, nm, np int) *colmetricspb.ExportMetricsServiceRequest {
	r := rand.New(rand.NewPCG(1, 2))
	req := &colmetricspb.ExportMetricsServiceRequest{}
	for i := range nr {
		sm := &metricspb.ScopeMetrics{Scope: &commonpb.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.62.0"}}
		for j := range nm {
			m := &metricspb.Metric{Name: fmt.Sprintf("http.server.metric_%d", j), Unit: "ms", Description: "A metric of the HTTP server."}
			switch j % 5 {
			case 0, 1, 2:
				s := &metricspb.Sum{AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, IsMonotonic: true}
				for range np {
					s.DataPoints = append(s.DataPoints, &metricspb.NumberDataPoint{Attributes: benchAttrs(r, 6), StartTimeUnixNano: 1.7e18, TimeUnixNano: 1.7e18 + 6e10,
						Value: &metricspb.NumberDataPoint_AsInt{AsInt: r.Int64N(1e6)}})
				}
				m.Data = &metricspb.Metric_Sum{Sum: s}
			case 3:
				g := &metricspb.Gauge{}
				for range np {
					g.DataPoints = append(g.DataPoints, &metricspb.NumberDataPoint{Attributes: benchAttrs(r, 6), TimeUnixNano: 1.7e18,
						Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: r.Float64()}})
				}
				m.Data = &metricspb.Metric_Gauge{Gauge: g}
			case 4:
				h := &metricspb.Histogram{AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA}
				for range np {
					p := &metricspb.HistogramDataPoint{Attributes: benchAttrs(r, 6), StartTimeUnixNano: 1.7e18, TimeUnixNano: 1.7e18 + 6e10, Count: 100}
					for b := range 10 {
						p.BucketCounts = append(p.BucketCounts, uint64(r.IntN(20)))
						if b < 9 {
							p.ExplicitBounds = append(p.ExplicitBounds, float64(int(5)<<b))
						}
					}
					h.DataPoints = append(h.DataPoints, p)
				}
				m.Data = &metricspb.Metric_Histogram{Histogram: h}
			}
			sm.Metrics = append(sm.Metrics, m)
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metricspb.ResourceMetrics{Resource: benchResource(i), ScopeMetrics: []*metricspb.ScopeMetrics{sm},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0"})
	}
	return req
}

func benchTraceID(r *rand.Rand, traces int) []byte {
	id := make([]byte, 16)
	binary.BigEndian.PutUint64(id, 0x5b8efff798038103)
	binary.BigEndian.PutUint64(id[8:], uint64(r.IntN(traces)))
	return id
}

// benchLogs: per resource, one scope with n log records of about 300 bytes.
func benchLogs(nr, n int) *collogspb.ExportLogsServiceRequest {
	r := rand.New(rand.NewPCG(3, 4))
	req := &collogspb.ExportLogsServiceRequest{}
	for i := range nr {
		sl := &logspb.ScopeLogs{Scope: &commonpb.InstrumentationScope{Name: "log/slog"}}
		for range n {
			sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{TimeUnixNano: 1.7e18, ObservedTimeUnixNano: 1.7e18, SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
				SeverityText: "INFO", Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "order placed: " + strings.Repeat("x", 100+r.IntN(40))}},
				Attributes: benchAttrs(r, 4), TraceId: benchTraceID(r, 100), SpanId: []byte("\x01\x02\x03\x04\x05\x06\x07\x08"), Flags: 1})
		}
		req.ResourceLogs = append(req.ResourceLogs, &logspb.ResourceLogs{Resource: benchResource(i), ScopeLogs: []*logspb.ScopeLogs{sl}})
	}
	return req
}

// benchTraces: per resource, one scope with n spans of 100 traces.
func benchTraces(nr, n int) *coltracepb.ExportTraceServiceRequest {
	r := rand.New(rand.NewPCG(5, 6))
	req := &coltracepb.ExportTraceServiceRequest{}
	for i := range nr {
		ss := &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.62.0"}}
		for j := range n {
			sp := &tracepb.Span{TraceId: benchTraceID(r, 100), SpanId: []byte("\x01\x02\x03\x04\x05\x06\x07\x08"), ParentSpanId: []byte("\x08\x07\x06\x05\x04\x03\x02\x01"),
				Name: "GET /api/orders/{id}", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: 1.7e18, EndTimeUnixNano: 1.7e18 + 3e6,
				Attributes: benchAttrs(r, 8), Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}}
			if j%4 == 0 {
				sp.Events = append(sp.Events, &tracepb.Span_Event{TimeUnixNano: 1.7e18, Name: "cache miss", Attributes: benchAttrs(r, 2)})
			}
			ss.Spans = append(ss.Spans, sp)
		}
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{Resource: benchResource(i), ScopeSpans: []*tracepb.ScopeSpans{ss}})
	}
	return req
}

type benchCase struct {
	name string
	sig  Signal
	req  proto.Message
	opt  Options
}

func benchCases() []benchCase {
	metrics := benchMetrics(10, 100, 10)
	logs := benchLogs(10, 100)
	traces := benchTraces(10, 100)
	const mib = 1 << 20
	return []benchCase{
		{"metrics", Metrics, metrics, Options{Partitions: 16, MaxRecordBytes: mib}},
		{"metrics-whole", Metrics, metrics, Options{Partitions: 1}},
		{"metrics-cut", Metrics, metrics, Options{Partitions: 16, MaxRecordBytes: 64 << 10}},
		{"logs", Logs, logs, Options{Partitions: 16, MaxRecordBytes: mib}},
		{"logs-traceid", Logs, logs, Options{Partitions: 16, Key: KeyTraceID, MaxRecordBytes: mib}},
		{"traces", Traces, traces, Options{Partitions: 16, MaxRecordBytes: mib}},
	}
}

// run times f over body, which holds items items, and reports items/s and
// allocations per item.
func run(b *testing.B, body []byte, items int, f func()) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	f() // warm up buffers
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	for b.Loop() {
		f()
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(items)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(items)/float64(b.N), "allocs/item")
}

func BenchmarkSplit(b *testing.B) {
	for _, bc := range benchCases() {
		body := marshal(b, bc.req)
		n, err := Count(bc.sig, body)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			var s Splitter
			run(b, body, n, func() {
				if _, err := s.Split(bc.sig, body, bc.opt); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

func BenchmarkCount(b *testing.B) {
	for _, bc := range benchCases() {
		if strings.Contains(bc.name, "-") {
			continue
		}
		body := marshal(b, bc.req)
		n, _ := Count(bc.sig, body)
		b.Run(bc.name, func(b *testing.B) {
			run(b, body, n, func() {
				if _, err := Count(bc.sig, body); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkUnmarshal is the baseline: decoding the same requests into the
// generated structs.
func BenchmarkUnmarshal(b *testing.B) {
	for _, bc := range benchCases() {
		if strings.Contains(bc.name, "-") {
			continue
		}
		body := marshal(b, bc.req)
		n, _ := Count(bc.sig, body)
		b.Run(bc.name, func(b *testing.B) {
			run(b, body, n, func() {
				if err := proto.Unmarshal(body, NewRequest(bc.sig)); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
