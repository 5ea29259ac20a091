package schemas_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/schemas"
)

// BenchmarkReadBatchRules: reading the records the worker writes after
// the workload's rules (attribute sets repeat once debug_id is deleted),
// as a sink reads them: every item's attributes expanded (ReadBatch) or
// left as the table of distinct sets (ReadBatchSets, the remote-write
// sink).
func BenchmarkReadBatchRules(b *testing.B) {
	pool := arrowpool.New()
	cs := writeCases(b, pool, false)
	defer releaseCases(cs)
	for _, c := range cs {
		if !strings.HasSuffix(c.name, "+rules") {
			continue
		}
		var buf bytes.Buffer
		if err := schemas.WriteBatch(&buf, c.batch); err != nil {
			b.Fatal(err)
		}
		for _, r := range []struct {
			name string
			read func([]byte, memory.Allocator) (*schemas.Batch, error)
		}{{"expanded", schemas.ReadBatch}, {"by-set", schemas.ReadBatchSets}} {
			b.Run(c.name+"/"+r.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					rb, err := r.read(buf.Bytes(), pool)
					if err != nil {
						b.Fatal(err)
					}
					rb.Release()
				}
				n := float64(b.N) * float64(c.batch.Len())
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/n, "cpu-ns/item")
			})
		}
	}
}
