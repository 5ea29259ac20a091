package schemas_test

import (
	"bytes"
	"math"
	"testing"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// TestAppendNumbers: a request whose gauges and sums take their points
// from AppendNumbers builds the batch that the same request with those
// points encoded in it builds, WriteBatch's bytes for bytes (ints and
// doubles, with and without a start time, a histogram among the metrics
// with its own points, points in the request before the given ones), in
// the same builder one after the other; and what does not fit is refused.
func TestAppendNumbers(t *testing.T) {
	minus7 := int64(-7)
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "cart"}}}}}
	given := [][]schemas.NumberPoint{
		{{Start: 0, Time: 10, Value: uint64(minus7), IsInt: true}, {Time: 20, Value: math.Float64bits(2.5)}},
		nil, // the histogram
		{{Start: 5, Time: 10, Value: 3, IsInt: true}, {Start: 5, Time: 20, Value: math.Float64bits(-0.0)}, {Start: 5, Time: 30, Value: 9, IsInt: true}},
	}
	own := &metricspb.NumberDataPoint{TimeUnixNano: 1, Value: &metricspb.NumberDataPoint_AsInt{AsInt: 1}} // in the first gauge's message
	request := func(withGiven bool) *colmetrics.ExportMetricsServiceRequest {
		pts := func(k int) []*metricspb.NumberDataPoint {
			var out []*metricspb.NumberDataPoint
			if k == 0 {
				out = append(out, own)
			}
			if !withGiven {
				return out
			}
			for _, p := range given[k] {
				dp := &metricspb.NumberDataPoint{StartTimeUnixNano: p.Start, TimeUnixNano: p.Time}
				if p.IsInt {
					dp.Value = &metricspb.NumberDataPoint_AsInt{AsInt: int64(p.Value)}
				} else {
					dp.Value = &metricspb.NumberDataPoint_AsDouble{AsDouble: math.Float64frombits(p.Value)}
				}
				out = append(out, dp)
			}
			return out
		}
		return &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
			Resource: res,
			ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{
				{Name: "g", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: pts(0)}}},
				{Name: "h", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA,
					DataPoints: []*metricspb.HistogramDataPoint{{TimeUnixNano: 4, Count: 2, BucketCounts: []uint64{1, 1}, ExplicitBounds: []float64{1}}}}}},
				{Name: "s", Unit: "By", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: true,
					AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, DataPoints: pts(2)}}},
			}}},
		}}}
	}
	whole, err := proto.Marshal(request(true))
	if err != nil {
		t.Fatal(err)
	}
	bare, err := proto.Marshal(request(false))
	if err != nil {
		t.Fatal(err)
	}
	mem := arrowpool.NewPoisoned()
	write := func(b *schemas.Batch) []byte {
		t.Helper()
		defer b.Release()
		var w bytes.Buffer
		if err := schemas.WriteBatch(&w, b); err != nil {
			t.Fatal(err)
		}
		return w.Bytes()
	}
	ref := schemas.NewBuilder(otlpwire.Metrics, mem)
	defer ref.Release()
	b := schemas.NewBuilder(otlpwire.Metrics, mem)
	defer b.Release()
	for round := range 2 { // the builder reused
		n, err := ref.Append(whole)
		if err != nil {
			t.Fatal(err)
		}
		m, err := b.AppendNumbers(bare, given)
		if err != nil || m != n || n != 7 {
			t.Fatalf("round %d: AppendNumbers: %d items (%v), Append of the whole request %d; want 7", round, m, err, n)
		}
		if w, g := write(ref.Build()), write(b.Build()); !bytes.Equal(w, g) {
			t.Fatalf("round %d: the batches differ", round)
		}
	}
	for name, pts := range map[string][][]schemas.NumberPoint{
		"too few lists":            given[:2],
		"too many lists":           append(given, nil),
		"points for the histogram": {nil, given[0], nil},
		"no lists for the metrics": {},
	} {
		if _, err := b.AppendNumbers(bare, pts); err == nil {
			t.Errorf("%s: no error", name)
		}
		if b.Len() != 0 {
			t.Errorf("%s: %d items kept after the error", name, b.Len())
		}
	}
	if _, err := schemas.NewBuilder(otlpwire.Logs, mem).AppendNumbers(bare, given); err == nil {
		t.Error("AppendNumbers on a logs builder: no error")
	}
	// The builder still works after the errors.
	if _, err := b.AppendNumbers(bare, given); err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Append(whole); err != nil {
		t.Fatal(err)
	}
	if w, g := write(ref.Build()), write(b.Build()); !bytes.Equal(w, g) {
		t.Fatal("after the errors: the batches differ")
	}
}
