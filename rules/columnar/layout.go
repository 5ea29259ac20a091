package columnar

import (
	"bytes"
	"hash/maphash"
	"math"

	"github.com/sluice-dev/sluice/schemas"
)

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
	// pos: per key of sigInfo.attrVals, its entry in the row, or -1;
	// vpos: the entries of pos that are in the row.
	pos, vpos []int16
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
	if ls.last >= 0 && c.keyOff != nil {
		if l := &ls.all[ls.last]; l.matches(c, start, end) {
			if l.dup {
				return -1
			}
			return ls.last
		}
	}
	if c.keyOff == nil || end-start > 1<<15 {
		return -1
	}
	lay := ls.find(c, start, end, vals)
	if lay >= 0 && ls.all[lay].dup {
		return -1
	}
	return lay
}

// find is of when the row's layout is not the one found last.
func (ls *layouts) find(c *mapCols, start, end int, vals []string) int32 {
	n := end - start
	ko := c.keyOff
	k0 := ko[0]
	kb := c.keyData[ko[start]-k0 : ko[end]-k0]
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
	l.vpos = l.vpos[:0]
	for _, p := range l.pos {
		if p >= 0 {
			l.vpos = append(l.vpos, p)
		}
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

// matches reports whether entries [start, end) of c (a row; c has raw
// views) have layout l.
func (l *layout) matches(c *mapCols, start, end int) bool {
	ends := l.ends
	if end-start != len(ends) {
		return false
	}
	offs := c.keyOff[start : end+1]
	o := offs[0]
	offs = offs[1:]
	if len(offs) != len(ends) {
		return false
	}
	for k, e := range ends {
		if offs[k]-o != e {
			return false
		}
	}
	k0 := c.keyOff[0]
	return string(c.keyData[o-k0:o-k0+int32(len(l.keys))]) == string(l.keys)
}

// memoByLayout is memoRow for a row keyed by its layout and the values of
// the keys the rules read, when no field is part of the key: one pass
// that hashes the values where they are stored (no key bytes assembled)
// and compares them in place. It reports ok false for a row that is not
// keyed by layout (null, no layout, duplicate keys), which memoRow then
// keys whole. Rows keyed by layout are all hashed here, so that equal keys
// hash equal.
func (st *state) memoByLayout(i, r, s int) (me *memoEntry, hit, ok bool) {
	m := &st.memo
	c := &st.itAttrs
	if c.m.IsNull(i) {
		return nil, false, false
	}
	start, end := int(c.rowOff[i]), int(c.rowOff[i+1])
	ls := &m.layouts
	lay := ls.last
	if lay < 0 || c.keyOff == nil || ls.all[lay].dup || !ls.all[lay].matches(c, start, end) {
		if lay = ls.of(c, start, end, st.info.attrVals); lay < 0 {
			return nil, false, false
		}
	}
	vpos := ls.all[lay].vpos
	h := layoutHash(c, m.seed, start, vpos) ^ (uint64(uint32(lay))+1)*hashK1 ^ uint64(uint32(r))*hashK2 ^ uint64(uint32(s))*hashK3
	if m.predict >= 0 && m.last >= 0 {
		if e := &m.entries[m.last]; e.layout == lay && int(e.r) == r && int(e.s) == s && st.sameProjected(int(e.row), i, vpos) {
			m.hits++
			m.predicted++
			m.predict = min(m.predict+1, predictMax)
			st.replay(i, e)
			return nil, true, true
		}
		m.predict--
	}
	mask := len(m.slots) - 1
	for p := int(h) & mask; ; p = (p + 1) & mask {
		x := m.slots[p] - 1
		if x < 0 {
			break
		}
		if e := &m.entries[x]; e.hash == h && e.layout == lay && int(e.r) == r && int(e.s) == s && st.sameProjected(int(e.row), i, vpos) {
			if x == m.last {
				m.predict = min(m.predict+1, predictMax)
			}
			m.last = x
			m.hits++
			st.replay(i, e)
			return nil, true, true
		}
	}
	if len(m.entries) >= memoGiveUp && m.hits*memoMinHitRate < len(m.entries) {
		m.off = true
		return nil, false, true
	}
	me = st.memoAdd(h, i, r, s)
	me.layout = lay
	m.last = int32(len(m.entries) - 1)
	return me, false, true
}

// Odd constants that spread the layout, resource and scope over a hash.
const (
	hashK1 = 0x9e3779b97f4a7c15
	hashK2 = 0xc2b2ae3d27d4eb4f
	hashK3 = 0x165667b19e3779f9
)

// layoutHash hashes the values at vpos of the row whose entries start at
// start, as stored: values that sameProjected finds equal hash equal.
func layoutHash(c *mapCols, seed maphash.Seed, start int, vpos []int16) uint64 {
	var h uint64
	so, sd := c.strOff, c.strData
	for _, p := range vpos {
		j := start + int(p)
		t := c.typs[j]
		var v uint64
		switch t {
		case schemas.ValueString:
			s0 := so[0]
			v = maphash.Bytes(seed, sd[so[j]-s0:so[j+1]-s0])
		case schemas.ValueInt:
			v = uint64(c.ints[j]) * hashK2
		case schemas.ValueDouble:
			v = math.Float64bits(c.dbls[j]) * hashK2
		case schemas.ValueBool:
			if c.vals.Bool.Value(j) {
				v = 1
			}
		case schemas.ValueNone, schemas.ValueEmpty:
		default:
			v = maphash.Bytes(seed, c.vals.Bytes.Value(j))
		}
		h = (h^v^uint64(t))*hashK3 + hashK1
	}
	return h
}
