package cardinality

import "sync"

// setEnt is where the hashes of one attribute set are kept in its
// setTable's h: key hashes at [at, at+n), value hashes at [at+n, at+2n);
// n is -1 until the set's first point.
type setEnt struct {
	at, n int32
	sum   uint64
	// last: per stage (Before, After), the series its last point was
	// added as (see metricRef.add).
	last [numStages]struct {
		metric uint64 // its id
		key    uint64
	}
}

// setTable is, per attribute set, where its hashes and last series are
// kept (setEnt) and the hashes themselves.
type setTable struct {
	ents []setEnt
	h    []uint64
}

// reset empties t for sets numbered below n.
func (t *setTable) reset(n int) {
	t.ents, t.h = t.ents[:0], t.h[:0]
	t.grow(n)
}

// grow makes room in t for sets numbered below n, new ones not hashed.
func (t *setTable) grow(n int) {
	for len(t.ents) < n {
		t.ents = append(t.ents, setEnt{n: -1})
	}
}

// useSets takes the batch's attribute sets (schemas.Batch.ItemAttrSets:
// equal numbers, equal attributes), when there is one per point: the
// series of a point is then hashed once per set (setHashes), not per
// point. The worker finds them for the rules' output, where sets repeat
// across the pods of a workload once an attribute unique per series is
// deleted. Their table is the scratch's own, emptied.
func (sc *scratch) useSets(sets []uint32, points int) {
	sc.sets, sc.tab = nil, nil
	if len(sets) != points || points == 0 {
		return
	}
	hi := maxOf(sets)
	if int(hi) >= points {
		return // not a numbering of this batch's sets
	}
	sc.sets, sc.tab = sets, &sc.own
	sc.tab.reset(int(hi) + 1)
}

// useKept takes ids, the decoder's numbers of the batch's sets in space
// (schemas.Batch.ItemSetIDs), with the table kept from the batches before
// (k, locked by the caller for the call).
func (sc *scratch) useKept(k *keptSets, ids []uint32, space uint64) {
	if k.space != space || len(k.tab.h) > maxKeptHashes {
		k.space = space
		k.tab.reset(0)
	}
	k.tab.grow(int(maxOf(ids)) + 1)
	sc.sets, sc.tab = ids, &k.tab
}

func maxOf(s []uint32) uint32 {
	hi := uint32(0)
	for _, x := range s {
		hi = max(hi, x)
	}
	return hi
}

// setHashes returns what keyHashes and rowHashes return for the point
// whose attributes are entries [start, end) of a and the batch's set set:
// made at the set's first point and kept for the others.
func (sc *scratch) setHashes(a *attrCol, set, start, end int) (kh, vh []uint64, sum uint64) {
	t := sc.tab
	e := &t.ents[set]
	if e.n < 0 {
		kh = sc.keyHashes(&a.keys, start, end)
		vh, sum = sc.rowHashes(a, start, kh)
		e.at, e.n, e.sum = int32(len(t.h)), int32(len(kh)), sum
		t.h = append(append(t.h, kh...), vh...)
	}
	h := t.h[e.at:]
	return h[:e.n:e.n], h[e.n : 2*e.n : 2*e.n], e.sum
}

// keptSets is what Observe keeps of the decoder's attribute sets from one
// batch to the next (schemas.Batch.ItemSetIDs, numbers of a SetSpace): per
// set, its hashes, made at its first point ever rather than at its first
// point of each batch, and the series its last point was added as, so
// that a series seen in the batch before is not looked up again (live
// traffic holds each series once a batch; every scrape repeats them).
//
// The sets are the decoder's, shared by every tenant: a set's hashes are
// of its attributes alone, and its last series names a tenant's metric of
// one window (by an id never given twice, which holds no memory), which
// no other tenant's point matches, so tenants only take the entry in
// turn. It is bounded by the decoder's sets (tens of thousands) and
// maxKeptHashes, past which it starts again.
type keptSets struct {
	mu    sync.Mutex
	space uint64
	tab   setTable
}

// maxKeptHashes bounds keptSets' hashes (8 MiB).
const maxKeptHashes = 1 << 20
