package cardinality

import (
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

func kvs(kv ...string) []*common.KeyValue {
	var out []*common.KeyValue
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &common.KeyValue{Key: kv[i], Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: kv[i+1]}}})
	}
	return out
}

// req builds requests resource by resource.
type req struct {
	r colmetrics.ExportMetricsServiceRequest
}

// add appends a resource with attributes res holding one gauge name with one
// point per attribute set of points.
func (q *req) add(res []*common.KeyValue, name string, points ...[]*common.KeyValue) *req {
	var pts []*metrics.NumberDataPoint
	for _, p := range points {
		pts = append(pts, &metrics.NumberDataPoint{Attributes: p, TimeUnixNano: 1, Value: &metrics.NumberDataPoint_AsInt{AsInt: 1}})
	}
	var r *resource.Resource
	if res != nil {
		r = &resource.Resource{Attributes: res}
	}
	q.r.ResourceMetrics = append(q.r.ResourceMetrics, &metrics.ResourceMetrics{
		Resource: r,
		ScopeMetrics: []*metrics.ScopeMetrics{{Metrics: []*metrics.Metric{{
			Name: name, Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}},
		}}}},
	})
	return q
}

func (q *req) body(tb testing.TB) []byte {
	tb.Helper()
	b, err := proto.Marshal(&q.r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// poisoner allocates from the Go heap and overwrites every freed buffer, of
// any size (arrowpool poisons pooled sizes only), so a string the tracker
// kept from a released batch shows.
type poisoner struct{}

func (poisoner) Allocate(n int) []byte { return make([]byte, n) }
func (p poisoner) Reallocate(n int, b []byte) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	nb := p.Allocate(n)
	copy(nb, b)
	p.Free(b)
	return nb
}
func (poisoner) Free(b []byte) {
	b = b[:cap(b)]
	for i := range b {
		b[i] = '#'
	}
}

// observe decodes q with poisoned buffers, observes it and releases it.
func observe(tb testing.TB, tr *Tracker, tenant string, st Stage, q *req, now time.Time) {
	tb.Helper()
	bld := schemas.NewBuilder(otlpwire.Metrics, poisoner{})
	defer bld.Release()
	if _, err := bld.Append(q.body(tb)); err != nil {
		tb.Fatal(err)
	}
	b := bld.Build()
	defer b.Release()
	b.ItemAttrSets, b.ItemSetIDs = nil, nil // point by point; the tests of sets number them
	if err := tr.Observe(tenant, st, b, now); err != nil {
		tb.Fatal(err)
	}
}
