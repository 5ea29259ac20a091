package columnar

import (
	"hash/maphash"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/schemas"
)

// setScratch is what attrSetTable keeps between batches.
type setScratch struct {
	patches []patchEdits     // per patch, once met
	canons  map[string]int32 // a patch's edits -> canonical id
	key     []byte
	combos  []combo
	slots   []int32  // 1 + combo index, open addressing on the hash
	reps    []int32  // per combo: its first kept row (an input row), which it is compared with
	setOf   []uint32 // per combo: its set
	first   []int32  // per set: its first combo
	runs    [][2]int32
	seed    maphash.Seed
}

// comboHashMask is ANDed with the combos' hashes: a test clears it to make
// every row's hash collide, so that the comparisons decide alone.
var comboHashMask = ^uint64(0)

// patchEdits is what attrSetTable keeps of a patch.
type patchEdits struct {
	cp               int32 // canonical id (> 0), -1 when it leaves the attributes, 0 until met
	start            int32 // first entry of the row it was made on, -1 for a null row
	segStart, segEnd int32
	layout           int32 // of its memo entry, or -1
}

// combo is one distinct pair of a canonical patch and the input entries
// it keeps: kept rows with equal combos have equal attributes.
type combo struct {
	hash uint64
	cp   int32 // canonical patch, 0 for a row the rules left alone
}

// attrSetTable makes the items' attributes of the kept rows sel as a table
// of distinct sets and each row's set, numbered in order of first
// appearance: the output of an edit that makes many rows alike (deleting
// an attribute unique per series) is then made once per set rather than
// written for every row and found again by the writer. ok is false when
// more than half of the rows differ (each is then as well written in full).
//
// Rows are first grouped without making their attributes: two kept rows
// whose patches make the same edits at the same positions (canonical
// patches) and whose entries those edits keep are equal have equal
// attributes. The first row of each group is then written (attrColumn)
// and the groups' sets found on that small column (schemas.AttrSets),
// which also joins groups that end up equal in other ways.
func (st *state) attrSetTable(sel []int32) (table arrow.Array, ids []uint32, ok bool) {
	c := &st.itAttrs
	if c.keyOff == nil || len(sel) < 2 {
		return nil, nil, false
	}
	st.compilePatches()
	sc := &st.sets
	sc.patches = resize(sc.patches, len(st.patches))
	clear(sc.patches)
	if sc.canons == nil {
		sc.canons = map[string]int32{}
	}
	clear(sc.canons)
	limit := len(sel) / 2
	sc.combos, sc.reps = sc.combos[:0], sc.reps[:0]
	size := 64
	for size < 2*limit && size < 1<<16 {
		size *= 2
	}
	sc.slots = resize(sc.slots, size)
	clear(sc.slots)
	ids = make([]uint32, len(sel))
	if sc.seed == (maphash.Seed{}) {
		sc.seed = maphash.MakeSeed()
	}
	seed := sc.seed
	last := int32(-1) // the combo of the row before: rows come in runs
	for k, i := range sel {
		cp, base, segs := st.rowEdits(i)
		if st.inSets != nil {
			// A row of an input set met before, edited alike, is in
			// that row's combo.
			if x := st.setCombo[st.inSets[i]] - 1; x >= 0 && sc.combos[x].cp == cp {
				ids[k] = uint32(x)
				last = x
				continue
			}
		}
		h := st.comboHash(seed, i, cp, base, segs) & comboHashMask
		if last >= 0 {
			if cb := &sc.combos[last]; cb.hash == h && st.sameCombo(cb.cp, sc.reps[last], i, cp, base, segs) {
				ids[k] = uint32(last)
				if st.inSets != nil {
					st.setCombo[st.inSets[i]] = last + 1
				}
				continue
			}
		}
		mask := len(sc.slots) - 1
		found := int32(-1)
		p := int(h) & mask
		for ; sc.slots[p] != 0; p = (p + 1) & mask {
			x := sc.slots[p] - 1
			if cb := &sc.combos[x]; cb.hash == h && st.sameCombo(cb.cp, sc.reps[x], i, cp, base, segs) {
				found = x
				break
			}
		}
		if found < 0 {
			if len(sc.combos) >= limit || 2*(len(sc.combos)+1) > len(sc.slots) {
				return nil, nil, false
			}
			found = int32(len(sc.combos))
			sc.combos = append(sc.combos, combo{hash: h, cp: cp})
			sc.reps = append(sc.reps, i)
			sc.slots[p] = found + 1
		}
		ids[k] = uint32(found)
		last = found
		if st.inSets != nil {
			st.setCombo[st.inSets[i]] = found + 1
		}
	}
	// The groups' attributes, and their sets.
	col := st.attrColumn(sc.reps).(*array.Map)
	defer col.Release()
	sc.setOf = resize(sc.setOf, col.Len())
	sc.first = schemas.AttrSets(col, sc.setOf, sc.first[:0])
	runs := sc.runs[:0]
	for _, r := range sc.first {
		if n := len(runs); n > 0 && runs[n-1][1] == r {
			runs[n-1][1]++
		} else {
			runs = append(runs, [2]int32{r, r + 1})
		}
	}
	sc.runs = runs
	d := schemas.Take(st.e.mem, col.Data(), runs, nil)
	table = array.NewMapData(d)
	d.Release()
	for k, g := range ids {
		ids[k] = sc.setOf[g]
	}
	return table, ids, true
}

