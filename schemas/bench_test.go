package schemas

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/stream"
)

func kvs(kv ...string) []*common.KeyValue {
	var out []*common.KeyValue
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &common.KeyValue{Key: kv[i], Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: kv[i+1]}}})
	}
	return out
}

// metricsCorpus: 10 resources x 100 metrics x 100 series with 6 attributes,
// random-walk values (so that compression does not see identical metrics).
var metricsCorpus = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	req := &colmetrics.ExportMetricsServiceRequest{}
	for res := range 10 {
		sm := &metrics.ScopeMetrics{Scope: &common.InstrumentationScope{Name: "bench", Version: "1.0.0"}}
		for m := range 100 {
			var pts []*metrics.NumberDataPoint
			for p := range 100 {
				pts = append(pts, &metrics.NumberDataPoint{
					Attributes: kvs("route", fmt.Sprintf("/api/v1/items/%d", p), "method", []string{"GET", "POST", "PUT"}[p%3],
						"status", []string{"200", "404", "500"}[p%3], "region", "eu-west-1", "zone", "a", "pod", fmt.Sprintf("pod-%d", p%5)),
					StartTimeUnixNano: 1_700_000_000_000_000_000,
					TimeUnixNano:      1_700_000_060_000_000_000 + uint64(r.IntN(1000)),
					Value:             &metrics.NumberDataPoint_AsDouble{AsDouble: float64(r.IntN(100000)) / 10},
				})
			}
			sm.Metrics = append(sm.Metrics, &metrics.Metric{Name: fmt.Sprintf("http_server_requests_%d_total", m), Unit: "1",
				Data: &metrics.Metric_Sum{Sum: &metrics.Sum{DataPoints: pts, AggregationTemporality: 2, IsMonotonic: true}}})
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metrics.ResourceMetrics{
			Resource:     &resource.Resource{Attributes: kvs("service.name", fmt.Sprintf("svc-%d", res), "host.name", fmt.Sprintf("node-%d", res), "k8s.namespace.name", "prod", "service.instance.id", fmt.Sprintf("inst-%d", res))},
			ScopeMetrics: []*metrics.ScopeMetrics{sm},
		})
	}
	b, _ := proto.Marshal(req)
	return b
})

type corpus struct {
	name  string
	sig   stream.Signal
	body  []byte
	items int
}

func corpora() []corpus {
	logs := otlptest.Shape{Resources: 10, Items: 1000}
	spans := otlptest.Shape{Resources: 10, Items: 1000}
	return []corpus{
		{"metrics", stream.Metrics, metricsCorpus(), 100_000},
		{"logs", stream.Logs, otlptest.Request(stream.Logs, logs), logs.ItemCount(stream.Logs)},
		{"traces", stream.Traces, otlptest.Request(stream.Traces, spans), spans.ItemCount(stream.Traces)},
	}
}

func report(b *testing.B, items int) {
	n := float64(b.N) * float64(items)
	b.ReportMetric(n/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			bld := NewBuilder(c.sig, memory.NewGoAllocator())
			defer bld.Release()
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := bld.Append(c.body); err != nil {
					b.Fatal(err)
				}
				bld.Build().Release()
			}
			report(b, c.items)
		})
	}
}

func BenchmarkToOTLP(b *testing.B) {
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			bld := NewBuilder(c.sig, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var dst []byte
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = ToOTLP(batch, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
			report(b, c.items)
		})
	}
}

// BenchmarkIPCSize reports the processed-topic value size (Arrow IPC, zstd)
// against the raw OTLP protobuf compressed with zstd, per item.
func BenchmarkIPCSize(b *testing.B) {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			bld := NewBuilder(c.sig, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := WriteIPC(&buf, batch); err != nil {
					b.Fatal(err)
				}
			}
			report(b, c.items)
			z := enc.EncodeAll(c.body, nil)
			b.ReportMetric(float64(len(c.body))/float64(c.items), "otlp-B/item")
			b.ReportMetric(float64(len(z))/float64(c.items), "otlp-zstd-B/item")
			b.ReportMetric(float64(buf.Len())/float64(c.items), "ipc-zstd-B/item")
			b.ReportMetric(float64(len(z))/float64(buf.Len()), "ratio")
		})
	}
}
