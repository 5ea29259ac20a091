package otlptest

import (
	"encoding/binary"
	"fmt"
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
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Gen makes random requests for property tests and fuzz seeds, the same
// sequence for the same seed and options. Its requests set every field of the
// three signals (but KeyValue.key_strindex), and hold:
//   - every AnyValue kind, arrays and key-value lists nested a few levels,
//     string_value_strindex, an AnyValue with nothing set and a KeyValue
//     without a value;
//   - edge values: "", Unicode, a NUL byte, 0 and max uint64, NaN, ±Inf and
//     -0, ids empty or of unusual length;
//   - empty and absent messages at every level: requests without resources,
//     resources without scopes, scopes without items, nil resources and
//     scopes, metrics without data, data points without value;
//   - shapes that protobuf accepts though OTLP forbids them: histograms whose
//     bounds do not match their buckets, duplicate attribute keys, an empty
//     attribute key;
//   - what an ingester's splitter must keep together or apart: resources
//     repeated with their attributes in another order, spans and log records
//     sharing trace ids, and items from none to a couple of kilobytes (log
//     bodies and span names of hundreds of bytes, histograms of 40 buckets),
//     so that a record limit of a few hundred bytes cuts requests at every
//     level;
//   - with GenOptions.Unknown, unknown fields of every wire type.
//
// Requests stay small (at most 4 resources of 3 scopes; 6 log records or
// spans, or 4 metrics of 6 data points, per scope): a property test explores
// by running many seeds.
//
// A -0 in a proto3 double (quantiles, summary sums, zero thresholds) does
// not survive proto.Clone, which protobuf-go merges only when != 0, though
// proto.Marshal writes it: a test that copies these requests should copy them
// through their encoding.
type Gen struct {
	r   *rand.Rand
	opt GenOptions
}

// GenOptions says what a Gen adds to its requests.
type GenOptions struct {
	// Unknown gives messages unknown fields of every wire type (varint,
	// fixed32, fixed64, length-delimited and group), as a newer OTLP would
	// send them: the request, resource, scope, metric, data and item
	// messages; not attributes, nor exemplars, quantiles, buckets, span
	// events, links and status.
	Unknown bool
}

// NewGen returns a Gen whose requests are fixed by seed and opt.
func NewGen(seed uint64, opt GenOptions) *Gen {
	return &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), opt: opt}
}

// Rand is the Gen's source: a test that draws its own choices (options,
// how many requests) from it is fixed by the seed as a whole.
func (g *Gen) Rand() *rand.Rand { return g.r }

// Message returns a random request of sig.
func (g *Gen) Message(sig otlpwire.Signal) proto.Message {
	switch sig {
	case otlpwire.Metrics:
		return g.metrics()
	case otlpwire.Logs:
		return g.logs()
	}
	return g.traces()
}

// Request returns a random request of sig, marshalled.
func (g *Gen) Request(sig otlpwire.Signal) []byte {
	b, err := proto.Marshal(g.Message(sig))
	if err != nil {
		panic(err)
	}
	return b
}

func (g *Gen) n(max int) int         { return g.r.IntN(max + 1) }
func (g *Gen) chance(p float64) bool { return g.r.Float64() < p }

var words = []string{"", "a", "service.name", "http.route", "Ünïcödé ✓", "GET", "/api/v1/items/{id}", "x\x00y",
	"https://opentelemetry.io/schemas/1.26.0"}

// word is one of words mostly, else up to 40 random letters.
func (g *Gen) word() string {
	if g.chance(0.8) {
		return words[g.r.IntN(len(words))]
	}
	return g.letters(40)
}

func (g *Gen) letters(max int) string {
	b := make([]byte, g.n(max))
	for i := range b {
		b[i] = byte('a' + g.r.IntN(26))
	}
	return string(b)
}

// text is a word mostly, and up to large letters one time in ten.
func (g *Gen) text(large int) string {
	if g.chance(0.1) {
		return g.letters(large)
	}
	return g.word()
}

// bytes is n random bytes mostly, else none or an unusual number.
func (g *Gen) bytes(n int) []byte {
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

// traceID is one of seven ids half the time, so that items share traces
// within and across resources, else bytes(16).
func (g *Gen) traceID() []byte {
	if g.chance(0.5) {
		id := make([]byte, 16)
		binary.BigEndian.PutUint64(id[8:], uint64(g.n(6)))
		return id
	}
	return g.bytes(16)
}

func (g *Gen) u64() uint64 {
	switch g.r.IntN(4) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64 - uint64(g.n(3))
	}
	return g.r.Uint64()
}

