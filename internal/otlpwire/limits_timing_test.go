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

// BenchmarkCheckItem: the item check alone, over every item of each
// corpus (ns/item).
func BenchmarkCheckItem(b *testing.B) {
	for _, c := range otlptest.Corpora() {
		items, dataNums := corpusItems(b, c)
		b.Run(c.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for k, it := range items {
					if pr := CheckItem(c.Signal, dataNums[k], it); pr.Problem != ProblemNone {
						b.Fatalf("item %d: %v", k, pr.Problem)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(items)), "ns/item")
		})
	}
}

// corpusItems returns the items of c, without their tags and lengths, and
// for metrics the data field of each one's metric.
func corpusItems(b *testing.B, c otlptest.Corpus) ([][]byte, []FieldNum) {
	raw, err := RawItems(c.Signal, c.Body)
	if err != nil {
		b.Fatal(err)
	}
	items := make([][]byte, len(raw))
	dataNums := make([]FieldNum, len(raw))
	for k, parts := range raw {
		field := []byte(parts[len(parts)-1])
		f, code := ReadField(field, 0)
		if code != ReadOK {
			b.Fatalf("item %d: %v", k, code)
		}
		items[k] = field[f.Val:f.End]
		if c.Signal == Metrics {
			dataNums[k] = FieldNum([]rune(parts[2])[0])
		}
	}
	return items, dataNums
}
