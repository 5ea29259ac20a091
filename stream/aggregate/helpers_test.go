package aggregate

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

const sec = int64(time.Second)

// P is a test point: input In of output Out (0: 1), at T seconds.
type P struct {
	In, Out uint64
	T       float64 // seconds
	Start   float64 // seconds; 0 none
	V       float64
	Int     bool
	Flags   uint32
	Attrs   []string // point attributes k, v, ...; default {"job", "api"}
	Hist    *metrics.HistogramDataPoint
	Exp     *metrics.ExponentialHistogramDataPoint
	Sum     *metrics.SummaryDataPoint
}

func ns(s float64) uint64 { return uint64(s * float64(sec)) }

func kvs(kv ...string) []*common.KeyValue {
	var r []*common.KeyValue
	for i := 0; i+1 < len(kv); i += 2 {
		r = append(r, &common.KeyValue{Key: kv[i], Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: kv[i+1]}}})
	}
	return r
}

// M describes the metric of a test batch.
type M struct {
	Kind uint8 // schemas.Metric*
	Mono bool
	Temp metrics.AggregationTemporality
	Name string
}

var (
	mGauge  = M{Kind: schemas.MetricGauge}
	mCum    = M{Kind: schemas.MetricSum, Mono: true, Temp: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}
	mDelta  = M{Kind: schemas.MetricSum, Mono: true, Temp: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA}
	mUpDown = M{Kind: schemas.MetricSum, Temp: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}
	mHist   = M{Kind: schemas.MetricHistogram, Temp: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}
	mHistD  = M{Kind: schemas.MetricHistogram, Temp: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA}
	mExp    = M{Kind: schemas.MetricExponentialHistogram, Temp: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}
	mExpD   = M{Kind: schemas.MetricExponentialHistogram, Temp: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA}
	mSum    = M{Kind: schemas.MetricSummary}
)

// request builds one request: a metric per point (so every point may have
// its own attributes), all under one resource and scope.
func request(m M, pts []P) *colmetrics.ExportMetricsServiceRequest {
	name := m.Name
	if name == "" {
		name = "requests"
	}
	sm := &metrics.ScopeMetrics{Scope: &common.InstrumentationScope{Name: "test", Version: "1"}}
	for _, p := range pts {
		attrs := p.Attrs
		if attrs == nil {
			attrs = []string{"job", "api"}
		}
		met := &metrics.Metric{Name: name, Unit: "1", Description: "d"}
		num := &metrics.NumberDataPoint{Attributes: kvs(attrs...), StartTimeUnixNano: ns(p.Start), TimeUnixNano: ns(p.T), Flags: p.Flags}
		if p.Int {
			num.Value = &metrics.NumberDataPoint_AsInt{AsInt: int64(p.V)}
		} else {
			num.Value = &metrics.NumberDataPoint_AsDouble{AsDouble: p.V}
		}
		switch m.Kind {
		case schemas.MetricGauge:
			met.Data = &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: []*metrics.NumberDataPoint{num}}}
		case schemas.MetricSum:
			met.Data = &metrics.Metric_Sum{Sum: &metrics.Sum{DataPoints: []*metrics.NumberDataPoint{num}, AggregationTemporality: m.Temp, IsMonotonic: m.Mono}}
		case schemas.MetricHistogram:
			h := proto.Clone(p.Hist).(*metrics.HistogramDataPoint)
			h.Attributes, h.StartTimeUnixNano, h.TimeUnixNano, h.Flags = kvs(attrs...), ns(p.Start), ns(p.T), p.Flags
			met.Data = &metrics.Metric_Histogram{Histogram: &metrics.Histogram{DataPoints: []*metrics.HistogramDataPoint{h}, AggregationTemporality: m.Temp}}
		case schemas.MetricExponentialHistogram:
			h := proto.Clone(p.Exp).(*metrics.ExponentialHistogramDataPoint)
			h.Attributes, h.StartTimeUnixNano, h.TimeUnixNano, h.Flags = kvs(attrs...), ns(p.Start), ns(p.T), p.Flags
			met.Data = &metrics.Metric_ExponentialHistogram{ExponentialHistogram: &metrics.ExponentialHistogram{DataPoints: []*metrics.ExponentialHistogramDataPoint{h}, AggregationTemporality: m.Temp}}
		case schemas.MetricSummary:
			h := proto.Clone(p.Sum).(*metrics.SummaryDataPoint)
			h.Attributes, h.StartTimeUnixNano, h.TimeUnixNano, h.Flags = kvs(attrs...), ns(p.Start), ns(p.T), p.Flags
			met.Data = &metrics.Metric_Summary{Summary: &metrics.Summary{DataPoints: []*metrics.SummaryDataPoint{h}}}
		}
		sm.Metrics = append(sm.Metrics, met)
	}
	return &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{
		Resource:     &resource.Resource{Attributes: kvs("service.name", "svc")},
		ScopeMetrics: []*metrics.ScopeMetrics{sm},
	}}}
}