// rowEdits is what the rules do to the attributes of input row i: its
// canonical patch (0: none), the base its patch's segments are rebased by
// (patchBase) and those segments.
func (st *state) rowEdits(i int32) (cp int32, base int32, segs []attrSeg) {
	pi := st.patchOf[i]
	if pi < 0 {
		return 0, 0, nil
	}
	sc := &st.sets
	pe := &sc.patches[pi]
	if pe.cp == 0 {
		st.patchEdits(pe, i, &st.patches[pi])
	}
	if pe.cp < 0 {
		return 0, 0, nil
	}
	if pe.start >= 0 && !st.itAttrs.m.IsNull(int(i)) {
		base = st.itAttrs.rowOff[i] - pe.start
	}
	return pe.cp, base, st.psegs[pe.segStart:pe.segEnd]
}

// patchEdits fills pe, the edits of patch p, first met on row i.
func (st *state) patchEdits(pe *patchEdits, i int32, p *patch) {
	if p.what&chAttrs == 0 {
		pe.cp = -1
		return
	}
	c := &st.itAttrs
	// The row the patch was made on: its segments' entries are that
	// row's (patchBase).
	row := i
	if p.memo > 0 {
		row = st.memo.entries[p.memo-1].row
	}
	pe.start = -1
	if !c.m.IsNull(int(row)) && !c.m.IsNull(int(i)) {
		pe.start = c.rowOff[row]
	}
	pe.segStart, pe.segEnd = p.segStart, p.segEnd
	pe.layout = -1
	if p.memo > 0 {
		pe.layout = st.memo.entries[p.memo-1].layout
	}
	// The edits relative to the row's first entry, and the new entries
	// whole.
	sc := &st.sets
	key := sc.key[:0]
	for _, g := range st.psegs[p.segStart:p.segEnd] {
		if g.j0 < 0 {
			e := &st.kvs[-1-g.j0]
			key = append(key, 'n')
			key = appendStr(key, e.key)
			key = append(key, e.enc.typ)
			key = appendStr(key, e.enc.s)
			key = appendU32(appendU32(key, uint32(e.enc.i)), uint32(e.enc.i>>32))
			d := math.Float64bits(e.enc.d)
			key = appendU32(appendU32(key, uint32(d)), uint32(d>>32))
			if e.enc.b {
				key = append(key, 1)
			} else {
				key = append(key, 0)
			}
			key = appendStr(key, string(e.enc.by))
			continue
		}
		key = append(key, 'r')
		key = appendU32(appendU32(key, uint32(g.j0-max(pe.start, 0))), uint32(g.j1-g.j0))
	}
	sc.key = key
	id, ok := sc.canons[string(key)]
	if !ok {
		id = int32(len(sc.canons)) + 1
		sc.canons[string(key)] = id
	}
	pe.cp = id
}

