package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules/columnar"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
)

// An item of `sluice tap`: a data point, a log record or a span, with
// where it came from. The record's fields come first; the item's follow,
// by signal.
type tapItem struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Headers   map[string]string `json:"headers,omitempty"`
	Signal    string            `json:"signal"`
	Resource  map[string]any    `json:"resource"`
	Scope     *tapScope         `json:"scope,omitempty"`

	Metric *tapMetric `json:"metric,omitempty"`
	Point  *tapPoint  `json:"point,omitempty"`
	Log    *tapLog    `json:"log,omitempty"`
	Span   *tapSpan   `json:"span,omitempty"`
}

// tapRecord stands for a record whose items tap cannot read.
type tapRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Headers   map[string]string `json:"headers,omitempty"`
	Bytes     int               `json:"bytes"`
	Error     string            `json:"error"`
}

type tapScope struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

type tapMetric struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Unit        string `json:"unit,omitempty"`
	Description string `json:"description,omitempty"`
	Temporality string `json:"temporality,omitempty"`
	Monotonic   bool   `json:"monotonic,omitempty"`
}

type tapPoint struct {
	Time       string         `json:"time,omitempty"`
	StartTime  string         `json:"start_time,omitempty"`
	Attributes map[string]any `json:"attributes"`
	// Value of a gauge or sum.
	Value *jsonFloat `json:"value,omitempty"`
	// Count and Sum of histograms and summaries.
	Count *uint64    `json:"count,omitempty"`
	Sum   *jsonFloat `json:"sum,omitempty"`
	Min   *jsonFloat `json:"min,omitempty"`
	Max   *jsonFloat `json:"max,omitempty"`
	// Bounds and BucketCounts of a histogram.
	Bounds       []jsonFloat `json:"bounds,omitempty"`
	BucketCounts []uint64    `json:"bucket_counts,omitempty"`
	// Exponential histograms.
	Scale     *int32      `json:"scale,omitempty"`
	ZeroCount *uint64     `json:"zero_count,omitempty"`
	Positive  *tapBuckets `json:"positive,omitempty"`
	Negative  *tapBuckets `json:"negative,omitempty"`
	// Quantiles of a summary.
	Quantiles []tapQuantile `json:"quantiles,omitempty"`
	Exemplars int           `json:"exemplars,omitempty"`
	Flags     uint32        `json:"flags,omitempty"`
}

type tapBuckets struct {
	Offset int32    `json:"offset"`
	Counts []uint64 `json:"counts"`
}

type tapQuantile struct {
	Quantile jsonFloat `json:"quantile"`
	Value    jsonFloat `json:"value"`
}

type tapLog struct {
	Time           string         `json:"time,omitempty"`
	ObservedTime   string         `json:"observed_time,omitempty"`
	SeverityNumber int32          `json:"severity_number,omitempty"`
	SeverityText   string         `json:"severity_text,omitempty"`
	Body           any            `json:"body"`
	Attributes     map[string]any `json:"attributes"`
	TraceID        string         `json:"trace_id,omitempty"`
	SpanID         string         `json:"span_id,omitempty"`
	EventName      string         `json:"event_name,omitempty"`
	Flags          uint32         `json:"flags,omitempty"`
}

type tapSpan struct {
	TraceID       string         `json:"trace_id"`
	SpanID        string         `json:"span_id"`
	ParentSpanID  string         `json:"parent_span_id,omitempty"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"`
	StartTime     string         `json:"start_time"`
	EndTime       string         `json:"end_time"`
	DurationMs    float64        `json:"duration_ms"`
	Attributes    map[string]any `json:"attributes"`
	StatusCode    string         `json:"status_code"`
	StatusMessage string         `json:"status_message,omitempty"`
	Events        []tapEvent     `json:"events,omitempty"`
	Links         []tapLink      `json:"links,omitempty"`
}

