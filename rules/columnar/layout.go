package columnar

import "bytes"

// layout is one sequence of attribute keys, in order, that item rows of
// the batch have. When the rules read the values of a few attribute keys
// only (sigInfo.project), the memo keys a row by its layout and the values
// of those keys: rows that differ only in the values of other keys (a pod
// name, an id unique per series) share one outcome. Rows of one layout
// have the same number of entries and the same key at each position, so a
// patch computed on one row applies to the others by position
// (patchBase), whatever their other values.
type layout struct {
	keys []byte  // the keys' bytes, concatenated (a copy)
	ends []int32 // end of each key in keys
	// pos: per key of sigInfo.attrVals, its entry in the row, or -1.
	pos []int16
	// dup: some key repeats. Such rows are memoised by their whole
	// content, as rows are without projection.
	dup bool
}

// maxLayouts bounds the layouts of a batch; rows of further layouts are
// memoised by their whole content.
const maxLayouts = 1024

// layouts finds the layout of item rows.
type layouts struct {
	all  []layout
	by   map[string]int32 // key bytes and key lengths -> layout
	buf  []byte
	last int32 // the layout found last
}

func (ls *layouts) reset() {
	if ls.by == nil {
		ls.by = map[string]int32{}
	}
	clear(ls.by)
	ls.all = ls.all[:0]
	ls.last = -1
}

// of returns the layout of entries [start, end) of c (a row), adding it if
// it is new, or -1 when the row is to be memoised whole: c has no raw
// views, the row is too long, or the batch has too many layouts.
func (ls *layouts) of(c *mapCols, start, end int, vals []string) int32 {
	n := end - start
	if c.keyOff == nil || n > 1<<15 {
		return -1
	}
	ko := c.keyOff
	k0 := ko[0]
	kb := c.keyData[ko[start]-k0 : ko[end]-k0]
	if ls.last >= 0 && ls.all[ls.last].matches(ko[start:end+1], kb) {
		return ls.last
	}
	b := append(ls.buf[:0], kb...)
	for j := start; j < end; j++ {
		l := ko[j+1] - ko[j]
		b = append(b, byte(l), byte(l>>8), byte(l>>16))
	}
	ls.buf = b
	if idx, ok := ls.by[string(b)]; ok {
		ls.last = idx
		return idx
	}
	if len(ls.all) >= maxLayouts {
		return -1
	}
	idx := int32(len(ls.all))
	if len(ls.all) < cap(ls.all) {
		ls.all = ls.all[:idx+1] // reuse the slices of an earlier batch
	} else {
		ls.all = append(ls.all, layout{})
	}
	l := &ls.all[idx]
	l.keys = append(l.keys[:0], kb...)
	l.ends = l.ends[:0]
	for j := start; j < end; j++ {
		l.ends = append(l.ends, ko[j+1]-ko[start])
	}
	l.dup = false
	for a := range n {
		for b := a + 1; b < n && !l.dup; b++ {
			l.dup = bytes.Equal(l.key(a), l.key(b))
		}
	}
	l.pos = l.pos[:0]
	for _, v := range vals {
		p := int16(-1)
		for k := range n {
			if string(l.key(k)) == v {
				p = int16(k)
				break
			}
		}
		l.pos = append(l.pos, p)
	}
	ls.by[string(b)] = idx
	ls.last = idx
	return idx
}

func (l *layout) key(k int) []byte {
	s := int32(0)
	if k > 0 {
		s = l.ends[k-1]
	}
	return l.keys[s:l.ends[k]]
}

// matches reports whether a row whose key offsets are offs (n+1 of them)
// and key bytes kb has layout l.
func (l *layout) matches(offs []int32, kb []byte) bool {
	if len(offs)-1 != len(l.ends) || !bytes.Equal(kb, l.keys) {
		return false
	}
	o := offs[0]
	for k, e := range l.ends {
		if offs[k+1]-o != e {
			return false
		}
	}
	return true
}
