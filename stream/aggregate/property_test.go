package aggregate

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/schemas"
)

// op is one batch of points of one metric kind and spec; flush ends a round.
type op struct {
	m     M
	spec  Spec
	pts   []P
	flush bool
	wall  time.Time
}

// genOps makes a random sequence: several inputs per output of each kind,
// times mostly increasing with jitter (out of order, late, duplicates),
// counters with resets, flushes in between.
func genOps(seed uint64) []op {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	kinds := []M{mCum, mDelta, mGauge, mUpDown, mHist, mExp}
	specs := []Spec{
		{Rule: "a", Interval: 10 * time.Second, Grace: 5 * time.Second, Gauge: GaugeSum},
		{Rule: "b", Interval: 30 * time.Second, Gauge: GaugeLast, Limit: 3},
	}
	counter := map[[2]uint64]float64{}
	var ops []op
	now := 10.0
	wall := time.Unix(100000, 0)
	for round := range 30 {
		for range 1 + rng.IntN(4) {
			ki := rng.IntN(len(kinds))
			o := op{m: kinds[ki], spec: specs[rng.IntN(len(specs))], wall: wall}
			for range 1 + rng.IntN(30) {
				out := uint64(ki*10 + 1 + rng.IntN(5))
				in := uint64(100 + rng.IntN(6))
				key := [2]uint64{in, out}
				t := now + rng.Float64()*8 - 6
				if t < 0.5 {
					t = 0.5
				}
				if rng.IntN(10) == 0 {
					counter[key] = 0 // reset
				}
				counter[key] += float64(rng.IntN(10))
				v := counter[key]
				p := P{In: in, Out: out, T: t, Start: 0.25, V: v, Int: rng.IntN(3) > 0, Attrs: []string{"o", string(rune('a' + out%26))}}
				if o.m.Mono && o.m.Temp == mDelta.Temp {
					p.V = float64(rng.IntN(5))
				}
				c := uint64(v)
				p.Hist = hist(c, v, []uint64{c / 2, c - c/2}, []float64{5})
				p.Exp = expPoint([]float64{1 + v, 2, 0}, int32(rng.IntN(3)))
				o.pts = append(o.pts, p)
				now += rng.Float64() * 2
			}
			ops = append(ops, o)
		}
		ops[len(ops)-1].flush = true
		if round%7 == 6 {
			wall = wall.Add(time.Minute) // idle: the watermark follows the wall clock
		}
	}
	return ops
}

type runOpts struct {
	split    func(n int) []int // batch sizes of an op's points
	snapshot int               // restore from a snapshot before op i (-1: never)
}

