package otlpwire_test

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/otlptest"
	. "github.com/sluice-dev/sluice/internal/otlpwire"
)

// BenchmarkSplitCheck: the ingester's split of the benchmark corpora, with
// and without the item check (Options.Check); ns/item and allocs per
// request.
func BenchmarkSplitCheck(b *testing.B) {
	for _, c := range otlptest.Corpora() {
		for _, check := range []bool{false, true} {
			name := c.Name + "/check=false"
			if check {
				name = c.Name + "/check=true"
			}
			b.Run(name, func(b *testing.B) {
				var sp Splitter
				opt := Options{Partitions: 8, Key: KeyResource, MaxRecordBytes: 1 << 20, Check: check}
				if c.Signal == Traces {
					opt.Key = KeyTraceID
				}
				b.SetBytes(int64(len(c.Body)))
				b.ReportAllocs()
				for b.Loop() {
					res, err := sp.Split(c.Signal, c.Body, opt)
					if err != nil || res.Items != c.Items {
						b.Fatalf("%v, %d items", err, res.Items)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(c.Items), "ns/item")
			})
		}
	}
}
