package cardinality

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// TestObserveSets: a tracker given the batches' attribute sets
// (schemas.Batch.ItemAttrSets, hashed once per set) ends up exactly as one
// that hashes every point, over random batches whose sets repeat, at
// Before, After and Both, windows going by and bounds that bite; and one
// given a numbering that is not of the batch (a set number past the
// points) ignores it. So does one given the batches as a sink reads them,
// their attributes a table of sets (schemas.Batch.ItemAttrSetTable).
func TestObserveSets(t *testing.T) {
	withSets, withTable := 0, 0
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r, g, cfg := randomCase(seed, 13)
			plain, bySet, byTable := New(cfg), New(cfg), New(cfg)
			now := time.Unix(0, 0).Add(1000 * cfg.Window)
			for step := range 40 {
				tenant := fmt.Sprint("t", r.IntN(3))
				q := g.request(1+r.IntN(4), 1+r.IntN(600))
				b := g.batch(t, q)
				st := []Stage{Before, After, Both}[r.IntN(3)]
				if err := plain.Observe(tenant, st, b, now); err != nil {
					t.Fatal(err)
				}
				// The batch as a sink reads it, its attribute sets as a
				// table when they repeat (as the rules engine makes them).
				var rec bytes.Buffer
				if err := schemas.WriteBatch(&rec, b); err != nil {
					t.Fatal(err)
				}
				tb, err := schemas.ReadBatchSets(rec.Bytes(), memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				if tb.ItemAttrSetTable != nil {
					withTable++
				}
				if err := byTable.Observe(tenant, st, tb, now); err != nil {
					t.Fatal(err)
				}
				tb.Release()
				b.FindItemAttrSets(nil)
				if b.ItemAttrSets != nil {
					withSets++
					if step%7 == 3 { // not a numbering of this batch
						b.ItemAttrSets[0] = uint32(b.Len())
					}
				}
				if err := bySet.Observe(tenant, st, b, now); err != nil {
					t.Fatal(err)
				}
				b.Release()
				now = nextStep(t, r, cfg, step, now, plain, map[string]*Tracker{"by set": bySet, "by set table": byTable})
			}
		})
	}
	if withSets == 0 || withTable == 0 {
		t.Fatalf("%d batches had sets, %d a table of them: the test misses a path", withSets, withTable)
	}
}

// TestObserveKeptSets: a tracker given the decoder's sets kept from batch
// to batch (schemas.Batch.ItemSetIDs: hashes made once per set, a series
// seen in an earlier batch not looked up again) ends up exactly as one
// that hashes every point, over random batches of one decoder whose sets
// repeat from batch to batch, of tenants that share them, at Before, After
// and Both, windows going by and bounds that bite; and when the decoder
// starts another numbering (a failed request makes it forget its sets).
func TestObserveKeptSets(t *testing.T) {
	kept, repeated := 0, 0
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r, g, cfg := randomCase(seed, 17)
			g.usual = true
			plain, byKept := New(cfg), New(cfg)
			now := time.Unix(0, 0).Add(1000 * cfg.Window)
			bld := schemas.NewBuilder(otlpwire.Metrics, poisoner{})
			defer bld.Release()
			var qs [][]byte
			seen := map[[2]uint64]bool{}
			for step := range 60 {
				tenant := fmt.Sprint("t", r.IntN(3))
				var body []byte
				if len(qs) > 0 && r.IntN(3) > 0 {
					body = qs[r.IntN(len(qs))] // an earlier request again: its sets kept
				} else {
					var err error
					if body, err = proto.Marshal(g.request(1+r.IntN(4), 1+r.IntN(300))); err != nil {
						t.Fatal(err)
					}
					qs = append(qs, body)
				}
				if step%20 == 19 {
					// A failed request: the decoder forgets its sets.
					if _, err := bld.Append([]byte{0xff}); err == nil {
						t.Fatal("a malformed request decoded")
					}
				}
				if _, err := bld.Append(body); err != nil {
					t.Fatal(err)
				}
				b := bld.Build()
				ids, space := b.ItemSetIDs, b.SetSpace
				b.ItemAttrSets, b.ItemSetIDs = nil, nil
				st := []Stage{Before, After, Both}[r.IntN(3)]
				if err := plain.Observe(tenant, st, b, now); err != nil {
					t.Fatal(err)
				}
				if ids != nil {
					kept++
					for _, id := range ids {
						if seen[[2]uint64{space, uint64(id)}] {
							repeated++
						}
						seen[[2]uint64{space, uint64(id)}] = true
					}
				}
				b.ItemSetIDs, b.SetSpace = ids, space
				if err := byKept.Observe(tenant, st, b, now); err != nil {
					t.Fatal(err)
				}
				b.Release()
				now = nextStep(t, r, cfg, step, now, plain, map[string]*Tracker{"by kept set": byKept})
			}
		})
	}
	if kept < 50 || repeated < 5000 {
		t.Fatalf("%d batches had kept sets, %d points a set of an earlier batch: the test misses the path", kept, repeated)
	}
}

// nextStep ends step of a random case: every 10th step, each of others
// must report as plain does; it returns the time of the next step, now or
// later within a window.
func nextStep(t *testing.T, r *rand.Rand, cfg Config, step int, now time.Time, plain *Tracker, others map[string]*Tracker) time.Time {
	t.Helper()
	if step%10 == 9 {
		want := plain.Report("", 0, now)
		for name, tr := range others {
			if got := tr.Report("", 0, now); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: %s\n%+v\npoint by point\n%+v", step, name, got, want)
			}
		}
	}
	if r.IntN(4) == 0 {
		now = now.Add(time.Duration(r.IntN(int(cfg.Window))))
	}
	return now
}
