package promrw

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/stream"
)

func deltaHistogram(name string, ts time.Time, counts []uint64, count uint64, sum float64) *metricspb.Metric {
	return &metricspb.Metric{Name: name, Unit: "s", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
		AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA,
		DataPoints: []*metricspb.HistogramDataPoint{{TimeUnixNano: uint64(ts.UnixNano()), StartTimeUnixNano: uint64(ts.Add(-10 * time.Second).UnixNano()),
			Count: count, Sum: &sum, BucketCounts: counts, ExplicitBounds: []float64{1, 5}}}}}}
}

// delta: convert writes running totals of delta sums and histograms to a
// real Prometheus; a Write that failed and is retried counts nothing twice.
func TestDeltaConvert(t *testing.T) {
	prom := backendtest.Prometheus(t)
	// A proxy that refuses the first request with 503, as a backend
	// restarting would, and passes the others to Prometheus.
	var calls atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(http.MethodPost, prom.WriteURL, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	s := newSink(t, Config{Config: httpSinkConfig(proxy.URL), Delta: deltaConvert, Concurrency: 1})
	res := []*commonpb.KeyValue{str("service.name", "billing")}
	t1 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	t2 := t1.Add(time.Minute)
	delta := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	first := record(t, otlpRequest(res, sum("jobs", "1", true, delta, t1, 5), deltaHistogram("latency", t1, []uint64{1, 2, 0}, 3, 6)), "")
	second := record(t, otlpRequest(res, sum("jobs", "1", true, delta, t2, 3), deltaHistogram("latency", t2, []uint64{0, 1, 1}, 2, 7)), "")
	ctx := context.Background()
	if err := s.Write(ctx, []*stream.Record{first}); err == nil {
		t.Fatal("the first request was refused, yet Write succeeded")
	}
	for _, rec := range []*stream.Record{first, second} { // the retry, then the next batch
		if err := s.Write(ctx, []*stream.Record{rec}); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]float64{
		`jobs_total{job="billing"}`:                       8,
		`latency_seconds_bucket{job="billing",le="1"}`:    1,
		`latency_seconds_bucket{job="billing",le="5"}`:    4,
		`latency_seconds_bucket{job="billing",le="+Inf"}`: 5,
		`latency_seconds_count{job="billing"}`:            5,
		`latency_seconds_sum{job="billing"}`:              13,
	} {
		r := query(t, prom.URL, q, t2)
		if len(r) != 1 || r[0].Value != want {
			t.Errorf("%s at the second point = %v, want %v", q, r, want)
		}
	}
	if r := query(t, prom.URL, `jobs_total{job="billing"}`, t1); len(r) != 1 || r[0].Value != 5 {
		t.Errorf("jobs_total at the first point = %v, want 5", r)
	}
}
