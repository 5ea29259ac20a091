package columnar

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

func corpora() []otlptest.Corpus { return otlptest.Corpora() }

// measure runs f b.N times and reports ns/item, items/s and allocs/item,
// and cpu-ns/item: the process's CPU time (user and system, the garbage
// collector's included) per item, which other processes on a shared
// machine inflate less than the elapsed time.
func measure(b *testing.B, items int, f func()) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		f()
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&m1)
	n := float64(b.N) * float64(items)
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/item")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/item")
	b.ReportMetric(n/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/item")
}

// cpuTime is the CPU time the process has used.
var cpuTime = testproc.CPU

type benchSet struct {
	name string
	set  *rules.Set
	c    otlptest.Corpus
}

// benchSets: the example rules on every corpus, and the Kubernetes
// workload's rules on its corpus.
func benchSets(b *testing.B) []benchSet {
	example, k8s := exampleSet(b), parse(b, otlptest.K8sRules)
	var out []benchSet
	for _, c := range corpora() {
		out = append(out, benchSet{c.Name, example, c})
		if c.Name == "metrics-k8s" {
			out = append(out, benchSet{c.Name + "/k8s-rules", k8s, c})
		}
	}
	return out
}

// BenchmarkRules is the rules step alone: Engine.Apply on a decoded batch,
// on the worker's allocator (arrowpool); for metrics also ApplyMarked with
// a reused dst, as the worker calls it when it merges marked points.
func BenchmarkRules(b *testing.B) {
	for _, bs := range benchSets(b) {
		set, c := bs.set, bs.c
		bench := func(b *testing.B, apply func(e *Engine, in *schemas.Batch) (*schemas.Batch, error)) {
			mem := arrowpool.New()
			bl := schemas.NewBuilder(c.Signal, mem)
			defer bl.Release()
			if _, err := bl.Append(c.Body); err != nil {
				b.Fatal(err)
			}
			in := bl.Build()
			defer in.Release()
			e := New(set, Options{Allocator: mem})
			measure(b, c.Items, func() {
				out, err := apply(e, in)
				if err != nil {
					b.Fatal(err)
				}
				if out != in {
					out.Release()
				}
			})
		}
		b.Run(bs.name, func(b *testing.B) {
			bench(b, func(e *Engine, in *schemas.Batch) (*schemas.Batch, error) { return e.Apply(in) })
		})
		if c.Signal != otlpwire.Metrics {
			continue
		}
		b.Run(bs.name+"/marked", func(b *testing.B) {
			var marked []Marked
			bench(b, func(e *Engine, in *schemas.Batch) (*schemas.Batch, error) {
				out, m, err := e.ApplyMarked(in, marked[:0])
				marked = m
				return out, err
			})
		})
	}
}

// BenchmarkChain is the worker's chain: decode OTLP to Arrow, apply the
// example rules, write the batch record, on the worker's allocator (arrowpool).
func BenchmarkChain(b *testing.B) {
	for _, bs := range benchSets(b) {
		set, c := bs.set, bs.c
		b.Run(bs.name, func(b *testing.B) {
			mem := arrowpool.New()
			bl := schemas.NewBuilder(c.Signal, mem)
			defer bl.Release()
			e := New(set, Options{Allocator: mem})
			var buf bytes.Buffer
			measure(b, c.Items, func() {
				if _, err := bl.Append(c.Body); err != nil {
					b.Fatal(err)
				}
				in := bl.Build()
				out, err := e.Apply(in)
				if err != nil {
					b.Fatal(err)
				}
				buf.Reset()
				if err := schemas.WriteBatch(&buf, out); err != nil {
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

// BenchmarkSteps times Apply's two steps apart on the Kubernetes workload:
// evaluate (the rules, through the memo) and build (the output batch from
// evaluate's outcome), on the worker's allocator (arrowpool).
func BenchmarkSteps(b *testing.B) {
	for _, bs := range benchSets(b) {
		if bs.name != "metrics-k8s/k8s-rules" {
			continue
		}
		mem := arrowpool.New()
		bl := schemas.NewBuilder(bs.c.Signal, mem)
		defer bl.Release()
		if _, err := bl.Append(bs.c.Body); err != nil {
			b.Fatal(err)
		}
		in := bl.Build()
		defer in.Release()
		e := New(bs.set, Options{Allocator: mem})
		st := newState(e)
		b.Run(bs.name+"/evaluate", func(b *testing.B) {
			measure(b, bs.c.Items, func() {
				st.begin(in, in.Signal, e.sigs[in.Signal])
				if err := st.evaluate(); err != nil {
					b.Fatal(err)
				}
				st.end()
			})
		})
		b.Run(bs.name+"/build", func(b *testing.B) {
			st.begin(in, in.Signal, e.sigs[in.Signal])
			defer st.end()
			if err := st.evaluate(); err != nil {
				b.Fatal(err)
			}
			measure(b, bs.c.Items, func() {
				out, err := st.build()
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			})
		})
	}
}
