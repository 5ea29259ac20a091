package otlpwire

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"

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
)

// gen makes random requests with the generated OTLP structs, for the
// property and fuzz tests. Sizes are small so that a random MaxRecordBytes
// cuts requests at every level.
type gen struct {
	r *rand.Rand
	// unknown adds unknown fields to messages at every level.
	unknown bool
}

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *gen) n(max int) int { return g.r.IntN(max + 1) }

func (g *gen) str(max int) string {
	var b strings.Builder
	for range g.n(max) {
		b.WriteByte(byte('a' + g.r.IntN(26)))
	}
	return b.String()
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func (g *gen) attrs(max int) []*commonpb.KeyValue {
	kvs := make([]*commonpb.KeyValue, g.n(max))
	for i := range kvs {
		if g.r.IntN(3) == 0 {
			kvs[i] = &commonpb.KeyValue{Key: fmt.Sprintf("n%d", i), Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: g.r.Int64()}}}
		} else {
			kvs[i] = strAttr(fmt.Sprintf("k%d", i), g.str(12))
		}
	}
	return kvs
}

// resource draws from a few identities, in shuffled attribute order, so that
// requests hold the same resource written differently.
func (g *gen) resource() *resourcepb.Resource {
	if g.r.IntN(8) == 0 {
		return nil
	}
	id := g.r.IntN(4)
	kvs := []*commonpb.KeyValue{
		strAttr("service.name", fmt.Sprintf("svc-%d", id)),
		strAttr("host.name", fmt.Sprintf("host-%d", id%2)),
		strAttr("k8s.pod.name", fmt.Sprintf("pod-%d", id)),
	}[:1+id%3]
	g.r.Shuffle(len(kvs), func(i, j int) { kvs[i], kvs[j] = kvs[j], kvs[i] })
	r := &resourcepb.Resource{Attributes: kvs}
	if g.r.IntN(4) == 0 {
		r.DroppedAttributesCount = uint32(g.n(3))
	}
	g.addUnknown(r)
	return r
}

func (g *gen) scope() *commonpb.InstrumentationScope {
	if g.r.IntN(5) == 0 {
		return nil
	}
	return &commonpb.InstrumentationScope{Name: "lib-" + g.str(6), Version: g.str(3), Attributes: g.attrs(2)}
}

func (g *gen) schema() string {
	if g.r.IntN(2) == 0 {
		return ""
	}
	return "https://opentelemetry.io/schemas/1." + g.str(2)
}

// addUnknown sometimes gives m unknown fields of every wire type.
func (g *gen) addUnknown(m proto.Message) {
	if !g.unknown || g.r.IntN(3) != 0 {
		return
	}
	var b []byte
	for range 1 + g.n(2) {
		num := protowire.Number(1000 + g.n(50))
		switch g.r.IntN(5) {
		case 0:
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, g.r.Uint64()>>g.n(63))
		case 1:
			b = protowire.AppendTag(b, num, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, g.r.Uint32())
		case 2:
			b = protowire.AppendTag(b, num, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, g.r.Uint64())
		case 3:
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendString(b, g.str(20))
		case 4:
			b = protowire.AppendTag(b, num, protowire.StartGroupType)
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(g.n(1000)))
			b = protowire.AppendTag(b, num, protowire.EndGroupType)
		}
	}
	m.ProtoReflect().SetUnknown(b)
}

func (g *gen) metrics() *colmetricspb.ExportMetricsServiceRequest {
	req := &colmetricspb.ExportMetricsServiceRequest{}
	for range g.n(4) {
		rm := &metricspb.ResourceMetrics{Resource: g.resource(), SchemaUrl: g.schema()}
		for range g.n(3) {
			sm := &metricspb.ScopeMetrics{Scope: g.scope(), SchemaUrl: g.schema()}
			for range g.n(4) {
				sm.Metrics = append(sm.Metrics, g.metric())
			}
			g.addUnknown(sm)
			rm.ScopeMetrics = append(rm.ScopeMetrics, sm)
		}
		g.addUnknown(rm)
		req.ResourceMetrics = append(req.ResourceMetrics, rm)
	}
	g.addUnknown(req)
	return req
}

