package cardinality

import (
	"fmt"
	"runtime"
	"testing"

	common "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

const (
	benchResources = 10
	benchMetrics   = 50
	benchSeries    = 200 // per metric and resource
)

// benchCorpus is a realistic metrics batch: 10 resources (5 attributes:
// service, instance, pod, namespace, host) × 50 metrics × 200 points with 6
// attributes, one of them (series.id) unique per series; gen changes it, so
// that batches of different gens have different series.
func benchCorpus(gen int) *req {
	q := &req{}
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	codes := []string{"200", "201", "404", "500", "503"}
	for r := range benchResources {
		res := kvs("service.name", fmt.Sprintf("svc-%d", r%4), "service.instance.id", fmt.Sprintf("inst-%d", r),
			"k8s.pod.name", fmt.Sprintf("svc-%d-7d9f8b-%05d", r%4, r), "k8s.namespace.name", "prod", "host.name", fmt.Sprintf("node-%d", r%3))
		for m := range benchMetrics {
			var pts [][]*common.KeyValue
			for p := range benchSeries {
				pts = append(pts, kvs("http.route", fmt.Sprintf("/api/v1/items/%d", p%25), "http.method", methods[p%4],
					"http.status_code", codes[p%5], "region", "eu-west-1", "zone", []string{"a", "b", "c"}[p%3],
					"series.id", fmt.Sprintf("%d-%d", gen, p)))
			}
			q.add(res, fmt.Sprintf("http_server_requests_%d_total", m), pts...)
		}
	}
	return q
}

func benchBatch(b *testing.B, q *req) *schemas.Batch {
	bld := schemas.NewBuilder(otlpwire.Metrics, arrowpool.New())
	defer bld.Release()
	if _, err := bld.Append(q.body(b)); err != nil {
		b.Fatal(err)
	}
	return bld.Build()
}

// BenchmarkObserve: "steady" observes the same series again and again (the
// usual case: every scrape or export repeats them); "churn" cycles through 8
// batches of different series, so the sketches grow (and go dense).
func BenchmarkObserve(b *testing.B) {
	for _, c := range []struct {
		name string
		gens int
	}{{"steady", 1}, {"churn", 8}} {
		b.Run(c.name, func(b *testing.B) {
			var batches []*schemas.Batch
			for g := range c.gens {
				batches = append(batches, benchBatch(b, benchCorpus(g)))
			}
			defer func() {
				for _, bt := range batches {
					bt.Release()
				}
			}()
			tr := New(Config{})
			for _, bt := range batches { // warm up: metrics and labels exist
				if err := tr.Observe("acme", Before, bt, t0); err != nil {
					b.Fatal(err)
				}
			}
			points := batches[0].Len()
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if err := tr.Observe("acme", Before, batches[i%len(batches)], t0); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)*float64(points)/b.Elapsed().Seconds(), "points/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkMemory reports the memory a tracker holds per tracked metric
// after one batch of the corpus (2,000 series and 11 labels per metric) and
// after eight (16,000 series): B/metric counts the sketches and names,
// heap-B/metric is the growth of the Go heap.
func BenchmarkMemory(b *testing.B) {
	for _, gens := range []int{1, 8} {
		b.Run(fmt.Sprintf("series=%d", gens*benchResources*benchSeries), func(b *testing.B) {
			var batches []*schemas.Batch
			for g := range gens {
				batches = append(batches, benchBatch(b, benchCorpus(g)))
			}
			defer func() {
				for _, bt := range batches {
					bt.Release()
				}
			}()
			var held, heap float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tr := New(Config{})
				for _, bt := range batches {
					if err := tr.Observe("acme", Before, bt, t0); err != nil {
						b.Fatal(err)
					}
				}
				s := &tr.tenants["acme"].stages[Before]
				s.scratch = scratch{}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / benchMetrics
				held = 0
				for _, m := range s.cur.metrics {
					held += float64(m.bytes())
				}
				held /= float64(len(s.cur.metrics))
				runtime.KeepAlive(tr)
			}
			b.ReportMetric(held, "B/metric")
			b.ReportMetric(heap, "heap-B/metric")
		})
	}
}
