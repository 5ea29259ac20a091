package promrw

import (
	"context"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/stream"
)

const cumulative = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE

// everyType is one record with a data point of every metric type.
func everyType(t testing.TB, ts time.Time, tenant string) *stream.Record {
	t.Helper()
	tn := uint64(ts.UnixNano())
	res := []*commonpb.KeyValue{str("service.name", "checkout"), str("service.namespace", "shop"), str("service.instance.id", "i-1"),
		str("deployment.environment", "prod"), str("host.name", "h1")}
	hist := &metricspb.Metric{Name: "http.server.duration", Unit: "s", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
		AggregationTemporality: cumulative,
		DataPoints: []*metricspb.HistogramDataPoint{{TimeUnixNano: tn, Attributes: []*commonpb.KeyValue{str("http.route", "/pay")},
			Count: 6, Sum: new(3.5), BucketCounts: []uint64{1, 2, 3}, ExplicitBounds: []float64{0.1, 0.5}}}}}}
	exp := &metricspb.Metric{Name: "rpc.latency", Unit: "ms", Data: &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{
		AggregationTemporality: cumulative,
		DataPoints: []*metricspb.ExponentialHistogramDataPoint{{TimeUnixNano: tn, Count: 4, Sum: new(10.0), Scale: 0, ZeroCount: 1,
			Positive: &metricspb.ExponentialHistogramDataPoint_Buckets{Offset: 0, BucketCounts: []uint64{1, 2}}}}}}}
	summary := &metricspb.Metric{Name: "rpc.size", Unit: "By", Data: &metricspb.Metric_Summary{Summary: &metricspb.Summary{
		DataPoints: []*metricspb.SummaryDataPoint{{TimeUnixNano: tn, Count: 5, Sum: 100,
			QuantileValues: []*metricspb.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: 10}, {Quantile: 0.99, Value: 50}}}}}}}
	req := otlpRequest(res,
		gauge("process.memory.usage", "By", ts, 1234.5, str("memory.type", "heap")),
		sum("requests", "1", true, cumulative, ts, 42, str("http.method", "GET"), intAttr("2xx", 1)),
		sum("queue.size", "{item}", false, cumulative, ts, 7),
		sum("deltas", "1", true, metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA, ts, 3),
		hist, exp, summary,
	)
	return record(t, req, tenant)
}

type want struct {
	query  string
	labels map[string]string
	value  float64
}

func checkBackend(t *testing.T, base string, flush func(), ts time.Time, native bool) {
	t.Helper()
	common := map[string]string{"job": "shop/checkout", "instance": "i-1", "deployment_environment": "prod",
		"otel_scope_name": "io.sluice.test", "otel_scope_version": "1.2"}
	wants := []want{
		{`process_memory_usage_bytes`, map[string]string{"memory_type": "heap"}, 1234.5},
		{`requests_total`, map[string]string{"http_method": "GET", "key_2xx": "1"}, 42},
		{`queue_size`, nil, 7},
		{`http_server_duration_seconds_bucket{le="0.1"}`, map[string]string{"http_route": "/pay"}, 1},
		{`http_server_duration_seconds_bucket{le="0.5"}`, nil, 3},
		{`http_server_duration_seconds_bucket{le="+Inf"}`, nil, 6},
		{`http_server_duration_seconds_sum`, nil, 3.5},
		{`http_server_duration_seconds_count`, nil, 6},
		{`rpc_size_bytes{quantile="0.5"}`, nil, 10},
		{`rpc_size_bytes{quantile="0.99"}`, nil, 50},
		{`rpc_size_bytes_sum`, nil, 100},
		{`rpc_size_bytes_count`, nil, 5},
	}
	if native {
		wants = append(wants, want{`histogram_count(rpc_latency_milliseconds)`, nil, 4}, want{`histogram_sum(rpc_latency_milliseconds)`, nil, 10})
	} else {
		wants = append(wants,
			want{`rpc_latency_milliseconds_bucket{le="0"}`, nil, 1}, want{`rpc_latency_milliseconds_bucket{le="2"}`, nil, 2},
			want{`rpc_latency_milliseconds_bucket{le="4"}`, nil, 4}, want{`rpc_latency_milliseconds_bucket{le="+Inf"}`, nil, 4},
			want{`rpc_latency_milliseconds_count`, nil, 4}, want{`rpc_latency_milliseconds_sum`, nil, 10})
	}
	flush()
	for _, w := range wants {
		res := query(t, base, w.query, ts)
		if len(res) != 1 {
			t.Errorf("%s: %d series, want 1: %v", w.query, len(res), res)
			continue
		}
		if v := res[0].Value; v != w.value {
			t.Errorf("%s = %v, want %v", w.query, v, w.value)
		}
		if w.query[0] == 'h' && w.query[1] == 'i' { // histogram_*() drops the labels
			continue
		}
		for k, v := range common {
			if res[0].Metric[k] != v {
				t.Errorf("%s: label %s=%q, want %q (%v)", w.query, k, res[0].Metric[k], v, res[0].Metric)
			}
		}
		for k, v := range w.labels {
			if res[0].Metric[k] != v {
				t.Errorf("%s: label %s=%q, want %q (%v)", w.query, k, res[0].Metric[k], v, res[0].Metric)
			}
		}
	}
	ti := query(t, base, `target_info`, ts)
	if len(ti) != 1 || ti[0].Value != 1 {
		t.Fatalf("target_info: %v", ti)
	}
	for k, v := range map[string]string{"job": "shop/checkout", "instance": "i-1", "host_name": "h1", "deployment_environment": "prod"} {
		if ti[0].Metric[k] != v {
			t.Errorf("target_info label %s=%q, want %q (%v)", k, ti[0].Metric[k], v, ti[0].Metric)
		}
	}
	if _, ok := ti[0].Metric["service_name"]; ok {
		t.Errorf("target_info has service_name: %v", ti[0].Metric)
	}
	if res := query(t, base, `{__name__=~"deltas.*"}`, ts); len(res) != 0 {
		t.Errorf("delta sum was written: %v", res)
	}
}

func TestPrometheus(t *testing.T) {
	be := backendtest.Prometheus(t)
	s := newSink(t, Config{Config: httpSinkConfig(be.WriteURL), PromoteResourceAttributes: []string{"deployment.environment"}})
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.Write(context.Background(), []*stream.Record{everyType(t, ts, "team-a")}); err != nil {
		t.Fatal(err)
	}
	checkBackend(t, be.URL, func() {}, ts, true)
	// Sending the same batch again (a stage retry) is accepted.
	if err := s.Write(context.Background(), []*stream.Record{everyType(t, ts, "team-a")}); err != nil {
		t.Fatalf("repeated batch: %v", err)
	}
}

func TestVictoriaMetrics(t *testing.T) {
	be := backendtest.VictoriaMetrics(t)
	s := newSink(t, Config{Config: httpSinkConfig(be.WriteURL), PromoteResourceAttributes: []string{"deployment.environment"},
		ExponentialHistograms: expBuckets})
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.Write(context.Background(), []*stream.Record{everyType(t, ts, "")}); err != nil {
		t.Fatal(err)
	}
	checkBackend(t, be.URL, func() { be.Flush(t) }, ts, false)
}
