package otlpwire_test

import (
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// flatItem is an item of a decoded request with everything around it.
type flatItem struct {
	ctx   string // the resource, scope (and metric) without their children
	item  string // the item
	attrs []*commonpb.KeyValue
	trace []byte
	// alone is a request with only this item, in its resource, scope
	// (and metric).
	alone proto.Message
}

var det = proto.MarshalOptions{Deterministic: true}

// clone copies m through its encoding. proto.Clone would drop a -0 in a
// proto3 double (protobuf-go merges such a field only when it is != 0) that
// Marshal writes, and the sizes worked out here must be those of the wire.
func clone[M proto.Message](m M) M {
	c := m.ProtoReflect().New().Interface().(M)
	if err := proto.Unmarshal([]byte(mustMarshal(m)), c); err != nil {
		panic(err)
	}
	return c
}

func mustMarshal(m proto.Message) string {
	b, err := det.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func key(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%d:%s|", len(p), p)
	}
	return b.String()
}

// header returns a copy of m without its children, the list kids points to
// (emptied while m is copied).
func header[M proto.Message, C any](m M, kids *[]C) M {
	saved := *kids
	*kids = nil
	c := clone(m)
	*kids = saved
	return c
}

// flatten lists the items of a decoded request.
func flatten(req proto.Message) []flatItem {
	var out []flatItem
	switch req := req.(type) {
	case *colmetricspb.ExportMetricsServiceRequest:
		top := header(req, &req.ResourceMetrics)
		for _, rm := range req.ResourceMetrics {
			r := header(rm, &rm.ScopeMetrics)
			for _, sm := range rm.ScopeMetrics {
				s := header(sm, &sm.Metrics)
				for _, m := range sm.Metrics {
					mc := clone(m)
					keepPoint(mc, -1)
					ctx := key(mustMarshal(top), mustMarshal(r), mustMarshal(s), mustMarshal(mc))
					for i, n := 0, otlpwire.PointCount(m); i < n; i++ {
						one := clone(m)
						keepPoint(one, i)
						item := mustMarshal(pointOf(one))
						alone := clone(top)
						ar, as := clone(r), clone(s)
						as.Metrics = []*metricspb.Metric{one}
						ar.ScopeMetrics = []*metricspb.ScopeMetrics{as}
						alone.ResourceMetrics = []*metricspb.ResourceMetrics{ar}
						out = append(out, flatItem{ctx: ctx, item: item, attrs: rm.GetResource().GetAttributes(), alone: alone})
					}
				}
			}
		}
	case *collogspb.ExportLogsServiceRequest:
		top := header(req, &req.ResourceLogs)
		for _, rl := range req.ResourceLogs {
			r := header(rl, &rl.ScopeLogs)
			for _, sl := range rl.ScopeLogs {
				s := header(sl, &sl.LogRecords)
				ctx := key(mustMarshal(top), mustMarshal(r), mustMarshal(s))
				for _, lr := range sl.LogRecords {
					alone := clone(top)
					ar, as := clone(r), clone(s)
					as.LogRecords = []*logspb.LogRecord{lr}
					ar.ScopeLogs = []*logspb.ScopeLogs{as}
					alone.ResourceLogs = []*logspb.ResourceLogs{ar}
					out = append(out, flatItem{ctx: ctx, item: mustMarshal(lr),
						attrs: rl.GetResource().GetAttributes(), trace: lr.TraceId, alone: alone})
				}
			}
		}
	case *coltracepb.ExportTraceServiceRequest:
		top := header(req, &req.ResourceSpans)
		for _, rs := range req.ResourceSpans {
			r := header(rs, &rs.ScopeSpans)
			for _, ss := range rs.ScopeSpans {
				s := header(ss, &ss.Spans)
				ctx := key(mustMarshal(top), mustMarshal(r), mustMarshal(s))
				for _, sp := range ss.Spans {
					alone := clone(top)
					ar, as := clone(r), clone(s)
					as.Spans = []*tracepb.Span{sp}
					ar.ScopeSpans = []*tracepb.ScopeSpans{as}
					alone.ResourceSpans = []*tracepb.ResourceSpans{ar}
					out = append(out, flatItem{ctx: ctx, item: mustMarshal(sp),
						attrs: rs.GetResource().GetAttributes(), trace: sp.TraceId, alone: alone})
				}
			}
		}
	}
	return out
}

// keepPoint keeps only data point i of m (none for i < 0).
func keepPoint(m *metricspb.Metric, i int) {
	switch d := m.Data.(type) {
	case *metricspb.Metric_Gauge:
		d.Gauge.DataPoints = pick1(d.Gauge.DataPoints, i)
	case *metricspb.Metric_Sum:
		d.Sum.DataPoints = pick1(d.Sum.DataPoints, i)
	case *metricspb.Metric_Histogram:
		d.Histogram.DataPoints = pick1(d.Histogram.DataPoints, i)
	case *metricspb.Metric_ExponentialHistogram:
		d.ExponentialHistogram.DataPoints = pick1(d.ExponentialHistogram.DataPoints, i)
	case *metricspb.Metric_Summary:
		d.Summary.DataPoints = pick1(d.Summary.DataPoints, i)
	}
}

func pick1[T any](s []T, i int) []T {
	if i < 0 {
		return nil
	}
	return s[i : i+1]
}

// pointOf returns the only data point of m.
func pointOf(m *metricspb.Metric) proto.Message {
	switch d := m.Data.(type) {
	case *metricspb.Metric_Gauge:
		return d.Gauge.DataPoints[0]
	case *metricspb.Metric_Sum:
		return d.Sum.DataPoints[0]
	case *metricspb.Metric_Histogram:
		return d.Histogram.DataPoints[0]
	case *metricspb.Metric_ExponentialHistogram:
		return d.ExponentialHistogram.DataPoints[0]
	case *metricspb.Metric_Summary:
		return d.Summary.DataPoints[0]
	}
	return nil
}