func (g *Gen) f64() float64 {
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

func (g *Gen) any(depth int) *common.AnyValue {
	k := g.r.IntN(9)
	if depth > 3 && k >= 5 && k <= 6 {
		k = 0
	}
	switch k {
	case 0:
		return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: g.word()}}
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

func (g *Gen) attrs(depth int) []*common.KeyValue {
	var kvs []*common.KeyValue
	for range g.n(5) {
		kv := &common.KeyValue{Key: g.word()}
		if !g.chance(0.05) {
			kv.Value = g.any(depth)
		}
		kvs = append(kvs, kv)
	}
	return kvs
}

// addUnknown sometimes gives m unknown fields of every wire type.
func (g *Gen) addUnknown(m proto.Message) {
	if !g.opt.Unknown || g.r.IntN(3) != 0 {
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
			b = protowire.AppendString(b, g.letters(20))
		case 4:
			b = protowire.AppendTag(b, num, protowire.StartGroupType)
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(g.n(1000)))
			b = protowire.AppendTag(b, num, protowire.EndGroupType)
		}
	}
	m.ProtoReflect().SetUnknown(b)
}

// resource is nil sometimes, else half the time one of four identities with
// its attributes shuffled (the same resource written differently, in one
// request or several), else random attributes.
func (g *Gen) resource() *resource.Resource {
	if g.chance(0.1) {
		return nil
	}
	r := &resource.Resource{DroppedAttributesCount: uint32(g.n(2))}
	if g.chance(0.5) {
		id := g.r.IntN(4)
		r.Attributes = []*common.KeyValue{
			str("service.name", fmt.Sprintf("svc-%d", id)),
			str("host.name", fmt.Sprintf("host-%d", id%2)),
			str("k8s.pod.name", fmt.Sprintf("pod-%d", id)),
		}[:1+id%3]
		g.r.Shuffle(len(r.Attributes), func(i, j int) { r.Attributes[i], r.Attributes[j] = r.Attributes[j], r.Attributes[i] })
	} else {
		r.Attributes = g.attrs(0)
	}
	if g.chance(0.2) {
		r.EntityRefs = []*common.EntityRef{{SchemaUrl: g.word(), Type: "service", IdKeys: []string{"service.name"}, DescriptionKeys: []string{g.word()}}}
	}
	g.addUnknown(r)
	return r
}

func (g *Gen) scope() *common.InstrumentationScope {
	if g.chance(0.1) {
		return nil
	}
	s := &common.InstrumentationScope{Name: g.word(), Version: g.word(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2))}
	g.addUnknown(s)
	return s
}

func (g *Gen) exemplars() []*metrics.Exemplar {
	var es []*metrics.Exemplar
	for range g.n(2) {
		e := &metrics.Exemplar{FilteredAttributes: g.attrs(0), TimeUnixNano: g.u64(), SpanId: g.bytes(8), TraceId: g.traceID()}
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

func (g *Gen) optF64() *float64 {
	if g.chance(0.5) {
		return nil
	}
	v := g.f64()
	return &v
}

func (g *Gen) u64s(max int) []uint64 {
	var v []uint64
	for range g.n(max) {
		v = append(v, g.u64())
	}
	return v
}

// histogramBuckets are up to 40 buckets with matching bounds half the time,
// else up to 5 counts and 2 bounds that need not match.
func (g *Gen) histogramBuckets() ([]uint64, []float64) {
	if g.chance(0.5) {
		nb := g.n(40)
		counts := make([]uint64, nb)
		var bounds []float64
		for i := range counts {
			counts[i] = uint64(g.n(9))
			if i < nb-1 {
				bounds = append(bounds, float64(i))
			}
		}
		return counts, bounds
	}
	return g.u64s(5), []float64{g.f64(), g.f64()}[:g.n(2)]
}

// expBuckets are none sometimes, else up to 20 counts.
func (g *Gen) expBuckets() *metrics.ExponentialHistogramDataPoint_Buckets {
	if g.chance(0.3) {
		return nil
	}
	b := &metrics.ExponentialHistogramDataPoint_Buckets{Offset: int32(g.r.Uint32())}
	if g.chance(0.5) {
		b.Offset = int32(g.n(10))
	}
	b.BucketCounts = g.u64s(g.pick(5, 20))
	return b
}

// pick is small mostly and large one time in three.
func (g *Gen) pick(small, large int) int {
	if g.r.IntN(3) == 0 {
		return large
	}
	return small
}

func (g *Gen) metric() *metrics.Metric {
	m := &metrics.Metric{Name: g.word(), Description: g.word(), Unit: g.word()}
	if g.chance(0.2) {
		m.Metadata = g.attrs(0)
	}
	temp := metrics.AggregationTemporality(g.n(2))
	np := g.n(6)
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
			g.addUnknown(p)
			ps = append(ps, p)
		}
		return ps
	}
	var data proto.Message
	switch g.r.IntN(6) {
	case 0:
		d := &metrics.Gauge{DataPoints: numbers()}
		m.Data, data = &metrics.Metric_Gauge{Gauge: d}, d
	case 1:
		d := &metrics.Sum{DataPoints: numbers(), AggregationTemporality: temp, IsMonotonic: g.chance(0.5)}
		m.Data, data = &metrics.Metric_Sum{Sum: d}, d
	case 2:
		d := &metrics.Histogram{AggregationTemporality: temp}
		for range np {
			p := &metrics.HistogramDataPoint{
				Attributes: g.attrs(0), StartTimeUnixNano: g.u64(), TimeUnixNano: g.u64(), Count: g.u64(), Sum: g.optF64(),
				Exemplars: g.exemplars(), Flags: uint32(g.n(1)), Min: g.optF64(), Max: g.optF64(),
			}
			p.BucketCounts, p.ExplicitBounds = g.histogramBuckets()
			g.addUnknown(p)
			d.DataPoints = append(d.DataPoints, p)
		}
		m.Data, data = &metrics.Metric_Histogram{Histogram: d}, d
	case 3:
		d := &metrics.ExponentialHistogram{AggregationTemporality: temp}
		for range np {
			p := &metrics.ExponentialHistogramDataPoint{
				Attributes: g.attrs(0), StartTimeUnixNano: g.u64(), TimeUnixNano: g.u64(), Count: g.u64(), Sum: g.optF64(),
				Scale: int32(g.r.IntN(41)) - 20, ZeroCount: g.u64(), Positive: g.expBuckets(), Negative: g.expBuckets(),
				Flags: uint32(g.n(1)), Exemplars: g.exemplars(), Min: g.optF64(), Max: g.optF64(), ZeroThreshold: g.f64(),
			}
			g.addUnknown(p)
			d.DataPoints = append(d.DataPoints, p)
		}
		m.Data, data = &metrics.Metric_ExponentialHistogram{ExponentialHistogram: d}, d
	case 4:
		d := &metrics.Summary{}
		for range np {
			p := &metrics.SummaryDataPoint{Attributes: g.attrs(0), StartTimeUnixNano: g.u64(), TimeUnixNano: g.u64(), Count: g.u64(), Sum: g.f64(), Flags: uint32(g.n(1))}
			for range g.n(4) {
				p.QuantileValues = append(p.QuantileValues, &metrics.SummaryDataPoint_ValueAtQuantile{Quantile: g.f64(), Value: g.f64()})
			}
			g.addUnknown(p)
			d.DataPoints = append(d.DataPoints, p)
		}
		m.Data, data = &metrics.Metric_Summary{Summary: d}, d
	}
	// case 5: no data
	if data != nil {
		g.addUnknown(data)
	}
	g.addUnknown(m)
	return m
}

