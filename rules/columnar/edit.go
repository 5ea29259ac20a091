package columnar

import "slices"

// The attribute edits of a patch are compiled once, when the rules ran on
// a row (recordPatch), and then written to every row that shares the
// patch (the rows the memo replays it for): the entries kept from the
// input are runs of positions, copied in bulk (attrColumn), and
// each value a rule produced is encoded to its AnyValue fields once
// (kv.enc), not per row (an array or map value is a protobuf encoding).

// encoded is a value a rule produced as the AnyValue fields it is written
// as (see encodeValue).
type encoded struct {
	typ uint8
	b   bool
	s   string
	i   int64
	d   float64
	by  []byte
}

func encode(v any) encoded {
	var e encoded
	e.typ, e.s, e.i, e.d, e.b, e.by = encodeValue(v)
	return e
}

// attrSeg is a run of a rebuilt attributes column (attrColumn): input
// entries [j0, j1) copied as they are, or, when j0 < 0, the new entry
// st.kvs[-1-j0].
type attrSeg struct{ j0, j1 int32 }

// addRow closes a row (valid) or adds a null row; end is the number of
// entries of the column after it.
func (w *rawAttrs) addRow(end int32, valid bool) {
	w.rowValid = setBit(w.rowValid, w.rows, valid)
	if !valid {
		w.nullRows++
	}
	w.rows++
	w.rowOff = append(w.rowOff, end)
}

// grow returns s with room for n more elements.
func grow[T any](s []T, n int) []T {
	if cap(s)-len(s) < n {
		s = slices.Grow(s, n)
	}
	return s
}

// writeEntries writes the entries idx of the column, each an entry of c
// or (-1-k) the new entry kvs[k], to the child columns (empty but for
// their first offsets); segs are the same entries as runs.
func (w *rawAttrs) writeEntries(c *mapCols, segs []attrSeg, idx []int32, kvs []kv) {
	n := len(idx)
	typ, ints, dbls := grow(w.typ, n)[:n], grow(w.ints, n)[:n], grow(w.dbls, n)[:n]
	ct, ci, cd := c.typs, c.ints, c.dbls
	for k, j := range idx {
		if j >= 0 {
			typ[k], ints[k], dbls[k] = ct[j], ci[j], cd[j]
			continue
		}
		e := &kvs[-1-j].enc
		typ[k], ints[k], dbls[k] = e.typ, e.i, e.d
	}
	w.typ, w.ints, w.dbls = typ, ints, dbls

	// The offsets: each entry's end, from the lengths of the entries.
	ko, so, bo := c.keyOff, c.strOff, c.byOff
	w.keyOff, w.strOff, w.byOff = grow(w.keyOff, n)[:1+n], grow(w.strOff, n)[:1+n], grow(w.byOff, n)[:1+n]
	kc, sc, bc := w.keyOff[0], w.strOff[0], w.byOff[0]
	kOff, sOff, bOff := w.keyOff[1:], w.strOff[1:], w.byOff[1:]
	kOff, sOff, bOff = kOff[:len(idx)], sOff[:len(idx)], bOff[:len(idx)]
	bools := false    // some new entry is a true bool
	newBytes := false // some new entry has bytes
	for k, j := range idx {
		if j >= 0 {
			kc += ko[j+1] - ko[j]
			sc += so[j+1] - so[j]
		} else {
			e := &kvs[-1-j]
			kc += int32(len(e.key))
			sc += int32(len(e.enc.s))
			newBytes = newBytes || len(e.enc.by) > 0
			bools = bools || e.enc.b
		}
		kOff[k], sOff[k] = kc, sc
	}
	// Bytes values are rare: without any, the bytes offsets are all zero.
	byBytes := newBytes || (len(bo) > 0 && bo[len(bo)-1] != bo[0])
	if byBytes {
		for k, j := range idx {
			if j >= 0 {
				bc += bo[j+1] - bo[j]
			} else {
				bc += int32(len(kvs[-1-j].enc.by))
			}
			bOff[k] = bc
		}
	} else {
		clear(bOff)
	}

	// The bytes, one copy per run.
	kd, sd, bd := grow(w.keyData, int(kc)), grow(w.strData, int(sc)), grow(w.byData, int(bc))
	for _, g := range segs {
		if g.j0 < 0 {
			e := &kvs[-1-g.j0]
			kd = append(kd, e.key...)
			sd = append(sd, e.enc.s...)
			if byBytes {
				bd = append(bd, e.enc.by...)
			}
			continue
		}
		kd = append(kd, c.keyData[ko[g.j0]-ko[0]:ko[g.j1]-ko[0]]...)
		sd = append(sd, c.strData[so[g.j0]-so[0]:so[g.j1]-so[0]]...)
		if !byBytes {
			continue
		}
		if b0, b1 := bo[g.j0]-bo[0], bo[g.j1]-bo[0]; b1 > b0 {
			bd = append(bd, c.byData[b0:b1]...)
		}
	}
	w.keyData, w.strData, w.byData = kd, sd, bd

	if !c.anyTrue && !bools {
		return // the bitmap stays zero
	}
	bm := w.bools
	for k, j := range idx {
		var b bool
		if j >= 0 {
			b = c.vals.Bool.Value(int(j))
		} else {
			b = kvs[-1-j].enc.b
		}
		if b {
			bm = setBit(bm, k, true)
		}
	}
	w.bools = bm
}
