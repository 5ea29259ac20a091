package promrw

import (
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/sluice-dev/sluice/schemas"
)

// benchBatch: 1 resource (service attributes + 3 others), 100 gauges and
// 100 cumulative counters x 50 series of 5 attributes: 10,000 samples.
func benchBatch(b *testing.B) (*schemas.Batch, int) {
	ts := time.Now()
	res := []*commonpb.KeyValue{str("service.name", "checkout"), str("service.namespace", "shop"), str("service.instance.id", "i-1"),
		str("host.name", "h1"), str("cloud.region", "eu-west-1"), str("k8s.pod.name", "checkout-5d9f")}
	req := otlpRequest(res)
	sm := req.ResourceMetrics[0].ScopeMetrics[0]
	for m := range 200 {
		for s := range 50 {
			attrs := []*commonpb.KeyValue{str("http.method", "GET"), str("http.route", fmt.Sprintf("/api/v%d", s)),
				intAttr("http.status_code", 200), str("net.peer.name", "db-1"), str("tier", "gold")}
			var mt *metricspb.Metric
			if m%2 == 0 {
				mt = gauge(fmt.Sprintf("app.metric.%d", m), "By", ts, float64(s)*1.5, attrs...)
			} else {
				mt = sum(fmt.Sprintf("app.counter.%d", m), "1", true, cumulative, ts, int64(s), attrs...)
			}
			sm.Metrics = append(sm.Metrics, mt)
		}
	}
	rec := record(b, req, "")
	batch, err := schemas.ReadBatch(rec.Value, nil)
	if err != nil {
		b.Fatal(err)
	}
	return batch, 200 * 50
}

// BenchmarkEncode: Arrow batch → remote write requests, snappy compressed.
func BenchmarkEncode(b *testing.B) {
	batch, n := benchBatch(b)
	defer batch.Release()
	cfg := Config{}
	cfg.defaults()
	col := &collector{maxSamples: cfg.MaxSamplesPerRequest, shards: cfg.Concurrency}
	tr := newTranslator(&cfg, col)
	var buf []byte
	var bytesOut, reqs int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		col.reset()
		col.tenant("")
		if err := tr.translate(batch, 0); err != nil {
			b.Fatal(err)
		}
		bytesOut, reqs = 0, 0
		for _, t := range col.tenants {
			for _, sh := range t.shards {
				for _, r := range sh {
					buf = s2.EncodeSnappy(buf[:cap(buf)], r.body)
					bytesOut += len(buf)
					reqs++
				}
			}
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(bytesOut)/float64(n), "snappy-bytes/sample")
	_ = reqs
}
