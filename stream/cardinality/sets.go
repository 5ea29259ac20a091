package cardinality

// setEnt is where the hashes of one attribute set of the batch are kept
// in scratch.setH: key hashes at [at, at+n), value hashes at [at+n,
// at+2n); n is -1 until the set's first point.
type setEnt struct {
	at, n int32
	sum   uint64
	// last: per stage of the Observe call, the series its last point
	// was added as (see metricRef.add).
	last [numStages]struct {
		m   *metric
		key uint64
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
