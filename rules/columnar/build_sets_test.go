package columnar

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// TestAttrSetTable: an engine with Options.AttrSetTable gives batches that
// WriteBatch writes byte for byte as the engine without it, over random
// rule sets and data whose attribute sets repeat (so that the output takes
// the table more often than not), every signal, batch after batch on one
// engine; and the table's rows are distinct sets numbered in order of
// first appearance.
func TestAttrSetTable(t *testing.T) {
	n := 120
	if testing.Short() {
		n = 30
	}
	tables := 0
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 5))
		sig, set := randomRules(t, r)
		if seed%4 == 0 {
			sig, set = otlpwire.Metrics, parse(t, k8sRules)
		}
		mem := memory.NewCheckedAllocator(testPool)
		plain, bySet := New(set, Options{Allocator: mem}), New(set, Options{Allocator: mem, AttrSetTable: true})
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			for batch := range 4 {
				req := gen(sig, r)
				if seed%4 == 0 {
					req = genMetrics(r)
				}
				if batch > 0 {
					dupAttrs(req, r, 1+r.IntN(4))
				}
				want := writeApplied(t, plain, mem, req, nil)
				got := writeApplied(t, bySet, mem, req, func(out *schemas.Batch) {
					if out.ItemAttrSetTable == nil {
						return
					}
					tables++
					checkSetTable(t, out)
				})
				if !bytes.Equal(got, want) {
					t.Fatalf("batch %d: %d bytes written from the table of sets, %d from the column", batch, len(got), len(want))
				}
			}
		})
		mem.AssertSize(t, 0)
	}
	if tables < n/4 {
		t.Errorf("%d outputs with a table of sets in %d cases: the test misses the path", tables, 4*n)
	}
}

// writeApplied decodes req, applies e and returns WriteBatch of the
// output, after look.
func writeApplied(t *testing.T, e *Engine, mem memory.Allocator, req proto.Message, look func(*schemas.Batch)) []byte {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	bl := schemas.NewBuilder(sigOf(req), mem)
	defer bl.Release()
	if _, err := bl.Append(body); err != nil {
		t.Fatal(err)
	}
	in := bl.Build()
	out, err := e.Apply(in)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		in.Release()
	}
	defer out.Release()
	if look != nil {
		look(out)
	}
	var buf bytes.Buffer
	if err := schemas.WriteBatch(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkSetTable checks that out's table has distinct rows, numbered in
// order of first appearance, at most half as many as items.
func checkSetTable(t *testing.T, out *schemas.Batch) {
	t.Helper()
	tab := out.ItemAttrSetTable
	if len(out.ItemAttrSets) != out.Len() || 2*tab.Len() > out.Len() {
		t.Fatalf("%d sets for %d items in a table of %d", len(out.ItemAttrSets), out.Len(), tab.Len())
	}
	next := uint32(0)
	for _, s := range out.ItemAttrSets {
		if s > next {
			t.Fatalf("set %d before set %d", s, next)
		}
		if s == next {
			next++
		}
	}
	if int(next) != tab.Len() {
		t.Fatalf("%d sets used of a table of %d", next, tab.Len())
	}
	ids := make([]uint32, tab.Len())
	if reps := schemas.AttrSets(tab.(*array.Map), ids, nil); len(reps) != tab.Len() {
		t.Fatalf("the table of %d sets has %d distinct rows", tab.Len(), len(reps))
	}
	if _, err := schemas.ToOTLP(out, nil); err == nil {
		t.Fatal("ToOTLP took a batch holding its attributes by set")
	}
}