type tapEvent struct {
	Time       string         `json:"time"`
	Name       string         `json:"name"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

type tapLink struct {
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// jsonFloat is a float that JSON can carry: NaN and the infinities (a
// Prometheus stale marker, an unbounded bucket) are written as strings.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func floatPtr(v float64) *jsonFloat { f := jsonFloat(v); return &f }

// tapDecoder turns records into items: raw OTLP records and processed or
// aggregation batch records become Arrow batches (as the worker reads
// them), the filter's rules run on the batch, and what they keep is read
// back as OTLP, item by item.
type tapDecoder struct {
	mem      memory.Allocator
	builders [len(otlpwire.Signals)]*schemas.Builder
	// filters are the --filter engines by signal; with a filter, the
	// items of a signal it does not apply to (nil) are all left out.
	filters   [len(otlpwire.Signals)]*columnar.Engine
	filtering bool
	// signal is the topic's signal, or anySignal when its records say
	// theirs (the dead-letter topic).
	signal otlpwire.Signal
	buf    []byte
}

func newTapDecoder(signal otlpwire.Signal) *tapDecoder {
	d := &tapDecoder{mem: memory.DefaultAllocator, signal: signal}
	for _, s := range otlpwire.Signals {
		d.builders[s] = schemas.NewBuilder(s, d.mem)
	}
	return d
}

// batch reads r's value as a batch.
func (d *tapDecoder) batch(r *stream.Record) (*schemas.Batch, error) {
	ct := string(r.Header(stream.HeaderContentType))
	switch ct {
	case stream.ContentTypeArrow:
		return schemas.ReadBatch(r.Value, d.mem)
	case stream.ContentTypeAggregate:
		b, _, _, err := aggregate.ReadRecord(r.Value, d.mem)
		return b, err
	case stream.ContentTypeOTLPProto, "":
		sig := d.signal
		if h := r.Header(stream.HeaderSignal); len(h) > 0 {
			s, err := otlpwire.ParseSignal(string(h))
			if err != nil {
				return nil, fmt.Errorf("header %s: %w", stream.HeaderSignal, err)
			}
			sig = s
		}
		if !sig.Valid() {
			return nil, fmt.Errorf("OTLP record without a %s header: which signal it holds is unknown", stream.HeaderSignal)
		}
		bl := d.builders[sig]
		if _, err := bl.Append(r.Value); err != nil {
			return nil, err
		}
		return bl.Build(), nil
	}
	return nil, fmt.Errorf("content type %q is not one tap reads", ct)
}

// items decodes r and calls emit with each item the filter keeps; a
// record it cannot decode is one tapRecord.
func (d *tapDecoder) items(r *stream.Record, emit func(any) error) error {
	headers := map[string]string{}
	for _, h := range r.Headers {
		if _, ok := headers[h.Key]; !ok {
			headers[h.Key] = string(h.Value)
		}
	}
	undecodable := func(err error) error {
		return emit(&tapRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Headers: headers, Bytes: len(r.Value), Error: err.Error()})
	}
	b, err := d.batch(r)
	if err != nil {
		return undecodable(err)
	}
	defer func() { b.Release() }()
	if tenant, err := r.Tenant(); err == nil {
		b.Tenant = tenant
	}
	if d.filtering {
		e := d.filters[b.Signal]
		if e == nil {
			return nil
		}
		out, err := e.Apply(b)
		if err != nil {
			return undecodable(err)
		}
		if out != b {
			b.Release()
			b = out
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if d.buf, err = schemas.ToOTLP(b, d.buf[:0]); err != nil {
		return undecodable(err)
	}
	base := tapItem{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Headers: headers, Signal: b.Signal.String()}
	switch b.Signal {
	case otlpwire.Metrics:
		var req colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(d.buf, &req); err != nil {
			return undecodable(err)
		}
		return metricItems(&req, base, emit)
	case otlpwire.Logs:
		var req collogs.ExportLogsServiceRequest
		if err := proto.Unmarshal(d.buf, &req); err != nil {
			return undecodable(err)
		}
		for _, rl := range req.ResourceLogs {
			res := attrMap(rl.GetResource().GetAttributes())
			for _, sl := range rl.ScopeLogs {
				scope := scopeOf(sl.Scope)
				for _, lr := range sl.LogRecords {
					it := base
					it.Resource, it.Scope = res, scope
					it.Log = &tapLog{Time: timeOf(lr.TimeUnixNano), ObservedTime: timeOf(lr.ObservedTimeUnixNano),
						SeverityNumber: int32(lr.SeverityNumber), SeverityText: lr.SeverityText, Body: anyValue(lr.Body),
						Attributes: attrMap(lr.Attributes), TraceID: hex.EncodeToString(lr.TraceId), SpanID: hex.EncodeToString(lr.SpanId),
						EventName: lr.EventName, Flags: lr.Flags}
					if err := emit(&it); err != nil {
						return err
					}
				}
			}
		}
	case otlpwire.Traces:
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(d.buf, &req); err != nil {
			return undecodable(err)
		}
		for _, rs := range req.ResourceSpans {
			res := attrMap(rs.GetResource().GetAttributes())
			for _, ss := range rs.ScopeSpans {
				scope := scopeOf(ss.Scope)
				for _, s := range ss.Spans {
					it := base
					it.Resource, it.Scope = res, scope
					it.Span = spanOf(s)
					if err := emit(&it); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func spanOf(s *tracepb.Span) *tapSpan {
	sp := &tapSpan{TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId), ParentSpanID: hex.EncodeToString(s.ParentSpanId),
		Name: s.Name, Kind: spanKinds[min(int(s.Kind), len(spanKinds)-1)], StartTime: timeOf(s.StartTimeUnixNano), EndTime: timeOf(s.EndTimeUnixNano),
		Attributes: attrMap(s.Attributes), StatusCode: statusCodes[min(int(s.GetStatus().GetCode()), len(statusCodes)-1)], StatusMessage: s.GetStatus().GetMessage()}
	if s.EndTimeUnixNano >= s.StartTimeUnixNano {
		sp.DurationMs = float64(s.EndTimeUnixNano-s.StartTimeUnixNano) / 1e6
	}
	for _, e := range s.Events {
		sp.Events = append(sp.Events, tapEvent{Time: timeOf(e.TimeUnixNano), Name: e.Name, Attributes: attrMapOmit(e.Attributes)})
	}
	for _, l := range s.Links {
		sp.Links = append(sp.Links, tapLink{TraceID: hex.EncodeToString(l.TraceId), SpanID: hex.EncodeToString(l.SpanId), Attributes: attrMapOmit(l.Attributes)})
	}
	return sp
}

// The names of the rule language (rules/README.md), past the last one
// for values OTLP may add.
var (
	spanKinds   = []string{"unspecified", "internal", "server", "client", "producer", "consumer", "unknown"}
	statusCodes = []string{"unset", "ok", "error", "unknown"}
	temporality = map[metricspb.AggregationTemporality]string{metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA: "delta",
		metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE: "cumulative"}
)

func metricItems(req *colmetrics.ExportMetricsServiceRequest, base tapItem, emit func(any) error) error {
	for _, rm := range req.ResourceMetrics {
		res := attrMap(rm.GetResource().GetAttributes())
		for _, sm := range rm.ScopeMetrics {
			scope := scopeOf(sm.Scope)
			for _, m := range sm.Metrics {
				meta := &tapMetric{Name: m.Name, Unit: m.Unit, Description: m.Description}
				var pts []*tapPoint
				switch d := m.Data.(type) {
				case *metricspb.Metric_Gauge:
					meta.Type = "gauge"
					for _, p := range d.Gauge.DataPoints {
						pts = append(pts, numberPoint(p))
					}
				case *metricspb.Metric_Sum:
					meta.Type, meta.Temporality, meta.Monotonic = "sum", temporality[d.Sum.AggregationTemporality], d.Sum.IsMonotonic
					for _, p := range d.Sum.DataPoints {
						pts = append(pts, numberPoint(p))
					}
				case *metricspb.Metric_Histogram:
					meta.Type, meta.Temporality = "histogram", temporality[d.Histogram.AggregationTemporality]
					for _, p := range d.Histogram.DataPoints {
						tp := &tapPoint{Time: timeOf(p.TimeUnixNano), StartTime: timeOf(p.StartTimeUnixNano), Attributes: attrMap(p.Attributes),
							Count: &p.Count, BucketCounts: p.BucketCounts, Exemplars: len(p.Exemplars), Flags: p.Flags}
						for _, b := range p.ExplicitBounds {
							tp.Bounds = append(tp.Bounds, jsonFloat(b))
						}
						if p.Sum != nil {
							tp.Sum = floatPtr(*p.Sum)
						}
						if p.Min != nil {
							tp.Min = floatPtr(*p.Min)
						}
						if p.Max != nil {
							tp.Max = floatPtr(*p.Max)
						}
						pts = append(pts, tp)
					}
				case *metricspb.Metric_ExponentialHistogram:
					meta.Type, meta.Temporality = "exponential_histogram", temporality[d.ExponentialHistogram.AggregationTemporality]
					for _, p := range d.ExponentialHistogram.DataPoints {
						tp := &tapPoint{Time: timeOf(p.TimeUnixNano), StartTime: timeOf(p.StartTimeUnixNano), Attributes: attrMap(p.Attributes),
							Count: &p.Count, Scale: &p.Scale, ZeroCount: &p.ZeroCount, Exemplars: len(p.Exemplars), Flags: p.Flags}
						if p.Sum != nil {
							tp.Sum = floatPtr(*p.Sum)
						}
						if p.Min != nil {
							tp.Min = floatPtr(*p.Min)
						}
						if p.Max != nil {
							tp.Max = floatPtr(*p.Max)
						}
						if b := p.Positive; b != nil {
							tp.Positive = &tapBuckets{Offset: b.Offset, Counts: b.BucketCounts}
						}
						if b := p.Negative; b != nil {
							tp.Negative = &tapBuckets{Offset: b.Offset, Counts: b.BucketCounts}
						}
						pts = append(pts, tp)
					}
				case *metricspb.Metric_Summary:
					meta.Type = "summary"
					for _, p := range d.Summary.DataPoints {
						tp := &tapPoint{Time: timeOf(p.TimeUnixNano), StartTime: timeOf(p.StartTimeUnixNano), Attributes: attrMap(p.Attributes),
							Count: &p.Count, Sum: floatPtr(p.Sum), Flags: p.Flags}
						for _, q := range p.QuantileValues {
							tp.Quantiles = append(tp.Quantiles, tapQuantile{Quantile: jsonFloat(q.Quantile), Value: jsonFloat(q.Value)})
						}
						pts = append(pts, tp)
					}
				}
				for _, p := range pts {
					it := base
					it.Resource, it.Scope, it.Metric, it.Point = res, scope, meta, p
					if err := emit(&it); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func numberPoint(p *metricspb.NumberDataPoint) *tapPoint {
	tp := &tapPoint{Time: timeOf(p.TimeUnixNano), StartTime: timeOf(p.StartTimeUnixNano), Attributes: attrMap(p.Attributes),
		Exemplars: len(p.Exemplars), Flags: p.Flags}
	switch v := p.Value.(type) {
	case *metricspb.NumberDataPoint_AsDouble:
		tp.Value = floatPtr(v.AsDouble)
	case *metricspb.NumberDataPoint_AsInt:
		tp.Value = floatPtr(float64(v.AsInt))
	}
	return tp
}

func scopeOf(s *commonpb.InstrumentationScope) *tapScope {
	if s == nil || s.Name == "" && s.Version == "" {
		return nil
	}
	return &tapScope{Name: s.Name, Version: s.Version}
}

// timeOf is t in RFC 3339 with nanoseconds, UTC; "" for 0 (unset).
func timeOf(t uint64) string {
	if t == 0 {
		return ""
	}
	return time.Unix(0, int64(t)).UTC().Format(time.RFC3339Nano)
}

// attrMap is an attribute list as a JSON object; never nil, so that an
// item without attributes shows {}.
func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = anyValue(kv.Value)
	}
	return m
}

func attrMapOmit(kvs []*commonpb.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	return attrMap(kvs)
}

// anyValue is an OTLP value as JSON: bytes in base64, integers as numbers.
func anyValue(v *commonpb.AnyValue) any {
	switch v := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return v.StringValue
	case *commonpb.AnyValue_BoolValue:
		return v.BoolValue
	case *commonpb.AnyValue_IntValue:
		return v.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return jsonFloat(v.DoubleValue)
	case *commonpb.AnyValue_BytesValue:
		return v.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(v.ArrayValue.GetValues()))
		for _, e := range v.ArrayValue.GetValues() {
			out = append(out, anyValue(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrMap(v.KvlistValue.GetValues())
	}
	return nil
}

var _ json.Marshaler = jsonFloat(0)