func (g *Gen) metrics() *colmetrics.ExportMetricsServiceRequest {
	req := &colmetrics.ExportMetricsServiceRequest{}
	for range g.n(4) {
		rm := &metrics.ResourceMetrics{Resource: g.resource(), SchemaUrl: g.word()}
		for range g.n(3) {
			sm := &metrics.ScopeMetrics{Scope: g.scope(), SchemaUrl: g.word()}
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

func (g *Gen) logs() *collogs.ExportLogsServiceRequest {
	req := &collogs.ExportLogsServiceRequest{}
	for range g.n(4) {
		rl := &logs.ResourceLogs{Resource: g.resource(), SchemaUrl: g.word()}
		for range g.n(3) {
			sl := &logs.ScopeLogs{Scope: g.scope(), SchemaUrl: g.word()}
			for range g.n(6) {
				lr := &logs.LogRecord{
					TimeUnixNano: g.u64(), ObservedTimeUnixNano: g.u64(), SeverityNumber: logs.SeverityNumber(g.n(24)),
					SeverityText: g.word(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2)),
					Flags: g.r.Uint32(), TraceId: g.traceID(), SpanId: g.bytes(8), EventName: g.word(),
				}
				switch g.r.IntN(10) {
				case 0: // no body
				case 1, 2, 3, 4:
					lr.Body = &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: g.text(400)}}
				default:
					lr.Body = g.any(0)
				}
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

func (g *Gen) traces() *coltrace.ExportTraceServiceRequest {
	req := &coltrace.ExportTraceServiceRequest{}
	for range g.n(4) {
		rs := &trace.ResourceSpans{Resource: g.resource(), SchemaUrl: g.word()}
		for range g.n(3) {
			ss := &trace.ScopeSpans{Scope: g.scope(), SchemaUrl: g.word()}
			for range g.n(6) {
				sp := &trace.Span{
					TraceId: g.traceID(), SpanId: g.bytes(8), TraceState: g.word(), ParentSpanId: g.bytes(8), Flags: g.r.Uint32(),
					Name: g.text(300), Kind: trace.Span_SpanKind(g.n(5)), StartTimeUnixNano: g.u64(), EndTimeUnixNano: g.u64(),
					Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2)), DroppedEventsCount: uint32(g.n(2)), DroppedLinksCount: uint32(g.n(2)),
				}
				for range g.n(2) {
					sp.Events = append(sp.Events, &trace.Span_Event{TimeUnixNano: g.u64(), Name: g.word(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2))})
				}
				for range g.n(2) {
					sp.Links = append(sp.Links, &trace.Span_Link{TraceId: g.traceID(), SpanId: g.bytes(8), TraceState: g.word(), Attributes: g.attrs(0), DroppedAttributesCount: uint32(g.n(2)), Flags: g.r.Uint32()})
				}
				if !g.chance(0.3) {
					sp.Status = &trace.Status{Message: g.word(), Code: trace.Status_StatusCode(g.n(2))}
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