// comboHash hashes what identifies row i's combo: its canonical patch and
// the input entries the patch keeps (all of them without one).
func (st *state) comboHash(seed maphash.Seed, i, cp, base int32, segs []attrSeg) uint64 {
	c := &st.itAttrs
	h := (uint64(uint32(cp)) + 1) * hashK1
	if cp == 0 {
		if c.m.IsNull(int(i)) {
			return h ^ hashK2
		}
		return runHash(c, seed, h, c.rowOff[i], c.rowOff[i+1])
	}
	for _, g := range segs {
		if g.j0 >= 0 {
			h = runHash(c, seed, h, g.j0+base, g.j1+base)
		}
	}
	return h
}

// runHash mixes into h entries [j0, j1) of c: their value types, string
// bytes and other values, and the length of their keys (sameCombo compares
// the keys; rows of one batch that differ in keys alone are rare).
func runHash(c *mapCols, seed maphash.Seed, h uint64, j0, j1 int32) uint64 {
	so, s0 := c.strOff, c.strOff[0]
	ko := c.keyOff
	h = (h ^ uint64(j1-j0) ^ uint64(ko[j1]-ko[j0])<<20) * hashK3
	h ^= maphash.Bytes(seed, c.strData[so[j0]-s0:so[j1]-s0])
	for j := j0; j < j1; j++ {
		t := c.typs[j]
		switch t {
		case schemas.ValueString:
			h = (h ^ uint64(t)) * hashK2
		case schemas.ValueInt:
			h = (h ^ uint64(t) ^ uint64(c.ints[j])*hashK1) * hashK2
		case schemas.ValueDouble:
			h = (h ^ uint64(t) ^ math.Float64bits(c.dbls[j])*hashK1) * hashK2
		default:
			h = (h ^ uint64(t)) * hashK2 // sameCombo compares the rest
		}
	}
	return h
}

// sameCombo reports whether row i, with its edits, is in the combo of
// canonical patch ccp whose first row is r.
func (st *state) sameCombo(ccp, r, i, cp, base int32, segs []attrSeg) bool {
	if ccp != cp {
		return false
	}
	c := &st.itAttrs
	if cp == 0 {
		ni, nr := c.m.IsNull(int(i)), c.m.IsNull(int(r))
		if ni || nr {
			return ni == nr
		}
		n := c.rowOff[i+1] - c.rowOff[i]
		return n == c.rowOff[r+1]-c.rowOff[r] && sameRowRaw(c, int(c.rowOff[r]), int(c.rowOff[i]), int(n))
	}
	// Equal canonical patches have their segments at the same places
	// relative to their rows' first entries.
	_, rbase, rsegs := st.rowEdits(r)
	if len(rsegs) != len(segs) {
		return false
	}
	// Rows the memo keyed by the same layout have the same keys: only
	// their values need comparing.
	same := sameRowRaw
	if l := st.sets.patches[st.patchOf[i]].layout; l >= 0 && l == st.sets.patches[st.patchOf[r]].layout {
		same = sameValuesRaw
	}
	for k, g := range segs {
		if g.j0 < 0 {
			continue
		}
		rg := rsegs[k]
		if !same(c, int(rg.j0+rbase), int(g.j0+base), int(g.j1-g.j0)) {
			return false
		}
	}
	return true
}

// setMemo is the memo entry of an input attribute set's last row.
type setMemo struct {
	entry int32 // 1 + index in rowMemo.entries, 0 none
	r, s  int32
}

// useInputSets takes b's attribute sets (schemas.Batch.ItemAttrSets: equal
// numbers, equal attributes) when they number its items: a row of a set
// met before with the same resource and scope replays that row's memo
// entry without its attributes being compared again (evaluate), and goes
// to that row's combo (attrSetTable) when its patch edits them alike.
func (st *state) useInputSets(b *schemas.Batch) {
	st.inSets = nil
	sets := b.ItemAttrSets
	if len(sets) != st.n || st.n == 0 || b.ItemAttrSetTable != nil {
		return
	}
	hi := uint32(0)
	for _, s := range sets {
		hi = max(hi, s)
	}
	if int(hi) >= st.n {
		return
	}
	st.inSets = sets
	st.setMemo = resize(st.setMemo, int(hi)+1)
	clear(st.setMemo)
	st.setCombo = resize(st.setCombo, int(hi)+1)
	clear(st.setCombo)
}
