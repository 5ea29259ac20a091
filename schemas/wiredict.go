package schemas

// Hash tables of the encoder (wirecodec.go): the string dictionary and the
// attribute-set table. Both are open addressing tables of row indexes keyed by
// a maphash of the row's bytes, compared against the first row of that value,
// so that no key is materialised and nothing is allocated per value; their
// storage lives in the pooled encoder. They find exactly the distinct values,
// in first-occurrence order, of the map[string]uint32 and appendKey they
// replace, so the wire bytes are unchanged.

import (
	"bytes"
	"hash/maphash"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

var hashSeed = maphash.MakeSeed()

// table is an open addressing set of distinct rows: slots hold 1 + the index
// of a distinct row in reps, hashes the hash of each distinct row.
type table struct {
	slots  []uint32
	hashes []uint64
	reps   []int32
	mask   uint64
}

// reset prepares t for at most limit distinct rows.
func (t *table) reset(limit int) {
	size := max(16, 1<<bits.Len(uint(2*limit)))
	if cap(t.slots) < size {
		t.slots = make([]uint32, size)
	} else {
		t.slots = t.slots[:size]
		clear(t.slots)
	}
	t.mask = uint64(size - 1)
	t.hashes, t.reps = t.hashes[:0], t.reps[:0]
}

// find returns the id of the distinct row equal (by eq) to row i of hash h,
// adding row i when there is none and fewer than limit distinct rows;
// ok is false when the limit is reached.
func (t *table) find(h uint64, i int32, limit int, eq func(a, b int32) bool) (id uint32, ok bool) {
	p := h & t.mask
	for {
		s := t.slots[p]
		if s == 0 {
			if len(t.reps) >= limit {
				return 0, false
			}
			t.reps = append(t.reps, i)
			t.hashes = append(t.hashes, h)
			t.slots[p] = uint32(len(t.reps))
			return uint32(len(t.reps) - 1), true
		}
		if t.hashes[s-1] == h && eq(t.reps[s-1], i) {
			return s - 1, true
		}
		p = (p + 1) & t.mask
	}
}

func (e *encoder) idScratch(n int) []uint64 {
	if cap(e.ids) < n {
		e.ids = make([]uint64, n)
	}
	return e.ids[:n]
}

// strDict finds the distinct values of n = len(offs)-1 strings (bytes of
// value i: data[offs[i]-offs[0]:offs[i+1]-offs[0]]), at most limit of them:
// ids gets the id of each value, the result the first row of each distinct
// value (nil when there are more than limit).
func (e *encoder) strDict(offs []int32, data []byte, limit int, ids []uint64) []int32 {
	n := len(offs) - 1
	o0 := offs[0]
	t := &e.strTab
	t.reset(limit)
	eq := func(a, b int32) bool {
		return bytes.Equal(data[offs[a]-o0:offs[a+1]-o0], data[offs[b]-o0:offs[b+1]-o0])
	}
	// As in attrSets, next[p] is 1 + the id of the value that followed the
	// last value of id p (keys and values of attribute sets cycle), tried
	// before the table.
	next := e.strNext[:0]
	defer func() { e.strNext = next[:0] }()
	var prev []byte
	for i := range n {
		v := data[offs[i]-o0 : offs[i+1]-o0]
		if i > 0 {
			if string(v) == string(prev) {
				ids[i] = ids[i-1]
				continue
			}
			if g := next[ids[i-1]]; g != 0 {
				r := t.reps[g-1]
				if string(v) == string(data[offs[r]-o0:offs[r+1]-o0]) {
					ids[i] = uint64(g - 1)
					prev = v
					continue
				}
			}
		}
		prev = v
		id, ok := t.find(maphash.Bytes(hashSeed, v), int32(i), limit, eq)
		if !ok {
			return nil
		}
		if int(id) == len(next) {
			next = append(next, 0)
		}
		if i > 0 {
			next[ids[i-1]] = id + 1
		}
		ids[i] = uint64(id)
	}
	return t.reps
}

// attrView is a typed view of a map<string, AnyValue> column (AttributesType)
// whose keys and values have no nulls: the case of every attributes column
// the Builder makes.
type attrView struct {
	m     *array.Map
	moffs []int32 // n+1 entry offsets of the rows
	kOff  []int32
	kData []byte
	typ   []uint8
	sOff  []int32
	sData []byte
	ints  []uint64
	dbls  []uint64
	bools *array.Boolean
	bOff  []int32
	bData []byte

	nulls                                    bool // rows may be null
	hashInts, hashDbls, hashBools, hashBytes bool
}

func u64s[T int64 | float64](v []T) []uint64 {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&v[0])), len(v))
}

