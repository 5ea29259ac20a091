package cardinality

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	common "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/rules/columnar"
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

// distinctCorpus: 10 resources × 100 metrics × 100 series with 6 point
// attributes, one of them the metric's number: 10,000 distinct sets, each
// seen once per resource.
func distinctCorpus() *req {
	q := &req{}
	for r := range 10 {
		res := kvs("service.name", fmt.Sprintf("svc-%d", r), "host.name", fmt.Sprintf("node-%d", r),
			"k8s.namespace.name", "prod", "service.instance.id", fmt.Sprintf("inst-%d", r))
		for m := range 100 {
			var pts [][]*common.KeyValue
			for p := range 100 {
				pts = append(pts, kvs("route", fmt.Sprintf("/api/v1/items/%d", p), "method", []string{"GET", "POST", "PUT"}[p%3],
					"status", fmt.Sprint(m), "region", "eu-west-1", "zone", "a", "k8s.pod.name", fmt.Sprintf("pod-%d", p%5)))
			}
			q.add(res, fmt.Sprintf("http_server_requests_%d_total", m), pts...)
		}
	}
	return q
}

// benchBatch decodes body, with its attribute sets numbered when the
// decoder numbered them, as the worker has them (SLUICE_BENCH_NO_SETS=1
// leaves them out).
func benchBatch(b *testing.B, body []byte) *schemas.Batch {
	bld := schemas.NewBuilder(otlpwire.Metrics, arrowpool.New())
	defer bld.Release()
	if _, err := bld.Append(body); err != nil {
		b.Fatal(err)
	}
	out := bld.Build()
	if os.Getenv("SLUICE_BENCH_NO_SETS") != "" {
		out.ItemAttrSets, out.ItemSetIDs = nil, nil
	}
	return out
}

// BenchmarkObserve observes batches of 100,000 points (metrics-k8s: 10,000), one sub-benchmark
// per corpus, pattern and stage; run it with -cpu 1 for figures per core.
//
// Corpora: "metrics" is internal/otlptest's (10 resources × 100 metrics ×
// 100 series, 6 point attributes; 1,000 series a metric, so its series
// sketches stay exact); "k8s" is benchCorpus (5 resource attributes, one
// point attribute unique per series; 2,000 series a metric, so they go
// dense); "distinct" is like "metrics" but with the metric's number as an
// attribute, so that no attribute set repeats within a resource (the
// worst case for the table of sets); "metrics-k8s" is internal/otlptest's
// corpus of the end-to-end benchmark (100 pods × 100 gauge series of one
// metric, debug_id unique per series: one metric of 10,000 series, no
// attribute set repeating within a batch). Patterns: "steady" observes
// the same batch again and again (the usual case: every scrape or export
// repeats its series); "churn" cycles through 8 batches of different
// series, so the sketches grow. Stages:
// "before" is one Observe; "before+after" is Observe at Before then at
// After, as the worker does for a batch the rules changed; "both" is one
// Observe at Both, for a batch they left alone. points/s counts each point
// of the batch once, at one stage or two. "metrics-k8s/rules/before+after"
// is what the worker does with that corpus: Observe at Before on the
// batch, then at After on what the Kubernetes workload's rules made of it
// (otlptest.K8sRules: /health dropped, cluster set, debug_id deleted, so that its
// attribute sets repeat across pods), with the sets found as the worker
// finds them (schemas.Batch.FindItemAttrSets, or the decoder as it
// decodes the input; SLUICE_BENCH_NO_SETS=1 leaves them out).
func BenchmarkObserve(b *testing.B) {
	corpus := func(name string) []byte {
		for _, c := range otlptest.Corpora() {
			if c.Name == name {
				return c.Body
			}
		}
		b.Fatalf("no corpus %s", name)
		return nil
	}
	metricsBody := corpus("metrics")
	for _, c := range []struct {
		name   string
		bodies func() [][]byte
	}{
		{"metrics/steady", func() [][]byte { return [][]byte{metricsBody} }},
		{"k8s/steady", func() [][]byte { return [][]byte{benchCorpus(0).body(b)} }},
		{"distinct/steady", func() [][]byte { return [][]byte{distinctCorpus().body(b)} }},
		{"metrics-k8s/steady", func() [][]byte { return [][]byte{corpus("metrics-k8s")} }},
		{"k8s/churn", func() [][]byte {
			var out [][]byte
			for g := range 8 {
				out = append(out, benchCorpus(g).body(b))
			}
			return out
		}},
	} {
		var batches []*schemas.Batch
		for _, body := range c.bodies() {
			batches = append(batches, benchBatch(b, body))
		}
		for _, st := range []struct {
			name   string
			stages []Stage
		}{{"before", []Stage{Before}}, {"before+after", []Stage{Before, After}}, {"both", []Stage{Both}}} {
			b.Run(c.name+"/"+st.name, func(b *testing.B) {
				tr := New(Config{})
				observeAll := func(bt *schemas.Batch) {
					for _, s := range st.stages {
						if err := tr.Observe("acme", s, bt, t0); err != nil {
							b.Fatal(err)
						}
					}
				}
				for _, bt := range batches { // warm up: metrics and labels exist
					observeAll(bt)
				}
				i := 0
				perPoint(b, batches[0].Len(), func() {
					observeAll(batches[i%len(batches)])
					i++
				})
			})
		}
		for _, bt := range batches {
			bt.Release()
		}
	}
	b.Run("metrics-k8s/rules/before+after", func(b *testing.B) {
		in := benchBatch(b, corpus("metrics-k8s"))
		defer in.Release()
		set, err := rules.Parse(map[string][]byte{"k8s.yaml": []byte(otlptest.K8sRules)})
		if err != nil {
			b.Fatal(err)
		}
		out, err := columnar.New(set, columnar.Options{Allocator: arrowpool.New()}).Apply(in)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Release()
		if os.Getenv("SLUICE_BENCH_NO_SETS") == "" {
			out.FindItemAttrSets(nil) // as the worker does
		}
		tr := New(Config{})
		observeAll := func() {
			if err := tr.Observe("acme", Before, in, t0); err != nil {
				b.Fatal(err)
			}
			if err := tr.Observe("acme", After, out, t0); err != nil {
				b.Fatal(err)
			}
		}
		observeAll()
		perPoint(b, in.Len(), observeAll)
	})
}

// perPoint runs f b.N times and reports points/s and cpu-ns/point: the
// process's CPU time (user and system) per point, which other processes
// on a shared machine inflate less than the elapsed time.
func perPoint(b *testing.B, points int, f func()) {
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		f()
	}
	cpu := cpuTime() - cpu0
	n := float64(b.N) * float64(points)
	b.ReportMetric(n/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/point")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the CPU time the process has used.
var cpuTime = testproc.CPU

// BenchmarkMemory reports the memory a tracker holds per tracked metric
// after one batch of the corpus (2,000 series and 11 labels per metric) and
// after eight (16,000 series): B/metric counts the sketches and names,
// heap-B/metric is the growth of the Go heap.
func BenchmarkMemory(b *testing.B) {
	for _, gens := range []int{1, 8} {
		b.Run(fmt.Sprintf("series=%d", gens*benchResources*benchSeries), func(b *testing.B) {
			var batches []*schemas.Batch
			for g := range gens {
				batches = append(batches, benchBatch(b, benchCorpus(g).body(b)))
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
				tr.scratches = nil
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
