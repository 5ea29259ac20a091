package cardinality

import "sync"

// setEnt is where the hashes of one attribute set of the batch are kept
// in scratch.setH: key hashes at [at, at+n), value hashes at [at+n,
// at+2n); n is -1 until the set's first point.
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

// useSets takes the batch's attribute sets (schemas.Batch.ItemAttrSets:
// equal numbers, equal attributes), when there is one per point: the
// series of a point is then hashed once per set (setHashes), not per
// point. The worker finds them for the rules' output, where sets repeat
// across the pods of a workload once an attribute unique per series is
// deleted.
func (sc *scratch) useSets(sets []uint32, points int) {
	sc.sets = nil
	if len(sets) != points || points == 0 {
		return
	}
	hi := uint32(0)
	for _, s := range sets {
		hi = max(hi, s)
	}
	if int(hi) >= points {
		return // not a numbering of this batch's sets
	}
	sc.sets = sets
	sc.setEnts = sc.setEnts[:0]
	for range int(hi) + 1 {
		sc.setEnts = append(sc.setEnts, setEnt{n: -1})
	}
	sc.setH = sc.setH[:0]
}

// setHashes returns what keyHashes and rowHashes return for the point
// whose attributes are entries [start, end) of a and the batch's set set:
// made at the set's first point and kept for the others.
func (sc *scratch) setHashes(a *attrCol, set, start, end int) (kh, vh []uint64, sum uint64) {
	e := &sc.setEnts[set]
	if e.n < 0 {
		kh = sc.keyHashes(&a.keys, start, end)
		vh, sum = sc.rowHashes(a, start, kh)
		e.at, e.n, e.sum = int32(len(sc.setH)), int32(len(kh)), sum
		sc.setH = append(append(sc.setH, kh...), vh...)
	}
	h := sc.setH[e.at:]
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
// one window (by an id never given twice, which holds no memory), which no
// other tenant's point matches, so tenants only take the entry in turn. It is bounded by the decoder's sets (tens of thousands) and
// maxKeptHashes, past which it starts again.
type keptSets struct {
	mu    sync.Mutex
	space uint64
	ents  []setEnt
	h     []uint64
}

// maxKeptHashes bounds keptSets.h (8 MiB).
const maxKeptHashes = 1 << 20

// useKept makes ids, a batch's sets numbered in space, the sets of the
// Observe call, their hashes and last series those of k; it returns the
// scratch's own, which leaveKept gives back.
func (sc *scratch) useKept(k *keptSets, ids []uint32, space uint64) (own struct {
	ents []setEnt
	h    []uint64
}) {
	own.ents, own.h = sc.setEnts, sc.setH
	if k.space != space || len(k.h) > maxKeptHashes {
		k.space, k.ents, k.h = space, k.ents[:0], k.h[:0]
	}
	hi := uint32(0)
	for _, s := range ids {
		hi = max(hi, s)
	}
	for len(k.ents) <= int(hi) {
		k.ents = append(k.ents, setEnt{n: -1})
	}
	sc.sets, sc.setEnts, sc.setH = ids, k.ents, k.h
	return own
}

// leaveKept keeps in k what the Observe call added to its sets, and gives
// the scratch its own slices back.
func (sc *scratch) leaveKept(k *keptSets, own struct {
	ents []setEnt
	h    []uint64
}) {
	k.ents, k.h = sc.setEnts, sc.setH
	sc.sets, sc.setEnts, sc.setH = nil, own.ents, own.h
}