func anyNonZero(v []uint64) bool {
	// Mostly all zero (no entry of that type) and scanned whole: 8 values
	// a branch.
	for len(v) >= 8 {
		if v[0]|v[1]|v[2]|v[3]|v[4]|v[5]|v[6]|v[7] != 0 {
			return true
		}
		v = v[8:]
	}
	for _, x := range v {
		if x != 0 {
			return true
		}
	}
	return false
}

func newAttrView(t *array.Map) (v attrView, ok bool) {
	keys, ok1 := t.Keys().(*array.String)
	items, ok2 := t.Items().(*array.Struct)
	if !ok1 || !ok2 || keys.NullN() != 0 || items.NullN() != 0 || items.NumField() != 6 {
		return v, false
	}
	for i := range 6 {
		if items.Field(i).NullN() != 0 {
			return v, false
		}
	}
	typ, ok1 := items.Field(AnyType).(*array.Uint8)
	str, ok2 := items.Field(AnyStr).(*array.String)
	ints, ok3 := items.Field(AnyInt).(*array.Int64)
	dbls, ok4 := items.Field(AnyDouble).(*array.Float64)
	bools, ok5 := items.Field(AnyBool).(*array.Boolean)
	by, ok6 := items.Field(AnyBytes).(*array.Binary)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return v, false
	}
	off := t.Data().Offset()
	v = attrView{
		m:     t,
		nulls: t.NullN() > 0,
		moffs: t.Offsets()[off : off+t.Len()+1],
		kOff:  keys.ValueOffsets(), kData: keys.ValueBytes(),
		typ:  typ.Uint8Values(),
		sOff: str.ValueOffsets(), sData: str.ValueBytes(),
		ints: u64s(ints.Int64Values()), dbls: u64s(dbls.Float64Values()),
		bools: bools,
		bOff:  by.ValueOffsets(), bData: by.ValueBytes(),
	}
	// Hash only what varies: the rows' entries of the other children are
	// compared by eq.
	s, end := v.moffs[0], v.moffs[len(v.moffs)-1]
	v.hashInts = anyNonZero(v.ints[s:end])
	v.hashDbls = anyNonZero(v.dbls[s:end])
	v.hashBools = end > s && bitutil.CountSetBits(bools.Data().Buffers()[1].Bytes(), bools.Data().Offset()+int(s), int(end-s)) > 0
	v.hashBytes = v.bOff[end] != v.bOff[s]
	return v, true
}

// span returns the bytes of values s..end-1 of a string child.
func span(offs []int32, data []byte, s, end int32) []byte {
	o0 := offs[0]
	return data[offs[s]-o0 : offs[end]-o0]
}

// sameLens reports whether values a.. and b.. (cnt of them) have the same
// lengths.
func sameLens(offs []int32, a, b, cnt int32) bool {
	da, db := offs[a], offs[b]
	for j := int32(1); j < cnt; j++ {
		if offs[a+j]-da != offs[b+j]-db {
			return false
		}
	}
	return true
}

func mix(h, x uint64) uint64 {
	h ^= x
	h *= 0x9E3779B97F4A7C15
	return h ^ h>>29
}

