package schemas

import (
	"math"
	"math/rand/v2"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// gen builds random OTLP requests that use every field of the three signals.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) n(max int) int         { return g.r.IntN(max + 1) }
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

var words = []string{"", "a", "service.name", "http.route", "Ünïcödé ✓", "GET", "/api/v1/items/{id}", "x\x00y"}

func (g *gen) str() string {
	if g.chance(0.8) {
		return words[g.r.IntN(len(words))]
	}
	b := make([]byte, g.n(40))
	for i := range b {
		b[i] = byte('a' + g.r.IntN(26))
	}
	return string(b)
}

func (g *gen) bytes(n int) []byte {
	if g.chance(0.3) {
		return nil
	}
	if g.chance(0.1) {
		n = g.n(20) // ids of unusual length must survive too
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

func (g *gen) u64() uint64 {
	switch g.r.IntN(4) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64 - uint64(g.n(3))
	}
	return g.r.Uint64()
}

func (g *gen) f64() float64 {
	switch g.r.IntN(8) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.Inf(1 - 2*g.r.IntN(2))
	case 3:
		return math.NaN()
	}
	return g.r.NormFloat64() * 1e6
}

func (g *gen) any(depth int) *common.AnyValue {
	k := g.r.IntN(9)
	if depth > 3 && k >= 5 && k <= 6 {
		k = 0
	}
	switch k {
	case 0:
		return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: g.str()}}
	case 1:
		return &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: g.chance(0.5)}}
	case 2:
		return &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(g.u64())}}
	case 3:
		return &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: g.f64()}}
	case 4:
		return &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: g.bytes(g.n(10))}}
	case 5:
		a := &common.ArrayValue{}
		for range g.n(4) {
			a.Values = append(a.Values, g.any(depth+1))
		}
		return &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: a}}
	case 6:
		return &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: &common.KeyValueList{Values: g.attrs(depth + 1)}}}
	case 7:
		return &common.AnyValue{} // no value set
	}
	return &common.AnyValue{Value: &common.AnyValue_StringValueStrindex{StringValueStrindex: int32(g.n(5))}}
}

func (g *gen) attrs(depth int) []*common.KeyValue {
	var kvs []*common.KeyValue
	for range g.n(5) {
		kv := &common.KeyValue{Key: g.str()}
		if !g.chance(0.05) {
			kv.Value = g.any(depth)
		}
		kvs = append(kvs, kv)
	}
	return kvs
}

func (g *gen) resource() *resource.Resource {
	if g.chance(0.1) {
		return nil
	}
	r := &resource.Resource{Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2))}
	if g.chance(0.2) {
		r.EntityRefs = []*common.EntityRef{{SchemaUrl: g.str(), Type: "service", IdKeys: []string{"service.name"}, DescriptionKeys: []string{g.str()}}}
	}
	return r
}

func (g *gen) scope() *common.InstrumentationScope {
	if g.chance(0.1) {
		return nil
	}
	return &common.InstrumentationScope{Name: g.str(), Version: g.str(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2))}
}

func (g *gen) exemplars() []*metrics.Exemplar {
	var es []*metrics.Exemplar
	for range g.n(2) {
		e := &metrics.Exemplar{FilteredAttributes: g.attrs(0), TimeUnixNano: g.u64(), SpanId: g.bytes(8), TraceId: g.bytes(16)}
		switch g.r.IntN(3) {
		case 0:
			e.Value = &metrics.Exemplar_AsDouble{AsDouble: g.f64()}
		case 1:
			e.Value = &metrics.Exemplar_AsInt{AsInt: int64(g.u64())}
		}
		es = append(es, e)
	}
	return es
}

func (g *gen) optF64() *float64 {
	if g.chance(0.5) {
		return nil
	}
	v := g.f64()
	return &v
}

func (g *gen) u64s() []uint64 {
	var v []uint64
	for range g.n(5) {
		v = append(v, g.u64())
	}
	return v
}

func (g *gen) buckets() *metrics.ExponentialHistogramDataPoint_Buckets {
	if g.chance(0.3) {
		return nil
	}
	return &metrics.ExponentialHistogramDataPoint_Buckets{Offset: int32(g.r.Uint32()), BucketCounts: g.u64s()}
}

