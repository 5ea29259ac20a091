package otlpwire_test

import (
	"bytes"
	"errors"
	"fmt"
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
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	. "github.com/sluice-dev/sluice/internal/otlpwire" // the tests are outside the package: see export_test.go
)

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func split(t *testing.T, sig Signal, body []byte, opt Options) Result {
	t.Helper()
	var s Splitter
	res, err := s.Split(sig, body, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSplitWholeBody(t *testing.T) {
	g := otlptest.NewGen(1, otlptest.GenOptions{})
	body := g.Request(Metrics)
	for n, _ := Count(Metrics, body); n == 0; n, _ = Count(Metrics, body) { // one with data points
		body = g.Request(Metrics)
	}
	for _, opt := range []Options{
		{Partitions: 1},
		{Key: KeyNone},
		{Key: KeyNone, MaxRecordBytes: len(body)},
	} {
		res := split(t, Metrics, body, opt)
		if len(res.Chunks) != 1 || &res.Chunks[0].Value[0] != &body[0] || len(res.Chunks[0].Value) != len(body) {
			t.Errorf("%+v: want body itself as the only chunk, got %d chunks", opt, len(res.Chunks))
		}
	}
}

func TestSplitNoItems(t *testing.T) {
	for _, body := range [][]byte{nil, fLen(1), fLen(1, fLen(2, fLen(2, fStr(1, "m"))))} {
		res := split(t, Metrics, body, Options{Partitions: 3})
		if len(res.Chunks) != 0 || res.Items != 0 {
			t.Errorf("%x: got %d chunks, %d items", body, len(res.Chunks), res.Items)
		}
	}
}

// TestResourceHashOrder checks that KeyResource ignores attribute order.
func TestResourceHashOrder(t *testing.T) {
	attrs := []*commonpb.KeyValue{strAttr("service.name", "api"), strAttr("host.name", "h1"),
		strAttr("k8s.pod.name", "api-7f9c"), strAttr("cloud.region", "eu-west-1")}
	req := func(order ...int) []byte {
		r := &resourcepb.Resource{}
		for _, i := range order {
			r.Attributes = append(r.Attributes, attrs[i])
		}
		return marshal(t, &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
			Resource: r, ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{SeverityText: "x"}}}},
		}}})
	}
	a, b := req(0, 1, 2, 3), req(3, 1, 0, 2)
	if bytes.Equal(a, b) {
		t.Fatal("same encoding")
	}
	for parts := int32(1); parts < 50; parts++ {
		pa := split(t, Logs, a, Options{Partitions: parts}).Chunks[0].Partition
		pb := split(t, Logs, b, Options{Partitions: parts}).Chunks[0].Partition
		if pa != pb || pa != wantPartition(Logs, Options{Partitions: parts}, flatItem{attrs: attrs}) {
			t.Fatalf("%d partitions: %d and %d", parts, pa, pb)
		}
	}
}

