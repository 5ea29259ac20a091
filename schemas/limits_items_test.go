package schemas

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
)

// The item check covers every field the decoder refuses inside an item,
// not only the item's own attributes: each case below breaks one, in the
// second item of a request of three, and the ingester must refuse that
// item alone (or every item, for what applies to all of them), naming the
// field, while the decoder refuses the request.

// unknownField is a field no OTLP message of these has.
func unknownField(m proto.Message) {
	m.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
}

func badKV() *common.KeyValue {
	return &common.KeyValue{Key: badMarker, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "v"}}}
}

// itemCase breaks something in a request of sig; path is what the reason
// must name; all says every item is refused.
type itemCase struct {
	name string
	sig  otlpwire.Signal
	edit func(m proto.Message)
	path string
	all  bool
}

func spanOf(m proto.Message) *trace.Span {
	return m.(interface {
		GetResourceSpans() []*trace.ResourceSpans
	}).GetResourceSpans()[0].ScopeSpans[0].Spans[1]
}

func logOf(m proto.Message) *logs.LogRecord {
	return m.(interface {
		GetResourceLogs() []*logs.ResourceLogs
	}).GetResourceLogs()[0].ScopeLogs[0].LogRecords[1]
}

func metricOf(m proto.Message) *metrics.Metric {
	return m.(*colmetrics.ExportMetricsServiceRequest).ResourceMetrics[0].ScopeMetrics[0].Metrics[0]
}

// asKind replaces the first metric's gauge by data of another kind with
// three points, and returns the second point's attributes to edit.
func histogram(m proto.Message) *metrics.HistogramDataPoint {
	pts := make([]*metrics.HistogramDataPoint, 3)
	for i := range pts {
		pts[i] = &metrics.HistogramDataPoint{Count: 2, BucketCounts: []uint64{1, 1}, ExplicitBounds: []float64{1}, TimeUnixNano: uint64(i + 1)}
	}
	metricOf(m).Data = &metrics.Metric_Histogram{Histogram: &metrics.Histogram{DataPoints: pts}}
	return pts[1]
}

func expHistogram(m proto.Message) *metrics.ExponentialHistogramDataPoint {
	pts := make([]*metrics.ExponentialHistogramDataPoint, 3)
	for i := range pts {
		pts[i] = &metrics.ExponentialHistogramDataPoint{Count: 1, Positive: &metrics.ExponentialHistogramDataPoint_Buckets{BucketCounts: []uint64{1}}}
	}
	metricOf(m).Data = &metrics.Metric_ExponentialHistogram{ExponentialHistogram: &metrics.ExponentialHistogram{DataPoints: pts}}
	return pts[1]
}

func summary(m proto.Message) *metrics.SummaryDataPoint {
	pts := make([]*metrics.SummaryDataPoint, 3)
	for i := range pts {
		pts[i] = &metrics.SummaryDataPoint{Count: 1, QuantileValues: []*metrics.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: 1}}}
	}
	metricOf(m).Data = &metrics.Metric_Summary{Summary: &metrics.Summary{DataPoints: pts}}
	return pts[1]
}

func itemCases() []itemCase {
	gaugePoint := func(m proto.Message) *metrics.NumberDataPoint { return metricOf(m).GetGauge().DataPoints[1] }
	return []itemCase{
		{"exemplar attribute", otlpwire.Metrics, func(m proto.Message) {
			gaugePoint(m).Exemplars = []*metrics.Exemplar{{}, {FilteredAttributes: []*common.KeyValue{{Key: "ok"}, badKV()}}}
		}, ".exemplars[1].filtered_attributes[1].key", false},
		{"exemplar unknown field", otlpwire.Metrics, func(m proto.Message) {
			ex := &metrics.Exemplar{}
			unknownField(ex)
			gaugePoint(m).Exemplars = []*metrics.Exemplar{ex}
		}, ".exemplars[0] field 99", false},
		{"histogram exemplar attribute", otlpwire.Metrics, func(m proto.Message) {
			histogram(m).Exemplars = []*metrics.Exemplar{{FilteredAttributes: []*common.KeyValue{badKV()}}}
		}, ".histogram.data_points[1].exemplars[0].filtered_attributes[0].key", false},
		{"exponential histogram buckets field", otlpwire.Metrics, func(m proto.Message) {
			unknownField(expHistogram(m).Positive)
		}, ".positive field 99", false},
		{"summary quantile field", otlpwire.Metrics, func(m proto.Message) {
			unknownField(summary(m).QuantileValues[0])
		}, ".quantile_values[0] field 99", false},
		{"metric metadata after the points", otlpwire.Metrics, func(m proto.Message) {
			metricOf(m).Metadata = []*common.KeyValue{badKV()}
		}, "metrics[0].metadata", true},
		{"log severity_text", otlpwire.Logs, func(m proto.Message) { logOf(m).SeverityText = badMarker }, ".severity_text", false},
		{"log event_name", otlpwire.Logs, func(m proto.Message) { logOf(m).EventName = badMarker }, ".event_name", false},
		{"log body deep in a kvlist", otlpwire.Logs, func(m proto.Message) {
			logOf(m).Body = &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: &common.KeyValueList{Values: []*common.KeyValue{badKV()}}}}
		}, ".body", false},
		{"span name", otlpwire.Traces, func(m proto.Message) { spanOf(m).Name = badMarker }, ".name", false},
		{"span trace_state", otlpwire.Traces, func(m proto.Message) { spanOf(m).TraceState = badMarker }, ".trace_state", false},
		{"status message", otlpwire.Traces, func(m proto.Message) {
			spanOf(m).Status = &trace.Status{Message: badMarker}
		}, ".status.message", false},
		{"status unknown field", otlpwire.Traces, func(m proto.Message) {
			st := &trace.Status{Message: "ok"}
			unknownField(st)
			spanOf(m).Status = st
		}, ".status field 99", false},
		{"event name", otlpwire.Traces, func(m proto.Message) {
			spanOf(m).Events = []*trace.Span_Event{{Name: "ok"}, {Name: badMarker}}
		}, ".events[1].name", false},
		{"event attribute", otlpwire.Traces, func(m proto.Message) {
			spanOf(m).Events = []*trace.Span_Event{{Name: "e", Attributes: []*common.KeyValue{badKV()}}}
		}, ".events[0].attributes[0].key", false},
		{"event unknown field", otlpwire.Traces, func(m proto.Message) {
			ev := &trace.Span_Event{Name: "e"}
			unknownField(ev)
			spanOf(m).Events = []*trace.Span_Event{ev}
		}, ".events[0] field 99", false},
		{"link trace_state", otlpwire.Traces, func(m proto.Message) {
			spanOf(m).Links = []*trace.Span_Link{{TraceState: badMarker}}
		}, ".links[0].trace_state", false},
		{"link attribute value", otlpwire.Traces, func(m proto.Message) {
			spanOf(m).Links = []*trace.Span_Link{{Attributes: []*common.KeyValue{{Key: "k", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: badMarker}}}}}}
		}, ".links[0].attributes[0].value", false},
		{"link unknown field", otlpwire.Traces, func(m proto.Message) {
			l := &trace.Span_Link{}
			unknownField(l)
			spanOf(m).Links = []*trace.Span_Link{l}
		}, ".links[0] field 99", false},
	}
}

