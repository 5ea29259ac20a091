package cardinality

import (
	"bytes"
	"math/bits"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Bounds of a scratch's row table (see rowHashes): the distinct point
// attribute sets of a batch it remembers, and their value hashes.
const (
	maxRows      = 4096
	maxRowHashes = 8 * maxRows
	rowsTrial    = 256 // rows added without a hit before giving up on the table
)

// scratch is the state of one Observe call, reused across calls: the
// Tracker keeps the scratches of finished calls, so there are as many as
// calls ever ran at once, each sized by the largest batch it saw and the
// bounds above, whatever the number of tenants.
type scratch struct {
	refs   [numStages][]metricRef // per stage observed, per metric row
	resSum []uint64               // per resource row: sum of its pair hashes
	resOK  []bool
	resKH  []uint64 // per resource attribute entry, set with resOK: key hash
	resVH  []uint64 // and value hash

	// kh holds the key hashes of the point attributes that start at entry
	// keysAt (-1: none yet); keys counts the changes of keys.
	keysAt int
	keys   uint32
	kh     []uint64

	rows    []row // open addressing, len a power of two; zero: empty
	rowBits int   // log2 len(rows)
	nrows   int   // rows used
	hits    int   // points found in rows
	// When rows is full: clear it at the next run if it found more points
	// than it holds, else stop using it for the batch.
	clearRows, skipRows bool
	rowVH               []uint64 // value hashes of the rows
	// The row the next point likely has (see rowHashes), and the row added
	// last, as slot index + 1 (0: none); guessed counts the points found
	// so.
	guess, lastRow int32
	guessed        int

	// The points of the current run (see observeStages), and room for
	// what their slices point to when it is not in kh or rowVH.
	run   []pending
	fresh []bool
	khBuf []uint64
	vhBuf []uint64

	// With the batch's attribute sets (schemas.Batch.ItemAttrSets; see
	// setHashes): per set, its hashes once made.
	sets []uint32
	tab  *setTable // own, or the Tracker's kept one (useKept)
	own  setTable
	// stage0 is the stage (Before or After) of the first stage observed.
	stage0 int
}

// row is a point attribute set already hashed in this batch.
type row struct {
	key  uint64 // runKey of its values
	sum  uint64 // of its pair hashes
	at   int32  // its first entry
	vhAt int32  // its value hashes: rowVH[vhAt:][:n]
	keys uint32 // keys of the scratch when it was added; 0: empty slot
	next int32  // the row added after it, as slot index + 1 (0: none yet)
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// getScratch returns a scratch for an Observe call; putScratch takes it
// back.
func (t *Tracker) getScratch() *scratch {
	t.scratchMu.Lock()
	defer t.scratchMu.Unlock()
	n := len(t.scratches)
	if n == 0 {
		return &scratch{}
	}
	sc := t.scratches[n-1]
	t.scratches[n-1] = nil
	t.scratches = t.scratches[:n-1]
	return sc
}

func (t *Tracker) putScratch(sc *scratch) {
	t.scratchMu.Lock()
	t.scratches = append(t.scratches, sc)
	t.scratchMu.Unlock()
}

// reset prepares sc for c, observed at stages stages.
func (sc *scratch) reset(c *columns, stages int) {
	for k := range stages {
		sc.refs[k] = grow(sc.refs[k], c.metrics)
	}
	sc.resSum = grow(sc.resSum, c.resources)
	sc.resOK = grow(sc.resOK, c.resources)
	sc.resKH = grow(sc.resKH, c.resAttrs.n)
	sc.resVH = grow(sc.resVH, c.resAttrs.n)
	sc.keysAt, sc.keys, sc.kh = -1, 0, sc.kh[:0]
	// Twice as many slots as rows it may hold, for short probes.
	sc.rowBits = bits.Len(uint(min(c.points, maxRows)-1)) + 1
	if cap(sc.rows) < 1<<sc.rowBits {
		sc.rows = make([]row, 1<<sc.rowBits)
	}
	sc.rows = sc.rows[:1<<sc.rowBits]
	sc.skipRows = false
	sc.clearRows = true // at the first run
	sc.guessed = 0
}

// hashResource sets the pair hashes of resource row r and their sum, once
// per batch.
func (sc *scratch) hashResource(ra *attrCol, r int) {
	if sc.resOK[r] {
		return
	}
	start, end := ra.entries(r)
	for j := start; j < end; j++ {
		sc.resKH[j] = xxhash.Sum64(ra.keys.at(j))
	}
	sc.resSum[r] = ra.vals.hashRow(start, sc.resKH[start:end], sc.resVH[start:end])
	sc.resOK[r] = true
}

// startRun empties the current run.
func (sc *scratch) startRun() {
	sc.run = sc.run[:0]
	if sc.fresh == nil {
		sc.run, sc.fresh = make([]pending, 0, maxRun), make([]bool, maxRun)
	}
	// Keep the last keys' hashes, which the next point may reuse.
	sc.khBuf = append(sc.khBuf[:0], sc.kh...)
	sc.kh = sc.khBuf
	sc.vhBuf = sc.vhBuf[:0]
	if sc.clearRows {
		clear(sc.rows)
		sc.nrows, sc.hits, sc.rowVH, sc.clearRows = 0, 0, sc.rowVH[:0], false
		sc.guess, sc.lastRow = 0, 0
	}
}

// extend grows s by n elements, returning it and them.
func extend(s []uint64, n int) (all, added []uint64) {
	at := len(s)
	s = slices.Grow(s, n)[:at+n]
	return s, s[at:]
}

// keyHashes returns the hashes of the point attribute keys at entries
// [start, end) of k, valid until the next run. Points usually carry the
// same keys as the point before them (of the same metric, or of the
// resource's previous metric): then those hashes are reused, after one
// comparison of the keys' bytes. Otherwise keys equal to the previous
// point's at the same position keep their hash and the others are hashed.
func (sc *scratch) keyHashes(k *strCol, start, end int) []uint64 {
	n, prev, last := end-start, sc.keysAt, sc.kh
	if prev >= 0 && len(last) == n && k.sameRun(prev, start, n) {
		return last
	}
	var kh []uint64
	sc.khBuf, kh = extend(sc.khBuf, n)
	for e := range kh {
		key := k.at(start + e)
		if prev >= 0 && e < len(last) && bytes.Equal(key, k.at(prev+e)) {
			kh[e] = last[e]
			continue
		}
		kh[e] = xxhash.Sum64(key)
	}
	sc.kh, sc.keysAt = kh, start
	sc.keys++
	return kh
}

// rowHashes returns the value hashes of the point attributes at entries
// [start, start+len(kh)) of a, whose key hashes are kh (keyHashes'), valid
// until the next run, and the sum of their pair hashes. The attribute sets
// of a batch repeat: every metric of a resource usually has points with
// the same sets. So rows remembers the sets seen in the batch, up to
// maxRows, and a set seen before costs one hash of its values' bytes and
// one comparison with them, not a hash per value and per pair.
//
// Better still, the metrics of a resource usually carry their points'
// sets in the same order: the set of a point is then the one added after
// the set of the point before it (of the same metric, or of the last
// point of the metric before). So that row is guessed first, and when the
// guess is right the point costs the comparison alone. (Rows with the same
// keys of the scratch have the same keys, so the same number of values.)
func (sc *scratch) rowHashes(a *attrCol, start int, kh []uint64) (vh []uint64, sum uint64) {
	n := len(kh)
	if n == 0 {
		return nil, 0
	}
	var key uint64
	var i int
	if !sc.skipRows {
		if g := sc.guess; g > 0 {
			r := &sc.rows[g-1]
			if r.keys == sc.keys && a.vals.same(int(r.at), start, n) {
				sc.hits++
				sc.guessed++
				sc.guess = r.next
				return sc.rowVH[r.vhAt:][:n], r.sum
			}
		}
		key = a.vals.runKey(start, n) ^ uint64(sc.keys)
		mask := len(sc.rows) - 1
		i = int((key * seedDouble) >> (64 - sc.rowBits))
		for ; sc.rows[i].keys != 0; i = (i + 1) & mask {
			r := &sc.rows[i]
			if r.key == key && r.keys == sc.keys && a.vals.same(int(r.at), start, n) {
				sc.hits++
				sc.guess = r.next
				return sc.rowVH[r.vhAt:][:n], r.sum
			}
		}
	}
	sc.guess = 0
	at := len(sc.rowVH)
	keep := !sc.skipRows && !sc.clearRows && sc.nrows < maxRows && at+n <= maxRowHashes
	if keep && sc.hits == 0 && sc.nrows >= rowsTrial {
		// Not one set repeated: an attribute unique per series (an id),
		// and metrics that do not share sets (one per resource). Stop
		// looking them up, which would cost more than hashing.
		keep, sc.skipRows = false, true
	}
	if !keep && !sc.skipRows && !sc.clearRows {
		// Full. Sets of a batch repeat within a resource, usually: make
		// room for those of the next resources, or, if they did not repeat
		// much, stop looking them up. (Not before the next run, whose points
		// may hold value hashes of rowVH.)
		sc.skipRows = sc.hits < sc.nrows
		sc.clearRows = !sc.skipRows
	}
	if keep {
		sc.rowVH, vh = extend(sc.rowVH, n)
	} else {
		sc.vhBuf, vh = extend(sc.vhBuf, n)
	}
	sum = a.vals.hashRow(start, kh, vh)
	if keep {
		sc.rows[i] = row{key: key, sum: sum, at: int32(start), vhAt: int32(at), keys: sc.keys}
		sc.nrows++
		if sc.lastRow > 0 {
			sc.rows[sc.lastRow-1].next = int32(i) + 1
		}
		sc.lastRow = int32(i) + 1
	}
	return vh, sum
}