func (g *gen) metric() *metricspb.Metric {
	m := &metricspb.Metric{Name: "m." + g.str(10), Description: g.str(20), Unit: g.str(2)}
	if g.r.IntN(4) == 0 {
		m.Metadata = g.attrs(2)
	}
	n := g.n(6)
	temp := metricspb.AggregationTemporality(g.n(2))
	switch g.r.IntN(5) {
	case 0:
		d := &metricspb.Gauge{}
		for range n {
			d.DataPoints = append(d.DataPoints, g.numberPoint())
		}
		g.addUnknown(d)
		m.Data = &metricspb.Metric_Gauge{Gauge: d}
	case 1:
		d := &metricspb.Sum{AggregationTemporality: temp, IsMonotonic: g.r.IntN(2) == 0}
		for range n {
			d.DataPoints = append(d.DataPoints, g.numberPoint())
		}
		g.addUnknown(d)
		m.Data = &metricspb.Metric_Sum{Sum: d}
	case 2:
		d := &metricspb.Histogram{AggregationTemporality: temp}
		for range n {
			p := &metricspb.HistogramDataPoint{Attributes: g.attrs(3), TimeUnixNano: g.r.Uint64(), Count: uint64(g.n(100))}
			nb := g.n(40)
			for i := range nb {
				p.BucketCounts = append(p.BucketCounts, uint64(g.n(9)))
				if i < nb-1 {
					p.ExplicitBounds = append(p.ExplicitBounds, float64(i))
				}
			}
			d.DataPoints = append(d.DataPoints, p)
		}
		g.addUnknown(d)
		m.Data = &metricspb.Metric_Histogram{Histogram: d}
	case 3:
		d := &metricspb.ExponentialHistogram{AggregationTemporality: temp}
		for range n {
			p := &metricspb.ExponentialHistogramDataPoint{Attributes: g.attrs(3), Scale: int32(g.n(8)), ZeroCount: uint64(g.n(5)),
				Positive: &metricspb.ExponentialHistogramDataPoint_Buckets{Offset: int32(g.n(10))}}
			for range g.n(20) {
				p.Positive.BucketCounts = append(p.Positive.BucketCounts, uint64(g.n(300)))
			}
			d.DataPoints = append(d.DataPoints, p)
		}
		m.Data = &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: d}
	case 4:
		d := &metricspb.Summary{}
		for range n {
			p := &metricspb.SummaryDataPoint{Attributes: g.attrs(3), Count: uint64(g.n(10)), Sum: g.r.Float64()}
			for range g.n(4) {
				p.QuantileValues = append(p.QuantileValues, &metricspb.SummaryDataPoint_ValueAtQuantile{Quantile: g.r.Float64(), Value: g.r.Float64()})
			}
			d.DataPoints = append(d.DataPoints, p)
		}
		m.Data = &metricspb.Metric_Summary{Summary: d}
	}
	g.addUnknown(m)
	return m
}

func (g *gen) numberPoint() *metricspb.NumberDataPoint {
	p := &metricspb.NumberDataPoint{Attributes: g.attrs(4), StartTimeUnixNano: g.r.Uint64(), TimeUnixNano: g.r.Uint64()}
	if g.r.IntN(2) == 0 {
		p.Value = &metricspb.NumberDataPoint_AsInt{AsInt: g.r.Int64()}
	} else {
		p.Value = &metricspb.NumberDataPoint_AsDouble{AsDouble: g.r.Float64()}
	}
	g.addUnknown(p)
	return p
}

// traceID draws from a few trace ids; empty sometimes when empty is true.
func (g *gen) traceID(empty bool) []byte {
	if empty && g.r.IntN(3) == 0 {
		return nil
	}
	id := make([]byte, 16)
	binary.BigEndian.PutUint64(id[8:], uint64(g.n(6)))
	return id
}

func (g *gen) logs() *collogspb.ExportLogsServiceRequest {
	req := &collogspb.ExportLogsServiceRequest{}
	for range g.n(4) {
		rl := &logspb.ResourceLogs{Resource: g.resource(), SchemaUrl: g.schema()}
		for range g.n(3) {
			sl := &logspb.ScopeLogs{Scope: g.scope(), SchemaUrl: g.schema()}
			for range g.n(6) {
				lr := &logspb.LogRecord{TimeUnixNano: g.r.Uint64(), SeverityNumber: logspb.SeverityNumber(g.n(24)),
					Body:       &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: g.str(g.pick(40, 400))}},
					Attributes: g.attrs(3), TraceId: g.traceID(true)}
				g.addUnknown(lr)
				sl.LogRecords = append(sl.LogRecords, lr)
			}
			g.addUnknown(sl)
			rl.ScopeLogs = append(rl.ScopeLogs, sl)
		}
		g.addUnknown(rl)
		req.ResourceLogs = append(req.ResourceLogs, rl)
	}
	g.addUnknown(req)
	return req
}

// pick returns small mostly and large sometimes.
func (g *gen) pick(small, large int) int {
	if g.r.IntN(10) == 0 {
		return large
	}
	return small
}

func (g *gen) traces() *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	for range g.n(4) {
		rs := &tracepb.ResourceSpans{Resource: g.resource(), SchemaUrl: g.schema()}
		for range g.n(3) {
			ss := &tracepb.ScopeSpans{Scope: g.scope(), SchemaUrl: g.schema()}
			for range g.n(6) {
				sp := &tracepb.Span{TraceId: g.traceID(g.r.IntN(10) == 0), SpanId: []byte("spanid!!"), Name: g.str(g.pick(10, 300)),
					Kind: tracepb.Span_SpanKind(g.n(5)), StartTimeUnixNano: g.r.Uint64(), Attributes: g.attrs(4)}
				for range g.n(2) {
					sp.Events = append(sp.Events, &tracepb.Span_Event{Name: g.str(8), Attributes: g.attrs(2)})
				}
				g.addUnknown(sp)
				ss.Spans = append(ss.Spans, sp)
			}
			g.addUnknown(ss)
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		g.addUnknown(rs)
		req.ResourceSpans = append(req.ResourceSpans, rs)
	}
	g.addUnknown(req)
	return req
}

