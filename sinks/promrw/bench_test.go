package promrw

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
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
		col.finish(false)
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

// corpusRecord is corpus c of internal/otlptest as a processed record; with
// drop set, the point attributes of that key are removed first (what the
// issue's rules do to debug_id).
func corpusRecord(b testing.TB, c otlptest.Corpus, drop string) *stream.Record {
	body := c.Body
	if drop != "" {
		var err error
		if body, err = otlptest.WithoutPointAttr(body, drop); err != nil {
			b.Fatal(err)
		}
	}
	req := &colmetricspb.ExportMetricsServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		b.Fatal(err)
	}
	return record(b, req, "")
}

type benchCorpus struct {
	name  string
	rec   *stream.Record
	items int
}

func benchCorpora(b *testing.B) []benchCorpus {
	var out []benchCorpus
	for _, c := range otlptest.Corpora() {
		if c.Signal != otlpwire.Metrics {
			continue
		}
		out = append(out, benchCorpus{c.Name, corpusRecord(b, c, ""), c.Items})
		if c.Name == "metrics-k8s" {
			out = append(out, benchCorpus{c.Name + "-no-debug-id", corpusRecord(b, c, "debug_id"), c.Items})
		}
	}
	return out
}

// BenchmarkEncodeCorpus: the corpora of internal/otlptest (a processed
// record, read once), Arrow batch → remote write requests, snappy
// compressed; the same series every iteration, as a sink sees them interval
// after interval. One sub-benchmark per protocol: v1 (WriteRequest) and v2
// (Request: symbols, start times, metadata).
func BenchmarkEncodeCorpus(b *testing.B) {
	for _, c := range benchCorpora(b) {
		for _, proto := range []string{protoV1, protoV2} {
			b.Run(c.name+"/"+proto, func(b *testing.B) {
				batch, err := schemas.ReadBatchSets(c.rec.Value, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer batch.Release()
				cfg := Config{Protocol: proto}
				cfg.defaults()
				col := &collector{maxSamples: cfg.MaxSamplesPerRequest, shards: cfg.Concurrency}
				tr := newTranslator(&cfg, col)
				var buf []byte
				var bytesOut, samples int
				var mem0, mem1 runtime.MemStats
				b.ReportAllocs()
				runtime.ReadMemStats(&mem0)
				cpu := processCPU()
				for b.Loop() {
					col.reset()
					col.tenant("")
					if err := tr.translate(batch, 0); err != nil {
						b.Fatal(err)
					}
					col.finish(proto == protoV2)
					bytesOut, samples = 0, 0
					for _, t := range col.tenants {
						for _, sh := range t.shards {
							for _, r := range sh {
								buf = s2.EncodeSnappy(buf[:cap(buf)], r.body)
								bytesOut += len(buf)
								samples += r.samples
							}
						}
					}
				}
				cpuUsed := processCPU() - cpu
				runtime.ReadMemStats(&mem1)
				reportPerSample(b, samples, cpuUsed)
				n := float64(samples) * float64(b.N)
				b.ReportMetric(float64(mem1.TotalAlloc-mem0.TotalAlloc)/n, "B/sample")
				b.ReportMetric(float64(mem1.Mallocs-mem0.Mallocs)/n, "allocs/sample")
				b.ReportMetric(float64(bytesOut)/float64(samples), "snappy-B/sample")
			})
		}
	}
}

// BenchmarkWrite: the sink's whole Write to a local HTTP endpoint that
// reads and discards the requests: ReadBatch (pooled Arrow buffers),
// translation, snappy, HTTP. x1: one processed record per Write (one point
// per series); x10: ten records of the same series per Write, as a sink
// draining a backlog gets them (interval after interval). cpu-ns/sample is
// the CPU time of the whole test process (the HTTP server's goroutines
// included) per sample: what the machine spent, whatever else it ran.
func BenchmarkWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	for _, c := range benchCorpora(b) {
		for _, copies := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/x%d", c.name, copies), func(b *testing.B) {
				s := newSink(b, Config{Config: httpSinkConfig(srv.URL)})
				var recs []*stream.Record
				for range copies {
					recs = append(recs, c.rec)
				}
				if err := s.Write(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
				samples := s.col.series
				b.ReportAllocs()
				b.ResetTimer()
				cpu := processCPU()
				for b.Loop() {
					clear(s.accepted) // every iteration sends again
					if err := s.Write(context.Background(), recs); err != nil {
						b.Fatal(err)
					}
				}
				reportPerSample(b, samples, processCPU()-cpu)
			})
		}
	}
}

// processCPU is the user and system CPU time of the process.
var processCPU = testproc.CPU

func reportPerSample(b *testing.B, samples int, cpu time.Duration) {
	n := float64(samples) * float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/sample")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/sample")
}