// TestSplitMetricAlongPoints cuts one large metric: each piece keeps the
// metric's and the data message's other fields, unknown ones included.
func TestSplitMetricAlongPoints(t *testing.T) {
	sum := &metricspb.Sum{AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, IsMonotonic: true}
	sum.ProtoReflect().SetUnknown(fStr(50, "sum-unknown"))
	for i := range 40 {
		sum.DataPoints = append(sum.DataPoints, &metricspb.NumberDataPoint{
			Attributes: []*commonpb.KeyValue{strAttr("route", fmt.Sprintf("/api/%02d", i))},
			Value:      &metricspb.NumberDataPoint_AsInt{AsInt: int64(i)},
		})
	}
	m := &metricspb.Metric{Name: "http.requests", Unit: "1", Description: "requests", Data: &metricspb.Metric_Sum{Sum: sum},
		Metadata: []*commonpb.KeyValue{strAttr("meta", "x")}}
	m.ProtoReflect().SetUnknown(fStr(60, "metric-unknown"))
	req := &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource:     &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "api")}},
		SchemaUrl:    "https://opentelemetry.io/schemas/1.26.0",
		ScopeMetrics: []*metricspb.ScopeMetrics{{Scope: &commonpb.InstrumentationScope{Name: "otelhttp"}, Metrics: []*metricspb.Metric{m}}},
	}}}
	body := marshal(t, req)
	opt := Options{Partitions: 1, MaxRecordBytes: 300}
	res := split(t, Metrics, body, opt)
	if len(res.Chunks) < 4 || res.Items != 40 || res.Rejected != 0 {
		t.Fatalf("got %d chunks, %d items, %d rejected", len(res.Chunks), res.Items, res.Rejected)
	}
	n := 0
	for _, c := range res.Chunks {
		var got colmetricspb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(c.Value, &got); err != nil {
			t.Fatal(err)
		}
		gm := got.ResourceMetrics[0].ScopeMetrics[0].Metrics[0]
		gs := gm.GetSum()
		if gm.Name != m.Name || gm.Unit != m.Unit || gm.Description != m.Description || len(gm.Metadata) != 1 ||
			!gs.IsMonotonic || gs.AggregationTemporality != sum.AggregationTemporality ||
			got.ResourceMetrics[0].SchemaUrl != req.ResourceMetrics[0].SchemaUrl ||
			got.ResourceMetrics[0].ScopeMetrics[0].Scope.GetName() != "otelhttp" {
			t.Errorf("piece lost a field: %v", &got)
		}
		if !bytes.Equal(gm.ProtoReflect().GetUnknown(), fStr(60, "metric-unknown")) || !bytes.Equal(gs.ProtoReflect().GetUnknown(), fStr(50, "sum-unknown")) {
			t.Errorf("piece lost unknown fields")
		}
		for _, p := range gs.DataPoints {
			if p.GetAsInt() != int64(n) {
				t.Errorf("point %d out of order: %v", n, p)
			}
			n++
		}
	}
	checkSplit(t, Metrics, req, body, opt, res)
}

// TestSplitTraceID regroups the spans of one scope by trace id.
func TestSplitTraceID(t *testing.T) {
	ss := &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: "lib", Version: "1.0"}, SchemaUrl: "s"}
	ss.ProtoReflect().SetUnknown(fVarint(77, 1))
	for i := range 64 {
		id := make([]byte, 16)
		id[0] = byte(i % 16)
		ss.Spans = append(ss.Spans, &tracepb.Span{TraceId: id, Name: fmt.Sprint(i)})
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "api")}}, SchemaUrl: "r",
		ScopeSpans: []*tracepb.ScopeSpans{ss},
	}}}
	body := marshal(t, req)
	opt := Options{Partitions: 8}
	res := split(t, Traces, body, opt)
	if len(res.Chunks) < 4 {
		t.Fatalf("%d chunks", len(res.Chunks))
	}
	for _, c := range res.Chunks {
		var got coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(c.Value, &got); err != nil {
			t.Fatal(err)
		}
		rs := got.ResourceSpans[0]
		gs := rs.ScopeSpans[0]
		if len(got.ResourceSpans) != 1 || len(rs.ScopeSpans) != 1 || rs.SchemaUrl != "r" || gs.SchemaUrl != "s" ||
			gs.Scope.GetVersion() != "1.0" || len(gs.ProtoReflect().GetUnknown()) == 0 {
			t.Errorf("partition %d: context lost: %v", c.Partition, &got)
		}
	}
	checkSplit(t, Traces, req, body, opt, res)
}

// TestSplitRejects checks that a log record too large for a record alone is
// counted and named, and the others still delivered.
func TestSplitRejects(t *testing.T) {
	sl := &logspb.ScopeLogs{}
	for i := range 5 {
		body := "small"
		if i == 1 || i == 3 {
			body = strings.Repeat("x", 2000)
		}
		sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: body}}})
	}
	req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{sl}}}}
	body := marshal(t, req)
	opt := Options{Key: KeyNone, MaxRecordBytes: 1000}
	res := split(t, Logs, body, opt)
	if res.Items != 3 || res.Rejected != 2 || len(res.Chunks) != 1 || res.Chunks[0].Partition != -1 {
		t.Fatalf("got %+v", res)
	}
	const want = "log record resource_logs[0].scope_logs[0].log_records[1] takes 2015 bytes in a record of its own, over MaxRecordBytes 1000 (1 more items rejected)"
	if res.RejectReason != want {
		t.Errorf("reason\n got %q\nwant %q", res.RejectReason, want)
	}
	checkSplit(t, Logs, req, body, opt, res)
}

