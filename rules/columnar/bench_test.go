package columnar

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
)

// metricsCorpus: 10 resources x 100 metrics x 100 series, 6 attributes
// (the route has an id for tidy-routes, k8s.pod.name is renamed).
var metricsCorpus = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	req := &colmetrics.ExportMetricsServiceRequest{}
	for res := range 10 {
		sm := &metrics.ScopeMetrics{Scope: &common.InstrumentationScope{Name: "bench", Version: "1.0.0"}}
		for m := range 100 {
			var pts []*metrics.NumberDataPoint
			for p := range 100 {
				pts = append(pts, &metrics.NumberDataPoint{
					Attributes: []*common.KeyValue{str("route", fmt.Sprintf("/api/v1/items/%d", p)), str("method", []string{"GET", "POST", "PUT"}[p%3]),
						str("status", []string{"200", "404", "500"}[p%3]), str("region", "eu-west-1"), str("zone", "a"), str("k8s.pod.name", fmt.Sprintf("pod-%d", p%5))},
					StartTimeUnixNano: 1_700_000_000_000_000_000,
					TimeUnixNano:      1_700_000_060_000_000_000 + uint64(r.IntN(1000)),
					Value:             &metrics.NumberDataPoint_AsDouble{AsDouble: float64(r.IntN(100000)) / 10},
				})
			}
			sm.Metrics = append(sm.Metrics, &metrics.Metric{Name: fmt.Sprintf("http_server_requests_%d_total", m), Unit: "1",
				Data: &metrics.Metric_Sum{Sum: &metrics.Sum{DataPoints: pts, AggregationTemporality: 2, IsMonotonic: true}}})
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metrics.ResourceMetrics{
			Resource:     &resource.Resource{Attributes: []*common.KeyValue{str("service.name", fmt.Sprintf("svc-%d", res)), str("host.name", fmt.Sprintf("node-%d", res))}},
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

// measure runs f b.N times and reports items/s and allocs/item.
func measure(b *testing.B, items int, f func()) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	for b.Loop() {
		f()
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	n := float64(b.N) * float64(items)
	b.ReportMetric(n/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/item")
}

// BenchmarkRules is the rules step alone: Engine.Apply on a decoded batch.
func BenchmarkRules(b *testing.B) {
	set := exampleSet(b)
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			bl := schemas.NewBuilder(c.sig, memory.DefaultAllocator)
			defer bl.Release()
			if _, err := bl.Append(c.body); err != nil {
				b.Fatal(err)
			}
			in := bl.Build()
			defer in.Release()
			e := New(set, Options{})
			measure(b, c.items, func() {
				out, err := e.Apply(in)
				if err != nil {
					b.Fatal(err)
				}
				if out != in {
					out.Release()
				}
			})
		})
	}
}

// BenchmarkChain is the worker's chain: decode OTLP to Arrow, apply the
// example rules, write Arrow IPC.
func BenchmarkChain(b *testing.B) {
	set := exampleSet(b)
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			bl := schemas.NewBuilder(c.sig, memory.DefaultAllocator)
			defer bl.Release()
			e := New(set, Options{})
			var buf bytes.Buffer
			measure(b, c.items, func() {
				if _, err := bl.Append(c.body); err != nil {
					b.Fatal(err)
				}
				in := bl.Build()
				out, err := e.Apply(in)
				if err != nil {
					b.Fatal(err)
				}
				buf.Reset()
				if err := schemas.WriteIPC(&buf, out); err != nil {
					b.Fatal(err)
				}
				if out != in {
					out.Release()
				}
				in.Release()
			})
		})
	}
}
