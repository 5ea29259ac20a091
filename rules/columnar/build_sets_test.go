package columnar

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-dev/sluice/internal/otlptest"
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
	t.Run("hashed", func(t *testing.T) { testAttrSetTable(t, 120) })
	// Every row's hash the same: the comparisons alone tell combos apart.
	defer func(m uint64) { comboHashMask = m }(comboHashMask)
	comboHashMask = 0
	t.Run("colliding", func(t *testing.T) { testAttrSetTable(t, 120) })
}

func testAttrSetTable(t *testing.T, n int) {
	if testing.Short() {
		n /= 4
	}
	tables := 0
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 5))
		// Random rules of the pools, one that deletes debug_id, an
		// attribute unique per item that the data has after its first
		// batch, and one that edits the attributes of one resource's
		// items only (equal attributes, other edits).
		sig := otlpwire.Signals[r.IntN(3)]
		yaml := ruleYAML(sig, r.Perm(len(rulePool[sig]))[:r.IntN(min(4, len(rulePool[sig])))]) +
			fmt.Sprintf("  - name: del\n    signal: %s\n    delete: ['attributes[\"debug_id\"]']\n", sig) +
			fmt.Sprintf("  - name: by-resource\n    signal: %s\n    when: resource[\"service.name\"] == \"svc-1\"\n    set:\n      attributes[\"tag\"]: '\"one\"'\n", sig)
		set := parse(t, yaml)
		if seed%4 == 0 {
			sig, set = otlpwire.Metrics, parse(t, otlptest.K8sRules)
		}
		mem := memory.NewCheckedAllocator(testPool)
		plain, bySet := New(set, Options{Allocator: mem}), New(set, Options{Allocator: mem, AttrSetTable: true})
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			for batch := range 4 {
				req := gen(sig, r)
				if seed%4 == 0 {
					req = genMetrics(r)
				}
				switch {
				case batch == 0:
				case r.IntN(2) == 0:
					dupAttrs(req, r, 1+r.IntN(8))
				default:
					seriesAttrs(req, r, 1+r.IntN(8))
				}
				if batch > 0 {
					uniqueIDs(req, r)
				}
				want := writeApplied(t, plain, mem, req, false, nil)
				// The input with its attribute sets half the time, as
				// the worker gives them.
				got := writeApplied(t, bySet, mem, req, batch%2 == 1, func(out *schemas.Batch) {
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
	t.Logf("%d outputs with a table of sets in %d batches", tables, 4*n)
	if tables < n/4 {
		t.Errorf("%d outputs with a table of sets in %d batches: the test misses the path", tables, 4*n)
	}
}

// writeApplied decodes req (with its attribute sets found, with sets),
// applies e and returns WriteBatch of the output, after look.
func writeApplied(t *testing.T, e *Engine, mem memory.Allocator, req proto.Message, sets bool, look func(*schemas.Batch)) []byte {
	t.Helper()
	out, _ := applyReq(t, e, mem, req, sets)
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

// uniqueIDs gives every item of req an attribute debug_id, at the same
// position in every item of the batch (or last, when the item has fewer
// attributes): one of its own, or, half the time, one per distinct
// attribute set (the same series met again in a later step).
func uniqueIDs(req proto.Message, r *rand.Rand) {
	pos, perSeries := r.IntN(4), r.IntN(2) == 0
	ids := map[string]string{}
	eachItemAttrs(req, func(l protoreflect.List) {
		id := fmt.Sprintf("%016x", r.Uint64())
		if perSeries {
			var key []byte
			for j := range l.Len() {
				b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(l.Get(j).Message().Interface())
				key = append(append(key, b...), 0)
			}
			if old, ok := ids[string(key)]; ok {
				id = old
			}
			ids[string(key)] = id
		}
		kv := str("debug_id", id)
		l.Append(protoreflect.ValueOfMessage(kv.ProtoReflect()))
		p := min(pos, l.Len()-1)
		for j := l.Len() - 1; j > p; j-- {
			l.Set(j, l.Get(j-1))
		}
		l.Set(p, protoreflect.ValueOfMessage(kv.ProtoReflect()))
	})
}

// seriesAttrs gives every item of req one of k attribute sets that have
// the same keys in the same order and values drawn anew (as the series of
// one metric): rows of one layout that differ in one value of any type.
func seriesAttrs(req proto.Message, r *rand.Rand, k int) {
	base := genAttrs(r)
	pool := make([][]*common.KeyValue, k)
	for i := range pool {
		for _, kv := range base {
			v := proto.Clone(kv.Value).(*common.AnyValue)
			switch x := v.Value.(type) {
			case *common.AnyValue_StringValue:
				x.StringValue = []string{"a", "b", "c", "12"}[r.IntN(4)]
			case *common.AnyValue_IntValue:
				x.IntValue = int64(r.IntN(3))
			case *common.AnyValue_BoolValue:
				x.BoolValue = r.IntN(2) == 0
			case *common.AnyValue_DoubleValue:
				x.DoubleValue = float64(r.IntN(3)) / 2
			case *common.AnyValue_BytesValue:
				x.BytesValue = []byte{byte(r.IntN(3))}
			}
			pool[i] = append(pool[i], &common.KeyValue{Key: kv.Key, Value: v})
		}
	}
	eachItemAttrs(req, func(l protoreflect.List) {
		l.Truncate(0)
		for _, kv := range pool[r.IntN(k)] {
			l.Append(protoreflect.ValueOfMessage(proto.Clone(kv).ProtoReflect()))
		}
	})
}