// TestSplitKeepsResourcesWhole checks that a resource is not cut when it
// fits in a record of its own.
func TestSplitKeepsResourcesWhole(t *testing.T) {
	req := &collogspb.ExportLogsServiceRequest{}
	for r := range 3 {
		rl := &logspb.ResourceLogs{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("r", fmt.Sprint(r))}}}
		for range 3 {
			rl.ScopeLogs = append(rl.ScopeLogs, &logspb.ScopeLogs{LogRecords: []*logspb.LogRecord{{SeverityText: strings.Repeat("s", 100)}}})
		}
		req.ResourceLogs = append(req.ResourceLogs, rl)
	}
	body := marshal(t, req)
	one := len(marshal(t, &collogspb.ExportLogsServiceRequest{ResourceLogs: req.ResourceLogs[:1]}))
	res := split(t, Logs, body, Options{Key: KeyNone, MaxRecordBytes: one * 3 / 2})
	if len(res.Chunks) != 3 {
		t.Fatalf("%d chunks, want one per resource", len(res.Chunks))
	}
	for i, c := range res.Chunks {
		if len(c.Value) != one {
			t.Errorf("chunk %d: %d bytes, want %d", i, len(c.Value), one)
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	body := fLen(1)
	for _, tt := range []struct {
		sig Signal
		opt Options
	}{
		{Metrics, Options{}},
		{Traces, Options{Key: KeyResource, Partitions: -1}},
		{Metrics, Options{Key: KeyTraceID, Partitions: 3}},
		{Logs, Options{Key: 9, Partitions: 3}},
		{Logs, Options{Key: KeyNone, MaxRecordBytes: -1}},
		{Signal(7), Options{Key: KeyNone}},
	} {
		var s Splitter
		if _, err := s.Split(tt.sig, body, tt.opt); !errors.Is(err, ErrOptions) {
			t.Errorf("%v %+v: got %v, want ErrOptions", tt.sig, tt.opt, err)
		}
	}
	if _, err := Count(Signal(7), body); !errors.Is(err, ErrOptions) {
		t.Errorf("Count: got %v", err)
	}
}

// TestNoAllocs checks that a warm Splitter allocates nothing, on every path.
func TestNoAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("instrumented build")
	}
	metrics := marshal(t, benchMetrics(3, 20, 5))
	logs := marshal(t, benchLogs(3, 100))
	traces := marshal(t, benchTraces(3, 100))
	for _, tt := range []struct {
		name string
		sig  Signal
		body []byte
		opt  Options
	}{
		{"whole body", Metrics, metrics, Options{Partitions: 1}},
		{"by resource", Metrics, metrics, Options{Partitions: 16, MaxRecordBytes: 1 << 20}},
		{"cut metrics", Metrics, metrics, Options{Partitions: 4, MaxRecordBytes: 2000}},
		{"logs by trace id", Logs, logs, Options{Partitions: 16, Key: KeyTraceID, MaxRecordBytes: 4000}},
		{"traces", Traces, traces, Options{Partitions: 16, MaxRecordBytes: 4000}},
	} {
		var s Splitter
		if _, err := s.Split(tt.sig, tt.body, tt.opt); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { s.Split(tt.sig, tt.body, tt.opt) }); n != 0 {
			t.Errorf("%s: Split allocates %v times", tt.name, n)
		}
		if n := testing.AllocsPerRun(20, func() { Count(tt.sig, tt.body) }); n != 0 {
			t.Errorf("%s: Count allocates %v times", tt.name, n)
		}
	}
}

// appendUnknown is used by the fuzz seeds.
func appendUnknown(b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, 4000, protowire.BytesType), []byte("future"))
}
