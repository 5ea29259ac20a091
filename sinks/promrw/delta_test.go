package promrw

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/sinks"
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

// tenantRW is a remote write endpoint that keeps the samples it accepted
// by the tenant header of their request.
type tenantRW struct {
	t  *testing.T
	mu sync.Mutex
	by map[string][]rwSample
}

func (f *tenantRW) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, err := s2.Decode(nil, body)
	if err != nil {
		http.Error(w, "bad snappy", http.StatusBadRequest)
		return
	}
	got, _ := decodeWrite(f.t, raw)
	f.mu.Lock()
	defer f.mu.Unlock()
	tenant := r.Header.Get("X-Scope-OrgID")
	f.by[tenant] = append(f.by[tenant], got...)
}

// values returns the values tenant got for the series whose labels
// contain name, in order.
func (f *tenantRW) values(tenant, name string) []float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []float64
	for _, s := range f.by[tenant] {
		if strings.Contains(s.series, "__name__="+name+",") {
			out = append(out, s.value)
		}
	}
	return out
}

// Two tenants sending the same series through delta: convert each get
// their own running total: the backend keeps them apart, so must the sink.
func TestDeltaConvertTenantsApart(t *testing.T) {
	rw := &tenantRW{t: t, by: map[string][]rwSample{}}
	srv := httptest.NewServer(rw)
	defer srv.Close()
	s := newSink(t, Config{Config: httpSinkConfig(srv.URL), Delta: deltaConvert, Concurrency: 1})
	res := []*commonpb.KeyValue{str("service.name", "billing")}
	t1 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	t2 := t1.Add(time.Minute)
	delta := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	ctx := context.Background()
	for _, recs := range [][]*stream.Record{
		{record(t, otlpRequest(res, sum("jobs", "1", true, delta, t1, 5)), "a"), record(t, otlpRequest(res, sum("jobs", "1", true, delta, t1, 7)), "b")},
		{record(t, otlpRequest(res, sum("jobs", "1", true, delta, t2, 1)), "a"), record(t, otlpRequest(res, sum("jobs", "1", true, delta, t2, 2)), "b")},
	} {
		if err := s.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	for tenant, want := range map[string][]float64{"a": {5, 6}, "b": {7, 9}} {
		if got := rw.values(tenant, "jobs_total"); !slices.Equal(got, want) {
			t.Errorf("tenant %s: jobs_total %v, want %v", tenant, got, want)
		}
	}
}

// The series cap of delta: convert is per tenant: a tenant at its cap
// loses only its own new series; another tenant's series, new or not, go
// through.
func TestDeltaConvertCapPerTenant(t *testing.T) {
	rw := &tenantRW{t: t, by: map[string][]rwSample{}}
	srv := httptest.NewServer(rw)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	s, err := New("prom", Config{Config: httpSinkConfig(srv.URL), Delta: deltaConvert, Concurrency: 1}, sinks.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const limit = 3
	s.tr.delta.maxSeries = limit
	res := []*commonpb.KeyValue{str("service.name", "billing")}
	ts := time.Now().Add(-time.Minute).Truncate(time.Second)
	delta := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	series := func(tenant string, first, n int) *stream.Record {
		var ms []*metricspb.Metric
		for i := range n {
			ms = append(ms, sum("jobs", "1", true, delta, ts, 1, intAttr("worker", int64(first+i))))
		}
		return record(t, otlpRequest(res, ms...), tenant)
	}
	// The noisy tenant fills its cap and goes past it; the quiet one
	// comes after, with as many series as the cap, of other labels.
	if err := s.Write(context.Background(), []*stream.Record{series("noisy", 0, 2*limit), series("quiet", 100, limit)}); err != nil {
		t.Fatal(err)
	}
	if got := len(rw.values("noisy", "jobs_total")); got != limit {
		t.Errorf("noisy tenant: %d series written, want its cap %d", got, limit)
	}
	if got := len(rw.values("quiet", "jobs_total")); got != limit {
		t.Errorf("quiet tenant: %d series written, want all %d", got, limit)
	}
	if got := testutil.ToFloat64(s.m.dropped.WithLabelValues("prom", "delta_series_limit")); got != limit {
		t.Errorf("delta_series_limit drops = %v, want %d (the noisy tenant's series past its cap)", got, limit)
	}
}