func (v *attrView) hash(i int) uint64 {
	if v.nulls && v.m.IsNull(i) {
		return 0x51
	}
	s, end := v.moffs[i], v.moffs[i+1]
	h := uint64(end - s)
	if s == end {
		return mix(h, 0x52)
	}
	h = mix(h, maphash.Bytes(hashSeed, span(v.kOff, v.kData, s, end)))
	// (not the types: rows that differ only there are rare, and eq tells)
	h = mix(h, maphash.Bytes(hashSeed, span(v.sOff, v.sData, s, end)))
	if v.hashInts {
		h = mix(h, maphash.Bytes(hashSeed, unsafe.Slice((*byte)(unsafe.Pointer(&v.ints[s])), 8*int(end-s))))
	}
	if v.hashDbls {
		h = mix(h, maphash.Bytes(hashSeed, unsafe.Slice((*byte)(unsafe.Pointer(&v.dbls[s])), 8*int(end-s))))
	}
	if v.hashBytes {
		h = mix(h, maphash.Bytes(hashSeed, span(v.bOff, v.bData, s, end)))
	}
	if v.hashBools {
		for j := s; j < end; j++ {
			if v.bools.Value(int(j)) {
				h = mix(h, uint64(j-s))
			}
		}
	}
	return h
}

// eq reports whether rows a and b are the same attribute set: what equal
// appendKey encodings meant (null rows are all equal).
func (v *attrView) eq(a, b int32) bool {
	if v.nulls {
		na, nb := v.m.IsNull(int(a)), v.m.IsNull(int(b))
		if na || nb {
			return na == nb
		}
	}
	sa, ea := v.moffs[a], v.moffs[a+1]
	sb, eb := v.moffs[b], v.moffs[b+1]
	cnt := ea - sa
	if eb-sb != cnt {
		return false
	}
	if cnt == 0 {
		return true
	}
	if string(span(v.sOff, v.sData, sa, ea)) != string(span(v.sOff, v.sData, sb, eb)) ||
		string(v.typ[sa:ea]) != string(v.typ[sb:eb]) ||
		string(span(v.kOff, v.kData, sa, ea)) != string(span(v.kOff, v.kData, sb, eb)) ||
		!sameLens(v.kOff, sa, sb, cnt) ||
		!sameLens(v.sOff, sa, sb, cnt) {
		return false
	}
	if v.hashBytes && (string(span(v.bOff, v.bData, sa, ea)) != string(span(v.bOff, v.bData, sb, eb)) ||
		!sameLens(v.bOff, sa, sb, cnt)) {
		return false
	}
	// Children that are all zero over the column's entries need no
	// comparison (the hash flags say which are not).
	if v.hashInts && !slices.Equal(v.ints[sa:ea], v.ints[sb:eb]) ||
		v.hashDbls && !slices.Equal(v.dbls[sa:ea], v.dbls[sb:eb]) {
		return false
	}
	if v.hashBools {
		for j := range cnt {
			if v.bools.Value(int(sa+j)) != v.bools.Value(int(sb+j)) {
				return false
			}
		}
	}
	return true
}

// attrSets finds the distinct rows of an attributes column, at most limit:
// ids gets each row's id, the result is the first row of each distinct set,
// nil when there are more than limit; ok is false when t is not a column
// attrView handles.
func (e *encoder) attrSets(t *array.Map, limit int, ids []uint64) (reps []int32, ok bool) {
	v, ok := newAttrView(t)
	if !ok {
		return nil, false
	}
	tb := &e.setTab
	tb.reset(limit)
	// Sets come in sequences that repeat (the series of one pod, then of
	// the next; runs of one set): next[p] is 1 + the id of the row that
	// followed the last row of id p, tried first. A guess that eq confirms
	// is the id find would return, so the table and ids are the same.
	next := e.setNext[:0]
	defer func() { e.setNext = next[:0] }()
	n := t.Len()
	prev := -1
	for i := range n {
		var id uint32
		if prev >= 0 {
			if g := next[prev]; g != 0 && v.eq(tb.reps[g-1], int32(i)) {
				id = g - 1
				ids[i] = uint64(id)
				prev = int(id)
				continue
			}
		}
		id, ok := tb.find(v.hash(i), int32(i), limit, v.eq)
		if !ok {
			return nil, true
		}
		if int(id) == len(next) {
			next = append(next, 0)
		}
		if prev >= 0 {
			next[prev] = id + 1
		}
		ids[i] = uint64(id)
		prev = int(id)
	}
	return tb.reps, true
}
