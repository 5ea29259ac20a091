package schemas_test

import (
	"bytes"
	"slices"
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
				cpu0 := schemas.CPUTime()
				for b.Loop() {
					rb, err := r.read(buf.Bytes(), pool)
					if err != nil {
						b.Fatal(err)
					}
					rb.Release()
				}
				n := float64(b.N) * float64(c.batch.Len())
				b.ReportMetric(float64((schemas.CPUTime()-cpu0).Nanoseconds())/n, "cpu-ns/item")
			})
		}
	}
}

// TestFindItemAttrSets: on the batches the worker writes (the corpora as
// decoded, after the workload's rules, read back) and random ones,
// FindItemAttrSets numbers the items' sets as the record stores them
// (ReadBatch gives the same numbers back), and WriteBatch writes the same
// bytes whether it is given the sets or finds them, or is given sets
// numbered otherwise (which it does not use).
func TestFindItemAttrSets(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cs := writeCases(t, mem, true)
	defer releaseCases(cs)
	found := 0
	for _, c := range cs {
		b := c.batch
		saved := b.ItemAttrSets
		b.ItemAttrSets = nil
		var want bytes.Buffer
		if err := schemas.WriteBatch(&want, b); err != nil {
			t.Fatal(err)
		}
		rb, err := schemas.ReadBatch(want.Bytes(), mem)
		if err != nil {
			t.Fatal(err)
		}
		b.FindItemAttrSets(nil)
		if !slices.Equal(b.ItemAttrSets, rb.ItemAttrSets) {
			t.Fatalf("%s: found %d sets %v, the record holds %v", c.name, len(b.ItemAttrSets), head(b.ItemAttrSets), head(rb.ItemAttrSets))
		}
		rb.Release()
		write := func(what string) {
			var got bytes.Buffer
			if err := schemas.WriteBatch(&got, b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("%s: WriteBatch with %s wrote other bytes", c.name, what)
			}
		}
		if sets := b.ItemAttrSets; sets != nil {
			found++
			write("the sets found")
			// numbered otherwise: the same sets, ids swapped
			other := slices.Clone(sets)
			for i, s := range other {
				switch s {
				case 0:
					other[i] = 1
				case 1:
					other[i] = 0
				}
			}
			b.ItemAttrSets = other
			write("sets numbered otherwise")
		}
		b.ItemAttrSets = saved
	}
	if found == 0 {
		t.Fatal("no batch had sets")
	}
}

func head(s []uint32) []uint32 { return s[:min(len(s), 8)] }