func TestItemCheckCoversTheDecoder(t *testing.T) {
	shape := otlptest.Shape{Resources: 1, Items: 3, Points: 3}
	for _, c := range itemCases() {
		t.Run(c.name, func(t *testing.T) {
			var m proto.Message
			switch c.sig {
			case otlpwire.Metrics:
				m = otlptest.Metrics(shape)
			case otlpwire.Logs:
				m = otlptest.Logs(shape)
			default:
				m = otlptest.Traces(shape)
			}
			m = proto.Clone(m) // otlptest's requests share parts
			c.edit(m)
			body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			body = bytes.ReplaceAll(body, []byte(badMarker), badBytes)
			total, err := otlpwire.Count(c.sig, body)
			if err != nil {
				t.Fatal(err)
			}
			res, err := checkContract(t, c.sig, body)
			if err != nil {
				t.Fatalf("split: %v", err)
			}
			want := 1
			if c.all {
				want = 3 // the first metric's points
			}
			if res.Invalid != want || res.Items != total-want {
				t.Fatalf("invalid %d, items %d of %d; want %d invalid (%s)", res.Invalid, res.Items, total, want, res.RejectReason)
			}
			if !strings.Contains(res.RejectReason, c.path) {
				t.Errorf("reason %q does not name %q", res.RejectReason, c.path)
			}
			if _, err := NewBuilder(c.sig, nil).Append(body); err == nil {
				t.Fatal("the decoder accepts the request: the case breaks nothing")
			}
		})
	}
}

// TestOuterAttributesAfterTheItems: a resource or scope whose bad attribute
// comes after its items in the wire order still refuses every item in it.
func TestOuterAttributesAfterTheItems(t *testing.T) {
	for _, level := range []string{"resource", "scope"} {
		t.Run(level, func(t *testing.T) {
			req := proto.Clone(otlptest.Logs(otlptest.Shape{Resources: 1, Items: 3, Points: 3})).(*collogs.ExportLogsServiceRequest)
			rl := req.ResourceLogs[0]
			var body []byte
			if level == "resource" {
				rl.Resource.Attributes = append(rl.Resource.Attributes, badKV())
				res := rl.Resource
				rl.Resource = nil
				inner, _ := proto.MarshalOptions{Deterministic: true}.Marshal(rl)
				resB, _ := proto.MarshalOptions{Deterministic: true}.Marshal(res)
				inner = protowire.AppendBytes(protowire.AppendTag(inner, 1, protowire.BytesType), resB)
				body = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), inner)
			} else {
				sl := rl.ScopeLogs[0]
				sl.Scope.Attributes = append(sl.Scope.Attributes, badKV())
				sc := sl.Scope
				sl.Scope = nil
				inner, _ := proto.MarshalOptions{Deterministic: true}.Marshal(sl)
				scB, _ := proto.MarshalOptions{Deterministic: true}.Marshal(sc)
				inner = protowire.AppendBytes(protowire.AppendTag(inner, 1, protowire.BytesType), scB)
				rl.ScopeLogs = nil
				rlB, _ := proto.MarshalOptions{Deterministic: true}.Marshal(rl)
				rlB = protowire.AppendBytes(protowire.AppendTag(rlB, 2, protowire.BytesType), inner)
				body = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rlB)
			}
			body = bytes.ReplaceAll(body, []byte(badMarker), badBytes)
			res, err := checkContract(t, otlpwire.Logs, body)
			if err != nil {
				t.Fatalf("split: %v", err)
			}
			if res.Invalid != 3 || res.Items != 0 || !strings.Contains(res.RejectReason, level+".attributes") {
				t.Fatalf("invalid %d, items %d (%s); want all 3 refused for the %s", res.Invalid, res.Items, res.RejectReason, level)
			}
		})
	}
}
