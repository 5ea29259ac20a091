package otlpjson

import (
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Requests shaped like an SDK's batches: a resource with the usual
// attributes, then 100 spans, 100 log records, or 50 metrics of 5 points.

func benchAttrs(n, salt int) []*commonpb.KeyValue {
	kvs := make([]*commonpb.KeyValue, 0, n)
	for i := range n {
		var v *commonpb.AnyValue
		switch i % 4 {
		case 0:
			v = str(fmt.Sprintf("value-%d-%d", salt, i))
		case 1:
			v = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(salt * i)}}
		case 2:
			v = &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}
		case 3:
			v = &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: float64(salt) / 7}}
		}
		kvs = append(kvs, &commonpb.KeyValue{Key: fmt.Sprintf("attribute.key.%d", i), Value: v})
	}
	return kvs
}

func benchResource() *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
		{Key: "service.name", Value: str("checkout")},
		{Key: "service.version", Value: str("1.4.2")},
		{Key: "host.name", Value: str("node-17.eu-west-1")},
		{Key: "k8s.pod.name", Value: str("checkout-6f9c7d9b8-x2x7q")},
		{Key: "telemetry.sdk.language", Value: str("go")},
	}}
}

func benchID(n, i int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7 + 1)
	}
	return b
}

func benchTraces() proto.Message {
	var ss []*tracepb.Span
	for i := range 100 {
		ss = append(ss, &tracepb.Span{
			TraceId: benchID(16, i), SpanId: benchID(8, i), ParentSpanId: benchID(8, i+1),
			Name: fmt.Sprintf("GET /api/v1/items/%d", i), Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: 1700000000000000000 + uint64(i)*1000, EndTimeUnixNano: 1700000000000500000 + uint64(i)*1000,
			Attributes: benchAttrs(8, i),
			Events:     []*tracepb.Span_Event{{TimeUnixNano: 1700000000000100000, Name: "cache.miss", Attributes: benchAttrs(2, i)}},
			Status:     &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
		})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   benchResource(),
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "net/http", Version: "0.60.0"}, Spans: ss}},
	}}}
}

func benchLogs() proto.Message {
	var recs []*logspb.LogRecord
	for i := range 100 {
		recs = append(recs, &logspb.LogRecord{
			TimeUnixNano: 1700000000000000000 + uint64(i), ObservedTimeUnixNano: 1700000000000000100 + uint64(i),
			SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO, SeverityText: "INFO",
			Body:       str(fmt.Sprintf("request %d served in %d ms from cache \"eu-west\"", i, i%50)),
			Attributes: benchAttrs(6, i), TraceId: benchID(16, i), SpanId: benchID(8, i), Flags: 1,
		})
	}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource:  benchResource(),
		ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: "slog"}, LogRecords: recs}},
	}}}
}

func benchMetrics() proto.Message {
	var ms []*metricspb.Metric
	for i := range 50 {
		m := &metricspb.Metric{Name: fmt.Sprintf("http.server.metric.%d", i), Unit: "ms", Description: "a metric"}
		switch i % 3 {
		case 0:
			var dps []*metricspb.NumberDataPoint
			for j := range 5 {
				dps = append(dps, &metricspb.NumberDataPoint{Attributes: benchAttrs(3, j), TimeUnixNano: 1700000000000000000,
					Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: float64(i*j) / 3}})
			}
			m.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: dps}}
		case 1:
			var dps []*metricspb.NumberDataPoint
			for j := range 5 {
				dps = append(dps, &metricspb.NumberDataPoint{Attributes: benchAttrs(3, j), StartTimeUnixNano: 1690000000000000000,
					TimeUnixNano: 1700000000000000000, Value: &metricspb.NumberDataPoint_AsInt{AsInt: int64(i * j * 1000)}})
			}
			m.Data = &metricspb.Metric_Sum{Sum: &metricspb.Sum{DataPoints: dps, IsMonotonic: true,
				AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}}
		case 2:
			var dps []*metricspb.HistogramDataPoint
			for j := range 5 {
				dps = append(dps, &metricspb.HistogramDataPoint{Attributes: benchAttrs(3, j), TimeUnixNano: 1700000000000000000,
					Count: 100, Sum: proto.Float64(1234.5), BucketCounts: []uint64{1, 5, 20, 50, 20, 3, 1},
					ExplicitBounds: []float64{5, 10, 25, 50, 100, 250}, Min: proto.Float64(0.5), Max: proto.Float64(300)})
			}
			m.Data = &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{DataPoints: dps,
				AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA}}
		}
		ms = append(ms, m)
	}
	return &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource:     benchResource(),
		ScopeMetrics: []*metricspb.ScopeMetrics{{Scope: &commonpb.InstrumentationScope{Name: "otelhttp"}, Metrics: ms}},
	}}}
}

var benchRequests = []struct {
	sig otlpwire.Signal
	new func() proto.Message
}{
	{otlpwire.Traces, benchTraces},
	{otlpwire.Logs, benchLogs},
	{otlpwire.Metrics, benchMetrics},
}

// The protojson sub-benchmarks are the floor of the obvious design (protojson
// and the generated structs, without even the id rewriting), for comparison.

func BenchmarkUnmarshalRequest(b *testing.B) {
	for _, r := range benchRequests {
		m := r.new()
		body, err := MarshalRequest(r.sig, mustMarshal(m), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(r.sig.String()+"/otlpjson", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var dst []byte
			for b.Loop() {
				if dst, err = UnmarshalRequest(r.sig, body, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(r.sig.String()+"/protojson", func(b *testing.B) {
			pjBody, _ := protojson.Marshal(m)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var dst []byte
			for b.Loop() {
				msg := m.ProtoReflect().New().Interface()
				if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(pjBody, msg); err != nil {
					b.Fatal(err)
				}
				if dst, err = (proto.MarshalOptions{}).MarshalAppend(dst[:0], msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshalRequest(b *testing.B) {
	for _, r := range benchRequests {
		m := r.new()
		pb := mustMarshal(m)
		body, _ := MarshalRequest(r.sig, pb, nil)
		b.Run(r.sig.String()+"/otlpjson", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var dst []byte
			var err error
			for b.Loop() {
				if dst, err = MarshalRequest(r.sig, pb, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(r.sig.String()+"/protojson", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			opts := protojson.MarshalOptions{UseEnumNumbers: true}
			var dst []byte
			for b.Loop() {
				msg := m.ProtoReflect().New().Interface()
				if err := proto.Unmarshal(pb, msg); err != nil {
					b.Fatal(err)
				}
				var err error
				if dst, err = opts.MarshalAppend(dst[:0], msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
