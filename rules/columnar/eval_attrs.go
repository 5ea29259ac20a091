package columnar

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"

	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// mapCols reads a map<string, AnyValue> column.
type mapCols struct {
	m    *array.Map
	keys *array.String
	vals anyCols
	// Raw views of the entry columns, indexed by entry (as keys.Value):
	// the entries of a row are contiguous, so the keys (string values) of
	// a row are one byte range keyData[keyOff[start]-keyOff[0]:keyOff[end]-keyOff[0]].
	keyOff  []int32
	keyData []byte
	typs    []uint8
	strOff  []int32
	strData []byte
	ints    []int64
	dbls    []float64
	rowOff  []int32 // the rows' entry offsets, indexed by row (as m.ValueOffsets)
	byOff   []int32
	byData  []byte
	anyTrue bool // some bool value is true
}

func newMapCols(a arrow.Array) (mapCols, error) {
	m, ok := a.(*array.Map)
	if !ok {
		return mapCols{}, fmt.Errorf("%w: attributes column is %s", schemas.ErrSchema, a.DataType())
	}
	k, ok := m.Keys().(*array.String)
	if !ok {
		return mapCols{}, fmt.Errorf("%w: attributes keys are %s", schemas.ErrSchema, m.Keys().DataType())
	}
	v, err := newAnyCols(m.Items())
	if err != nil {
		return mapCols{}, err
	}
	c := mapCols{m: m, keys: k, vals: v}
	if m.Len() > 0 {
		off := m.Data().Offset()
		c.rowOff = m.Offsets()[off : off+m.Len()+1]
	}
	if n := v.Bool.Len(); n > 0 {
		if bm := v.Bool.Data().Buffers()[1]; bm != nil {
			c.anyTrue = bitutil.CountSetBits(bm.Bytes(), v.Bool.Data().Offset(), n) > 0
		}
	}
	if n := k.Len(); n > 0 && v.Type.Len() == n && v.Str.Len() == n && v.Int.Len() == n && v.Double.Len() == n && v.Bytes.Len() == n {
		c.keyOff, c.keyData = k.ValueOffsets(), k.ValueBytes()
		c.typs = v.Type.Uint8Values()
		c.strOff, c.strData = v.Str.ValueOffsets(), v.Str.ValueBytes()
		c.ints, c.dbls = v.Int.Int64Values(), v.Double.Float64Values()
		c.byOff, c.byData = v.Bytes.ValueOffsets(), v.Bytes.ValueBytes()
	}
	return c, nil
}

// resource returns the resource attributes of row r, decoded once.
func (st *state) resource(r int) map[string]any {
	if st.resDone[r] {
		return st.resMaps[r]
	}
	st.resDone[r] = true
	if st.resAttrs.m.IsNull(r) {
		st.resMaps[r] = nil
		return nil
	}
	start, end := st.resAttrs.m.ValueOffsets(r)
	m := make(map[string]any, end-start)
	for j := int(start); j < int(end); j++ {
		m[st.resAttrs.keys.Value(j)] = st.resAttrs.vals.value(j, &st.box)
	}
	st.resMaps[r] = m
	return m
}

// fillAttrs loads the attributes of item row i into st.attrs.
func (st *state) fillAttrs(i int) {
	m := st.attrs
	clear(m)
	st.origVals = st.origVals[:0]
	start, end := st.itAttrs.m.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		v := st.itAttrs.vals.value(j, &st.box)
		st.origVals = append(st.origVals, v)
		m[st.itAttrs.keys.Value(j)] = v
	}
	st.hasDup = len(m) != int(end-start)
}

// attrsChanged reports whether the rules changed the attributes of row i.
func (st *state) attrsChanged(i int) bool {
	if st.hasDup || len(st.attrs) != len(st.origVals) {
		return true
	}
	start, _ := st.itAttrs.m.ValueOffsets(i)
	for k, ov := range st.origVals {
		v, ok := st.attrs[st.itAttrs.keys.Value(int(start)+k)]
		if !ok || !rules.SameValue(v, ov) {
			return true
		}
	}
	return false
}

// appendKVs appends to st.kvs the entries of m as a rewrite of entries
// [start, end) of c whose decoded values are orig: entries still present
// keep their position (copied as they are when their value did not change),
// then new keys follow in key order.
func (st *state) appendKVs(m map[string]any, c *mapCols, start, end int, dups bool, orig func(k int) any) {
	first := len(st.kvs)
	for j := start; j < end; j++ {
		key := c.keys.Value(j)
		dup := false
		for _, prev := range st.kvs[first:] {
			if !dups {
				break
			}
			if prev.key == key {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		v, ok := m[key]
		if !ok {
			continue
		}
		if rules.SameValue(v, orig(j-start)) {
			st.kvs = append(st.kvs, kv{orig: int32(j), key: key})
		} else {
			st.kvs = append(st.kvs, kv{orig: -1, key: key, val: v, enc: encode(v)})
		}
	}
	known := len(st.kvs)
	if len(m) > known-first {
		for k, v := range m {
			found := false
			for _, e := range st.kvs[first:known] {
				if e.key == k {
					found = true
					break
				}
			}
			if !found {
				st.kvs = append(st.kvs, kv{orig: -1, key: k, val: v, enc: encode(v)})
			}
		}
		slices.SortFunc(st.kvs[known:], func(a, b kv) int {
			if a.key < b.key {
				return -1
			}
			if a.key > b.key {
				return 1
			}
			return 0
		})
	}
}

func (st *state) resourceChanged(orig map[string]any) bool {
	m := st.resCOW
	if len(m) != len(orig) {
		return true
	}
	for k, v := range m {
		o, ok := orig[k]
		if !ok || !rules.SameValue(v, o) {
			return true
		}
	}
	return false
}

// newResource returns the index in st.newRes of resource row r with the
// attributes of st.resCOW, adding it if it is new.
func (st *state) newResource(r int, orig map[string]any) int32 {
	first := len(st.kvs)
	start, end := 0, 0
	if !st.resAttrs.m.IsNull(r) {
		s, e := st.resAttrs.m.ValueOffsets(r)
		start, end = int(s), int(e)
	}
	st.appendKVs(st.resCOW, &st.resAttrs, start, end, true, func(k int) any { return st.resAttrs.vals.value(start+k, &st.box) })
	kvs := st.kvs[first:]
	b := strconv.AppendInt(st.sigBuf[:0], int64(r), 10)
	for _, e := range kvs {
		b = append(b, 0)
		if e.orig >= 0 {
			b = strconv.AppendInt(append(b, 'o'), int64(e.orig), 10)
			continue
		}
		b = append(append(b, e.key...), 0)
		b = appendSig(b, e.val)
	}
	st.sigBuf = b
	if idx, ok := st.newResBy[string(b)]; ok {
		st.kvs = st.kvs[:first]
		return idx
	}
	idx := int32(len(st.newRes))
	st.newResBy[string(b)] = idx
	st.newRes = append(st.newRes, newResource{orig: r, kvs: slices.Clone(kvs)})
	st.kvs = st.kvs[:first]
	return idx
}