func (g *gen) request(sig Signal) proto.Message {
	switch sig {
	case Metrics:
		return g.metrics()
	case Logs:
		return g.logs()
	}
	return g.traces()
}

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

// flatten lists the items of a decoded request.
func flatten(req proto.Message) []flatItem {
	var out []flatItem
	switch req := req.(type) {
	case *colmetricspb.ExportMetricsServiceRequest:
		top := proto.Clone(req).(*colmetricspb.ExportMetricsServiceRequest)
		top.ResourceMetrics = nil
		for _, rm := range req.ResourceMetrics {
			r := proto.Clone(rm).(*metricspb.ResourceMetrics)
			r.ScopeMetrics = nil
			for _, sm := range rm.ScopeMetrics {
				s := proto.Clone(sm).(*metricspb.ScopeMetrics)
				s.Metrics = nil
				for _, m := range sm.Metrics {
					for i, n := 0, pointCount(m); i < n; i++ {
						mc := proto.Clone(m).(*metricspb.Metric)
						keepPoint(mc, -1)
						ctx := key(mustMarshal(top), mustMarshal(r), mustMarshal(s), mustMarshal(mc))
						one := proto.Clone(m).(*metricspb.Metric)
						keepPoint(one, i)
						item := mustMarshal(pointOf(one))
						alone := proto.Clone(top).(*colmetricspb.ExportMetricsServiceRequest)
						ar, as := proto.Clone(r).(*metricspb.ResourceMetrics), proto.Clone(s).(*metricspb.ScopeMetrics)
						as.Metrics = []*metricspb.Metric{one}
						ar.ScopeMetrics = []*metricspb.ScopeMetrics{as}
						alone.ResourceMetrics = []*metricspb.ResourceMetrics{ar}
						out = append(out, flatItem{ctx: ctx, item: item, attrs: rm.GetResource().GetAttributes(), alone: alone})
					}
				}
			}
		}
	case *collogspb.ExportLogsServiceRequest:
		top := proto.Clone(req).(*collogspb.ExportLogsServiceRequest)
		top.ResourceLogs = nil
		for _, rl := range req.ResourceLogs {
			r := proto.Clone(rl).(*logspb.ResourceLogs)
			r.ScopeLogs = nil
			for _, sl := range rl.ScopeLogs {
				s := proto.Clone(sl).(*logspb.ScopeLogs)
				s.LogRecords = nil
				for _, lr := range sl.LogRecords {
					alone := proto.Clone(top).(*collogspb.ExportLogsServiceRequest)
					ar, as := proto.Clone(r).(*logspb.ResourceLogs), proto.Clone(s).(*logspb.ScopeLogs)
					as.LogRecords = []*logspb.LogRecord{lr}
					ar.ScopeLogs = []*logspb.ScopeLogs{as}
					alone.ResourceLogs = []*logspb.ResourceLogs{ar}
					out = append(out, flatItem{ctx: key(mustMarshal(top), mustMarshal(r), mustMarshal(s)), item: mustMarshal(lr),
						attrs: rl.GetResource().GetAttributes(), trace: lr.TraceId, alone: alone})
				}
			}
		}
	case *coltracepb.ExportTraceServiceRequest:
		top := proto.Clone(req).(*coltracepb.ExportTraceServiceRequest)
		top.ResourceSpans = nil
		for _, rs := range req.ResourceSpans {
			r := proto.Clone(rs).(*tracepb.ResourceSpans)
			r.ScopeSpans = nil
			for _, ss := range rs.ScopeSpans {
				s := proto.Clone(ss).(*tracepb.ScopeSpans)
				s.Spans = nil
				for _, sp := range ss.Spans {
					alone := proto.Clone(top).(*coltracepb.ExportTraceServiceRequest)
					ar, as := proto.Clone(r).(*tracepb.ResourceSpans), proto.Clone(s).(*tracepb.ScopeSpans)
					as.Spans = []*tracepb.Span{sp}
					ar.ScopeSpans = []*tracepb.ScopeSpans{as}
					alone.ResourceSpans = []*tracepb.ResourceSpans{ar}
					out = append(out, flatItem{ctx: key(mustMarshal(top), mustMarshal(r), mustMarshal(s)), item: mustMarshal(sp),
						attrs: rs.GetResource().GetAttributes(), trace: sp.TraceId, alone: alone})
				}
			}
		}
	}
	return out
}

func pointCount(m *metricspb.Metric) int {
	switch d := m.Data.(type) {
	case *metricspb.Metric_Gauge:
		return len(d.Gauge.DataPoints)
	case *metricspb.Metric_Sum:
		return len(d.Sum.DataPoints)
	case *metricspb.Metric_Histogram:
		return len(d.Histogram.DataPoints)
	case *metricspb.Metric_ExponentialHistogram:
		return len(d.ExponentialHistogram.DataPoints)
	case *metricspb.Metric_Summary:
		return len(d.Summary.DataPoints)
	}
	return 0
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