func batchOf(t testing.TB, m M, pts []P) (*schemas.Batch, []uint64, []uint64) {
	t.Helper()
	body, err := proto.Marshal(request(m, pts))
	if err != nil {
		t.Fatal(err)
	}
	bld := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	if _, err := bld.Append(body); err != nil {
		t.Fatal(err)
	}
	b := bld.Build()
	in, out := make([]uint64, len(pts)), make([]uint64, len(pts))
	for i, p := range pts {
		in[i], out[i] = p.In, p.Out
		if out[i] == 0 {
			out[i] = 1
		}
	}
	return b, in, out
}

// add adds pts as one batch.
func add(t testing.TB, a *Aggregator, spec Spec, m M, pts ...P) {
	t.Helper()
	addTenant(t, a, "t1", spec, m, pts...)
}

func addTenant(t testing.TB, a *Aggregator, tenant string, spec Spec, m M, pts ...P) {
	t.Helper()
	b, in, out := batchOf(t, m, pts)
	defer b.Release()
	if err := a.Add(tenant, b, in, out, spec, time.Unix(1000, 0)); err != nil {
		t.Fatal(err)
	}
}

// R is an output point, simplified.
type R struct {
	Tenant string
	T      float64 // seconds
	Start  float64
	V      float64
	Int    bool
	Attrs  string // "k=v,..."
	Hist   *metrics.HistogramDataPoint
	Exp    *metrics.ExponentialHistogramDataPoint
	Sum    *metrics.SummaryDataPoint
	Kind   uint8
}

func attrString(kv []*common.KeyValue) string {
	var s string
	for i, x := range kv {
		if i > 0 {
			s += ","
		}
		s += x.Key + "=" + x.Value.GetStringValue()
	}
	return s
}

func secs(n uint64) float64 { return float64(n) / float64(sec) }

// decode turns outputs into R, releasing their batches.
func decode(t testing.TB, outs []Output) []R {
	t.Helper()
	var rs []R
	for _, o := range outs {
		body, err := schemas.ToOTLP(o.Batch, nil)
		o.Batch.Release()
		if err != nil {
			t.Fatal(err)
		}
		var req colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					num := func(k uint8, dps []*metrics.NumberDataPoint) {
						for _, p := range dps {
							r := R{Tenant: o.Tenant, Kind: k, T: secs(p.TimeUnixNano), Start: secs(p.StartTimeUnixNano), Attrs: attrString(p.Attributes)}
							switch v := p.Value.(type) {
							case *metrics.NumberDataPoint_AsInt:
								r.V, r.Int = float64(v.AsInt), true
							case *metrics.NumberDataPoint_AsDouble:
								r.V = v.AsDouble
							}
							rs = append(rs, r)
							n++
						}
					}
					switch d := m.Data.(type) {
					case *metrics.Metric_Gauge:
						num(schemas.MetricGauge, d.Gauge.DataPoints)
					case *metrics.Metric_Sum:
						num(schemas.MetricSum, d.Sum.DataPoints)
					case *metrics.Metric_Histogram:
						for _, p := range d.Histogram.DataPoints {
							rs = append(rs, R{Tenant: o.Tenant, Kind: schemas.MetricHistogram, T: secs(p.TimeUnixNano), Start: secs(p.StartTimeUnixNano), Attrs: attrString(p.Attributes), Hist: p})
							n++
						}
					case *metrics.Metric_ExponentialHistogram:
						for _, p := range d.ExponentialHistogram.DataPoints {
							rs = append(rs, R{Tenant: o.Tenant, Kind: schemas.MetricExponentialHistogram, T: secs(p.TimeUnixNano), Start: secs(p.StartTimeUnixNano), Attrs: attrString(p.Attributes), Exp: p})
							n++
						}
					case *metrics.Metric_Summary:
						for _, p := range d.Summary.DataPoints {
							rs = append(rs, R{Tenant: o.Tenant, Kind: schemas.MetricSummary, T: secs(p.TimeUnixNano), Start: secs(p.StartTimeUnixNano), Attrs: attrString(p.Attributes), Sum: p})
							n++
						}
					}
				}
			}
		}
		if n != o.Points {
			t.Errorf("output of %s: %d points, Points = %d", o.Tenant, n, o.Points)
		}
	}
	return rs
}

func flush(t testing.TB, a *Aggregator, force bool) []R {
	t.Helper()
	outs, err := a.Flush(time.Unix(1000, 0), force)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, outs)
}