func runOps(t *testing.T, ops []op, o runOpts) ([]R, map[string]RuleStats) {
	t.Helper()
	a := New(Config{Stale: 2 * time.Minute})
	var got []R
	for i, op := range ops {
		if i == o.snapshot {
			var buf bytes.Buffer
			if err := a.Snapshot(&buf); err != nil {
				t.Fatal(err)
			}
			r, err := Restore(&buf, Config{Stale: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			// StateBytes estimates capacities, which a restore trims
			ignore := cmpopts.IgnoreFields(RuleStats{}, "StateBytes")
			if diff := cmp.Diff(a.Stats(), r.Stats(), ignore); diff != "" {
				t.Fatalf("stats differ after restore:\n%s", diff)
			}
			a = r
		}
		pts := op.pts
		for _, n := range o.split(len(pts)) {
			b, in, out := batchOf(t, op.m, pts[:n])
			if err := a.Add("t", b, in, out, op.spec, op.wall); err != nil {
				t.Fatal(err)
			}
			b.Release()
			pts = pts[n:]
		}
		if op.flush {
			outs, err := a.Flush(op.wall, false)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, decode(t, outs)...)
		}
	}
	outs, err := a.Flush(time.Unix(0, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	return append(got, decode(t, outs)...), a.Stats()
}

func TestBatchSplitAndSnapshotInvariance(t *testing.T) {
	whole := func(n int) []int { return []int{n} }
	seeds := uint64(4)
	if testing.Short() {
		seeds = 1
	}
	for seed := range seeds {
		ops := genOps(seed)
		base, st := runOps(t, ops, runOpts{split: whole, snapshot: -1})
		if len(base) < 20 {
			t.Fatalf("seed %d: only %d output points", seed, len(base))
		}
		// the sequence must exercise what could differ
		if a, b := st["a"], st["b"]; a.PointsLate+b.PointsLate == 0 || a.PointsOutOfOrder+b.PointsOutOfOrder == 0 || b.SeriesFolded == 0 {
			t.Fatalf("seed %d: sequence too tame: %+v", seed, st)
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		ones := func(n int) []int {
			s := make([]int, n)
			for i := range s {
				s[i] = 1
			}
			return s
		}
		random := func(n int) []int {
			var s []int
			for n > 0 {
				k := 1 + rng.IntN(n)
				s = append(s, k)
				n -= k
			}
			return s
		}
		for name, o := range map[string]runOpts{
			"one point per batch": {split: ones, snapshot: -1},
			"random batches":      {split: random, snapshot: -1},
		} {
			got, _ := runOps(t, ops, o)
			if diff := cmp.Diff(base, got, protocmp.Transform()); diff != "" {
				t.Fatalf("seed %d, %s: outputs differ (-whole +split):\n%s", seed, name, diff)
			}
		}
		for i := 0; i <= len(ops); i += 1 + len(ops)/6 {
			got, _ := runOps(t, ops, runOpts{split: whole, snapshot: i})
			if diff := cmp.Diff(base, got, protocmp.Transform()); diff != "" {
				t.Fatalf("seed %d, snapshot before op %d: outputs differ (-never +restored):\n%s", seed, i, diff)
			}
		}
	}
}

// TestBySetWritesTheSameBytes: with Config.BySet the output batches hold
// their points' attributes as a table of their distinct sets, and
// WriteBatch writes them byte for byte as it writes the batches that copy
// them into each point when it finds their sets itself, flush after flush
// of the random sequences (every kind, two specs, a limit's overflow
// series with equal attributes in several metrics, late and out-of-order
// points). (The builder's own numbers, which WriteBatch would take, tell
// equal sets apart when their bytes differ: the attributes of a histogram
// point and of a number point.)
func TestBySetWritesTheSameBytes(t *testing.T) {
	seeds := uint64(4)
	if testing.Short() {
		seeds = 1
	}
	write := func(t *testing.T, outs []Output) [][]byte {
		t.Helper()
		var recs [][]byte
		for _, o := range outs {
			if o.Batch.ItemAttrSetTable == nil {
				o.Batch.ItemAttrSets = nil // found by WriteBatch, by content
			}
			var w bytes.Buffer
			if err := schemas.WriteBatch(&w, o.Batch); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, w.Bytes())
		}
		return recs
	}
	for seed := range seeds {
		cfg := Config{Stale: 2 * time.Minute, Allocator: arrowpool.NewPoisoned()}
		plain := New(cfg)
		cfg.BySet = true
		bySet := New(cfg)
		var flushes, bySetBatches int
		flush := func(wall time.Time, force bool) {
			t.Helper()
			want, err := plain.Flush(wall, force)
			if err != nil {
				t.Fatal(err)
			}
			got, err := bySet.Flush(wall, force)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range got {
				if o.Batch.ItemAttrSetTable == nil || len(o.Batch.ItemAttrSets) != o.Batch.Len() {
					t.Fatalf("seed %d flush %d: a batch without its table of sets", seed, flushes)
				}
				bySetBatches++
			}
			if w, g := write(t, want), write(t, got); !cmp.Equal(w, g) {
				t.Fatalf("seed %d flush %d: %d records by set differ from the %d copying the attributes", seed, flushes, len(g), len(w))
			}
			for _, o := range append(want, got...) {
				o.Batch.Release()
			}
			flushes++
		}
		replay(t, seed, flush, plain, bySet)
		if bySetBatches < 10 {
			t.Fatalf("seed %d: only %d batches by set", seed, bySetBatches)
		}
	}
}

// TestInputMemoSameResult: an Aggregator that finds the inputs of an Add's
// points again in its memo gives, flush after flush of the random
// sequences, the bytes and stats of one that looks every point's input up
// in inputIdx. The sequences give one input hash several output series
// (the memo's slot is the same for them), so a memo that matched on the
// input alone would merge points into the wrong series.
func TestInputMemoSameResult(t *testing.T) {
	for seed := range uint64(4) {
		cfg := Config{Stale: 2 * time.Minute, Allocator: arrowpool.NewPoisoned()}
		memo, lookup := New(cfg), New(cfg)
		lookup.noMemo = true
		flush := func(wall time.Time, force bool) {
			t.Helper()
			var recs [2][][]byte
			for i, a := range []*Aggregator{memo, lookup} {
				outs, err := a.Flush(wall, force)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range outs {
					var w bytes.Buffer
					if err := schemas.WriteBatch(&w, o.Batch); err != nil {
						t.Fatal(err)
					}
					recs[i] = append(recs[i], w.Bytes())
					o.Batch.Release()
				}
			}
			if !cmp.Equal(recs[0], recs[1]) {
				t.Fatalf("seed %d: %d records with the memo differ from the %d without", seed, len(recs[0]), len(recs[1]))
			}
		}
		replay(t, seed, flush, memo, lookup)
		if !cmp.Equal(memo.Stats(), lookup.Stats()) {
			t.Fatalf("seed %d: stats with the memo %+v, without %+v", seed, memo.Stats(), lookup.Stats())
		}
	}
}

// replay adds the random sequence of seed to every aggregator, calling
// flush where the sequence flushes and once more, forced, at the end.
func replay(t *testing.T, seed uint64, flush func(wall time.Time, force bool), aggs ...*Aggregator) {
	t.Helper()
	for _, op := range genOps(seed) {
		b, in, out := batchOf(t, op.m, op.pts)
		for _, a := range aggs {
			if err := a.Add("t", b, in, out, op.spec, op.wall); err != nil {
				t.Fatal(err)
			}
		}
		b.Release()
		if op.flush {
			flush(op.wall, false)
		}
	}
	flush(time.Unix(0, 0), true)
}
