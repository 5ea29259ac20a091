package columnar

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/schemas"
)

func corpora() []otlptest.Corpus { return otlptest.Corpora() }

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

// BenchmarkRules is the rules step alone: Engine.Apply on a decoded batch,
// on the worker's allocator (arrowpool).
func BenchmarkRules(b *testing.B) {
	set := exampleSet(b)
	for _, c := range corpora() {
		b.Run(c.Name, func(b *testing.B) {
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
// example rules, write the batch record, on the worker's allocator (arrowpool).
func BenchmarkChain(b *testing.B) {
	set := exampleSet(b)
	for _, c := range corpora() {
		b.Run(c.Name, func(b *testing.B) {
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