func (g *gen) metric() *metrics.Metric {
	m := &metrics.Metric{Name: g.str(), Description: g.str(), Unit: g.str()}
	if g.chance(0.2) {
		m.Metadata = g.attrs(0)
	}
	temp := metrics.AggregationTemporality(g.n(2))
	np := g.n(3)
	numbers := func() []*metrics.NumberDataPoint {
		var ps []*metrics.NumberDataPoint
		for range np {
			p := &metrics.NumberDataPoint{Attributes: g.attrs(0), StartTimeUnixNano: g.u64(), TimeUnixNano: g.u64(), Exemplars: g.exemplars(), Flags: uint32(g.n(1))}
			switch g.r.IntN(3) {
			case 0:
				p.Value = &metrics.NumberDataPoint_AsDouble{AsDouble: g.f64()}
			case 1:
				p.Value = &metrics.NumberDataPoint_AsInt{AsInt: int64(g.u64())}
			}
			ps = append(ps, p)
		}
		return ps
	}
	switch g.r.IntN(6) {
	case 0:
		m.Data = &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: numbers()}}
	case 1:
		m.Data = &metrics.Metric_Sum{Sum: &metrics.Sum{DataPoints: numbers(), AggregationTemporality: temp, IsMonotonic: g.chance(0.5)}}
	case 2:
		h := &metrics.Histogram{AggregationTemporality: temp}
		for range np {
			h.DataPoints = append(h.DataPoints, &metrics.HistogramDataPoint{
				Attributes: g.attrs(0), StartTimeUnixNano: g.u64(), TimeUnixNano: g.u64(), Count: g.u64(), Sum: g.optF64(),
				BucketCounts: g.u64s(), ExplicitBounds: []float64{g.f64(), g.f64()}[:g.n(2)], Exemplars: g.exemplars(),
				Flags: uint32(g.n(1)), Min: g.optF64(), Max: g.optF64(),
			})
		}
		m.Data = &metrics.Metric_Histogram{Histogram: h}
	case 3:
		h := &metrics.ExponentialHistogram{AggregationTemporality: temp}
		for range np {
			h.DataPoints = append(h.DataPoints, &metrics.ExponentialHistogramDataPoint{
				Attributes: g.attrs(0), StartTimeUnixNano: g.u64(), TimeUnixNano: g.u64(), Count: g.u64(), Sum: g.optF64(),
				Scale: int32(g.r.IntN(41)) - 20, ZeroCount: g.u64(), Positive: g.buckets(), Negative: g.buckets(),
				Flags: uint32(g.n(1)), Exemplars: g.exemplars(), Min: g.optF64(), Max: g.optF64(), ZeroThreshold: g.f64(),
			})
		}
		m.Data = &metrics.Metric_ExponentialHistogram{ExponentialHistogram: h}
	case 4:
		s := &metrics.Summary{}
		for range np {
			p := &metrics.SummaryDataPoint{Attributes: g.attrs(0), StartTimeUnixNano: g.u64(), TimeUnixNano: g.u64(), Count: g.u64(), Sum: g.f64(), Flags: uint32(g.n(1))}
			for range g.n(3) {
				p.QuantileValues = append(p.QuantileValues, &metrics.SummaryDataPoint_ValueAtQuantile{Quantile: g.f64(), Value: g.f64()})
			}
			s.DataPoints = append(s.DataPoints, p)
		}
		m.Data = &metrics.Metric_Summary{Summary: s}
	}
	// case 5: no data
	return m
}

func (g *gen) metrics() *colmetrics.ExportMetricsServiceRequest {
	req := &colmetrics.ExportMetricsServiceRequest{}
	for range g.n(3) {
		rm := &metrics.ResourceMetrics{Resource: g.resource(), SchemaUrl: g.str()}
		for range g.n(3) {
			sm := &metrics.ScopeMetrics{Scope: g.scope(), SchemaUrl: g.str()}
			for range g.n(4) {
				sm.Metrics = append(sm.Metrics, g.metric())
			}
			rm.ScopeMetrics = append(rm.ScopeMetrics, sm)
		}
		req.ResourceMetrics = append(req.ResourceMetrics, rm)
	}
	return req
}

func (g *gen) logs() *collogs.ExportLogsServiceRequest {
	req := &collogs.ExportLogsServiceRequest{}
	for range g.n(3) {
		rl := &logs.ResourceLogs{Resource: g.resource(), SchemaUrl: g.str()}
		for range g.n(3) {
			sl := &logs.ScopeLogs{Scope: g.scope(), SchemaUrl: g.str()}
			for range g.n(5) {
				lr := &logs.LogRecord{
					TimeUnixNano: g.u64(), ObservedTimeUnixNano: g.u64(), SeverityNumber: logs.SeverityNumber(g.n(24)),
					SeverityText: g.str(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2)),
					Flags: g.r.Uint32(), TraceId: g.bytes(16), SpanId: g.bytes(8), EventName: g.str(),
				}
				if !g.chance(0.1) {
					lr.Body = g.any(0)
				}
				sl.LogRecords = append(sl.LogRecords, lr)
			}
			rl.ScopeLogs = append(rl.ScopeLogs, sl)
		}
		req.ResourceLogs = append(req.ResourceLogs, rl)
	}
	return req
}

func (g *gen) traces() *coltrace.ExportTraceServiceRequest {
	req := &coltrace.ExportTraceServiceRequest{}
	for range g.n(3) {
		rs := &trace.ResourceSpans{Resource: g.resource(), SchemaUrl: g.str()}
		for range g.n(3) {
			ss := &trace.ScopeSpans{Scope: g.scope(), SchemaUrl: g.str()}
			for range g.n(5) {
				sp := &trace.Span{
					TraceId: g.bytes(16), SpanId: g.bytes(8), TraceState: g.str(), ParentSpanId: g.bytes(8), Flags: g.r.Uint32(),
					Name: g.str(), Kind: trace.Span_SpanKind(g.n(5)), StartTimeUnixNano: g.u64(), EndTimeUnixNano: g.u64(),
					Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2)), DroppedEventsCount: uint32(g.n(2)), DroppedLinksCount: uint32(g.n(2)),
				}
				for range g.n(2) {
					sp.Events = append(sp.Events, &trace.Span_Event{TimeUnixNano: g.u64(), Name: g.str(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2))})
				}
				for range g.n(2) {
					sp.Links = append(sp.Links, &trace.Span_Link{TraceId: g.bytes(16), SpanId: g.bytes(8), TraceState: g.str(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2)), Flags: g.r.Uint32()})
				}
				if !g.chance(0.3) {
					sp.Status = &trace.Status{Message: g.str(), Code: trace.Status_StatusCode(g.n(2))}
				}
				ss.Spans = append(ss.Spans, sp)
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		req.ResourceSpans = append(req.ResourceSpans, rs)
	}
	return req
}

func (g *gen) request(sig otlpwire.Signal) proto.Message {
	switch sig {
	case otlpwire.Metrics:
		return g.metrics()
	case otlpwire.Logs:
		return g.logs()
	}
	return g.traces()
}
