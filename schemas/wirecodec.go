package schemas

// The column codec of record formats 2 and 3 (see README.md, "Wire format"). A table is
// its row count followed by its columns in schema order; every column is
// encoded by encoder.col and decoded by decoder.col from the data type the
// schema gives, so the wire carries no type information. The whole payload is
// compressed afterwards as one zstd frame.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Validity modes.
const (
	nullNone = 0 // no nulls: no bitmap
	nullAll  = 1 // all null: no bitmap
	nullSome = 2 // bitmap of ceil(n/8) bytes follows
)

// Integer modes.
const (
	intConst     = 0 // uvarint value
	intFOR       = 1 // width byte, uvarint base, width byte planes of (v - base)
	intDelta     = 2 // width byte, uvarint first, width byte planes of zigzag(v[i] - v[i-1]), i >= 1
	intFORBits   = 3 // as intFOR, but the width is in bits and the values are bit packed, LSB first
	intDeltaBits = 4 // as intDelta, bit packed
)

// Float modes.
const (
	floatBits = 0 // ints of the IEEE bits
	floatDec  = 1 // exponent byte e, ints of m (v == float64(m) / 10^e), exceptions
)

// String, binary and map modes.
const (
	seqPlain = 0 // lengths, then the content
	seqDict  = 1 // distinct count k, the k distinct values (plain), ids
)

var errWire = errors.New("corrupt value")

var pow10 = func() (p [19]float64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return
}()

// ---------------------------------------------------------------- encoding

type encoder struct {
	out     []byte
	z       []byte // the compressed value
	u64     []uint64
	f64     []float64
	key     []byte
	mem     memory.Allocator
	ids     []uint64 // string ids of a dictionary (idScratch)
	strNext []uint32 // the successor guesses of strDict

	setIDs  []uint64 // row ids of an attribute-set table (mapCol)
	setNext []uint32 // the successor guesses of attrSets
	// known, when not nil, is the set of each row of the next map column
	// mapCol writes (WriteBatch: Batch.ItemAttrSets of the items'
	// attributes), used when numbered as attrSets numbers them.
	known []uint32

	strTab, setTab table
	txt            textEnc
}

func (e *encoder) uvarint(v uint64) { e.out = binary.AppendUvarint(e.out, v) }

func (e *encoder) scratch(n int) []uint64 {
	if cap(e.u64) < n {
		e.u64 = make([]uint64, n)
	}
	return e.u64[:n]
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }
func width(x uint64) int      { return (bits.Len64(x) + 7) / 8 }

type integer interface {
	uint8 | uint32 | uint64 | int32 | int64
}

// ints writes v (as many values as the decoder will ask for) with the
// narrowest of constant, frame of reference and delta coding, as byte planes:
// zstd then sees runs and repeats of each byte position, and its entropy coder
// spends ~nothing on the high bytes of small numbers.
func (e *encoder) ints(v []uint64) { intsOf(e, v) }

// intsOf is ints of the values uint64(x) of v (int32 sign extended).
func intsOf[T integer](e *encoder, v []T) {
	if len(v) == 0 {
		return
	}
	if constant(v) {
		e.out = append(e.out, intConst)
		e.uvarint(uint64(v[0]))
		return
	}
	v0 := uint64(v[0])
	mn, mx := v0, v0
	var dmax uint64
	prev := v0
	for _, y := range v[1:] {
		x := uint64(y)
		mn, mx = min(mn, x), max(mx, x)
		dmax = max(dmax, zigzag(int64(x-prev)))
		prev = x
	}
	base, rng := mn, mx-mn
	if mx >= 1<<63 {
		// Some values are negative as int64: their signed range may be
		// the narrower (below 2^63 the two are the same).
		smn, smx := int64(v0), int64(v0)
		for _, y := range v[1:] {
			smn, smx = min(smn, int64(uint64(y))), max(smx, int64(uint64(y)))
		}
		if r := uint64(smx - smn); r < rng {
			base, rng = uint64(smn), r
		}
	}
	bf, bd := bits.Len64(rng), bits.Len64(dmax)
	delta := bd < bf
	b := bf
	if delta {
		b = bd
	}
	// Byte planes keep byte-aligned repeats visible to zstd and cost nothing
	// on small skewed numbers; bit packing wins when the values are spread
	// over a width that wastes 4 bits or more of a byte multiple.
	if (b+7)/8*8-b >= 4 {
		if delta {
			e.out = append(e.out, intDeltaBits, byte(b))
			e.uvarint(v0)
		} else {
			e.out = append(e.out, intFORBits, byte(b))
			e.uvarint(base)
		}
		e.out = pack(e.out, v, b, delta, base)
		return
	}
	wf, wd := (bf+7)/8, (bd+7)/8
	if delta {
		e.out = append(e.out, intDelta, byte(wd))
		e.uvarint(v0)
		n := len(v) - 1
		at := len(e.out)
		e.out = grow(e.out, wd*n)[:at+wd*n]
		dst := e.out[at:]
		for i := 1; i < len(v); i++ {
			d := zigzag(int64(uint64(v[i]) - uint64(v[i-1])))
			for k := range wd {
				dst[k*n+i-1] = byte(d >> (8 * k))
			}
		}
		return
	}
	e.out = append(e.out, intFOR, byte(wf))
	e.uvarint(base)
	n := len(v)
	at := len(e.out)
	e.out = grow(e.out, wf*n)[:at+wf*n]
	dst := e.out[at:]
	switch wf {
	case 1:
		dst = dst[:n]
		for i, x := range v {
			dst[i] = byte(uint64(x) - base)
		}
	case 2:
		lo, hi := dst[:n], dst[n:2*n]
		for i, x := range v {
			d := uint64(x) - base
			lo[i], hi[i] = byte(d), byte(d>>8)
		}
	default:
		// Plane by plane: a tight loop each.
		for k := range wf {
			p, sh := dst[k*n:(k+1)*n], 8*k
			for i, x := range v {
				p[i] = byte((uint64(x) - base) >> sh)
			}
		}
	}
}

// pack appends the values of b bits (1..64), LSB first: zigzag(v[i]-v[i-1])
// for i >= 1 (delta) or v[i]-base.
func pack[T integer](out []byte, v []T, b int, delta bool, base uint64) []byte {
	var acc uint64
	have := 0
	n := len(v)
	if delta {
		n--
	}
	out = grow(out, (n*b+7)/8+8)
	// A full acc is written and keeps the bits of x that did not fit
	// (x >> b is 0, also for b = 64).
	if delta {
		prev := uint64(v[0])
		for _, y := range v[1:] {
			x := zigzag(int64(uint64(y) - prev))
			prev = uint64(y)
			acc |= x << have
			if have += b; have >= 64 {
				out = binary.LittleEndian.AppendUint64(out, acc)
				have -= 64
				acc = x >> (b - have)
			}
		}
	} else {
		for _, y := range v {
			x := uint64(y) - base
			acc |= x << have
			if have += b; have >= 64 {
				out = binary.LittleEndian.AppendUint64(out, acc)
				have -= 64
				acc = x >> (b - have)
			}
		}
	}
	for ; have > 0; have -= 8 {
		out = append(out, byte(acc))
		acc >>= 8
	}
	return out
}

// decimal returns m with float64(m)/10^e == v bit for bit.
func decimal(v float64, e int) (int64, bool) {
	x := v * pow10[e]
	if !(math.Abs(x) < 1<<53) {
		return 0, false
	}
	m := int64(math.Round(x))
	return m, math.Float64bits(float64(m)/pow10[e]) == math.Float64bits(v)
}

// floats writes v as decimals (integers with a common power-of-ten exponent,
// the idea of ALP) when most values are, with the others as exceptions;
// otherwise as their bits.
func (e *encoder) floats(v []float64) {
	if len(v) == 0 {
		return
	}
	if constant(u64s(v)) {
		// The same choices and bytes as for all of v: one sample, no
		// exceptions or all, a constant.
		v = v[:1]
	}
	step := max(1, len(v)/256)
	best, bestExc, sample := 0, math.MaxInt, 0
	for x := range len(pow10) {
		exc := 0
		sample = 0
		for i := 0; i < len(v); i += step {
			sample++
			if _, ok := decimal(v[i], x); !ok {
				exc++
			}
		}
		if exc < bestExc {
			best, bestExc = x, exc
		}
		if exc == 0 {
			break
		}
	}
	if bestExc*4 > sample {
		u := e.scratch(len(v))
		for i, x := range v {
			u[i] = math.Float64bits(x)
		}
		e.out = append(e.out, floatBits)
		e.ints(u)
		return
	}
	u := e.scratch(len(v))
	var excPos, excBits []uint64
	last := int64(0)
	for i, x := range v {
		m, ok := decimal(x, best)
		if !ok {
			excPos = append(excPos, uint64(i))
			excBits = append(excBits, math.Float64bits(x))
			m = last
		}
		u[i], last = uint64(m), m
	}
	e.out = append(e.out, floatDec, byte(best))
	e.ints(u)
	e.uvarint(uint64(len(excPos)))
	e.ints(excPos)
	e.ints(excBits)
}

func (e *encoder) validity(a arrow.Array) {
	n := a.Len()
	switch a.NullN() {
	case 0:
		e.out = append(e.out, nullNone)
	case n:
		e.out = append(e.out, nullAll)
	default:
		e.out = append(e.out, nullSome)
		e.out = appendBits(e.out, a.NullBitmapBytes(), a.Data().Offset(), n)
	}
}

// constant reports whether all of v (not empty) are equal. Most columns
// it sees are constant (absent fields: zeros, empty lists) and scanned
// whole: blocks of 8 without a branch per value.
func constant[T integer](v []T) bool {
	x := v[0]
	for len(v) >= 8 {
		d := (v[0] ^ x) | (v[1] ^ x) | (v[2] ^ x) | (v[3] ^ x) |
			(v[4] ^ x) | (v[5] ^ x) | (v[6] ^ x) | (v[7] ^ x)
		if d != 0 {
			return false
		}
		v = v[8:]
	}
	for _, y := range v {
		if y != x {
			return false
		}
	}
	return true
}

// appendBits appends bits off..off+n-1 of bm (LSB first) as ceil(n/8)
// bytes, the bits past n zero.
func appendBits(out []byte, bm []byte, off, n int) []byte {
	nb := int(bitutil.BytesForBits(int64(n)))
	if off%8 == 0 {
		out = append(out, bm[off/8:off/8+nb]...)
	} else {
		at := len(out)
		out = append(out, make([]byte, nb)...)
		bitutil.CopyBitmap(bm, off, n, out[at:], 0)
	}
	if r := n % 8; r != 0 {
		out[len(out)-1] &= byte(1)<<r - 1
	}
	return out
}

func (e *encoder) col(a arrow.Array) error {
	e.validity(a)
	switch t := a.(type) {
	case *array.Uint8:
		intsOf(e, t.Uint8Values())
	case *array.Uint32:
		intsOf(e, t.Uint32Values())
	case *array.Uint64:
		e.ints(t.Uint64Values())
	case *array.Int32:
		intsOf(e, t.Int32Values())
	case *array.Int64:
		intsOf(e, t.Int64Values())
	case *array.Float64:
		e.floats(t.Float64Values())
	case *array.Boolean:
		var bm []byte
		if b := t.Data().Buffers()[1]; b != nil {
			bm = b.Bytes()
		}
		e.out = appendBits(e.out, bm, t.Data().Offset(), t.Len())
	case *array.String:
		e.binary(t.ValueOffsets(), t.ValueBytes(), true)
	case *array.Binary:
		e.binary(t.ValueOffsets(), t.ValueBytes(), false)
	case *array.Struct:
		for i := range t.NumField() {
			if err := e.col(t.Field(i)); err != nil {
				return err
			}
		}
	case *array.Map:
		return e.mapCol(t)
	case *array.List:
		return e.list(t)
	default:
		return fmt.Errorf("%w: cannot encode a column of type %s", ErrSchema, a.DataType())
	}
	return nil
}

func (e *encoder) lengths(offs []int32) {
	if n := len(offs) - 1; n > 0 && offs[n] == offs[0] {
		// All empty (a list field no item has): the bytes of ints of n
		// zeros, without making them.
		e.out = append(e.out, intConst, 0)
		return
	}
	u := e.scratch(len(offs) - 1)
	for i := range u {
		u[i] = uint64(offs[i+1] - offs[i])
	}
	e.ints(u)
}

// binary writes n = len(offs)-1 strings: dictionary coded when at most a
// quarter of them are distinct, else as templated text when text is set and
// that applies (wiretext.go), else plainly.
func (e *encoder) binary(offs []int32, data []byte, text bool) {
	n := len(offs) - 1
	if n == 0 {
		e.out = append(e.out, seqPlain)
		return
	}
	o0 := offs[0]
	if offs[n] == o0 {
		// All empty (a field no item has): the bytes of the dictionary
		// of the one value "" below, without finding it.
		e.out = append(e.out, seqDict, 1, intConst, 0, intConst, 0)
		return
	}
	ids := e.idScratch(n)
	var order []int32
	// Long strings whose first 64 are mostly distinct (log bodies) are not
	// worth hashing all for a dictionary: they go to text straight away.
	if !text || n <= 64 || int(offs[n]-o0) < minTextLen*n || e.strDict(offs[:65], data, 17, ids) != nil {
		order = e.strDict(offs, data, n/4+1, ids)
	}
	if order == nil {
		if text && e.text(offs, data) {
			return
		}
		e.out = append(e.out, seqPlain)
		e.lengths(offs)
		e.out = append(e.out, data[:offs[n]-o0]...)
		return
	}
	e.out = append(e.out, seqDict)
	e.uvarint(uint64(len(order)))
	u := e.scratch(len(order))
	total := 0
	for k, i := range order {
		l := offs[i+1] - offs[i]
		u[k] = uint64(l)
		total += int(l)
	}
	e.ints(u)
	e.out = grow(e.out, total)
	for _, i := range order {
		e.out = append(e.out, data[offs[i]-o0:offs[i+1]-o0]...)
	}
	e.ints(ids)
}

// grow makes room for n more bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		b = append(b[:cap(b)], make([]byte, n+cap(b)/2)...)[:len(b)]
	}
	return b
}

func (e *encoder) list(t *array.List) error {
	offs := t.Offsets()[t.Data().Offset() : t.Data().Offset()+t.Len()+1]
	e.lengths(offs)
	child := array.NewSlice(t.ListValues(), int64(offs[0]), int64(offs[len(offs)-1]))
	defer child.Release()
	return e.col(child)
}

// mapCol writes a map column either plainly or, when at most half of its rows
// are distinct, as a table of the distinct rows and a row id per row.
// Attribute sets repeat across metrics, scopes and requests, so this is
// where most of the bytes of a batch go away.
func (e *encoder) mapCol(t *array.Map) error {
	n := t.Len()
	if n > 1 {
		// ids is e.ids, taken for the time of this call (the columns below
		// use it too).
		if cap(e.setIDs) < n {
			e.setIDs = make([]uint64, n)
		}
		ids := e.setIDs[:n]
		e.setIDs = nil
		defer func() { e.setIDs = ids[:0] }()
		reps, ok := e.knownSets(n, ids)
		if !ok {
			reps = e.findSets(t, ids)
		}
		if reps != nil {
			e.out = append(e.out, seqDict)
			e.uvarint(uint64(len(reps)))
			// The runs live in e.scratch until Take is done with them.
			rs := runsIn(e.scratch(len(reps)))
			for _, i := range reps {
				rs = appendRow(rs, i)
			}
			d := Take(e.mem, t.Data(), rs, nil)
			dist := array.NewMapData(d)
			d.Release()
			e.validity(dist)
			err := e.mapPlain(dist)
			dist.Release()
			e.ints(ids)
			return err
		}
	}
	return e.mapPlain(t)
}

// setTable writes the items' attributes of a batch that holds them as a
// table of distinct sets (Batch.ItemAttrSetTable), row i being table row
// sets[i]: as mapCol writes the column of those rows. When the table is
// numbered in order of first appearance and has at most half as many
// rows, it is the table mapCol would take out of that column; otherwise
// the column is made (Take) and written as any.
func (e *encoder) setTable(table arrow.Array, sets []uint32) error {
	t, ok := table.(*array.Map)
	if !ok {
		return fmt.Errorf("%w: write batch: items' attribute set table is %s", ErrSchema, table.DataType())
	}
	n := len(sets)
	first := 0 // sets numbered so far, in order of first appearance
	for _, s := range sets {
		switch {
		case int(s) < first:
		case int(s) == first && first < t.Len():
			first++
		default:
			first = -1
		}
		if first < 0 {
			break
		}
	}
	if n > 1 && first == t.Len() && 2*first <= n {
		ids := e.setIDs[:0]
		for _, s := range sets {
			ids = append(ids, uint64(s))
		}
		e.setIDs = nil
		defer func() { e.setIDs = ids[:0] }()
		e.setsValidity(t, sets)
		e.out = append(e.out, seqDict)
		e.uvarint(uint64(first))
		e.validity(t)
		if err := e.mapPlain(t); err != nil {
			return err
		}
		e.ints(ids)
		return nil
	}
	rs := runsIn(e.scratch(n))
	for _, s := range sets {
		if int(s) >= t.Len() {
			return fmt.Errorf("%w: write batch: items' attribute set %d of a table of %d", ErrSchema, s, t.Len())
		}
		rs = appendRow(rs, int32(s))
	}
	d := Take(e.mem, t.Data(), rs, nil)
	col := array.NewMapData(d)
	d.Release()
	defer col.Release()
	return e.col(col)
}

// setsValidity is validity of the column whose row i is row sets[i] of t.
func (e *encoder) setsValidity(t arrow.Array, sets []uint32) {
	nulls := 0
	if t.NullN() > 0 {
		for _, s := range sets {
			if t.IsNull(int(s)) {
				nulls++
			}
		}
	}
	switch nulls {
	case 0:
		e.out = append(e.out, nullNone)
	case len(sets):
		e.out = append(e.out, nullAll)
	default:
		bm := make([]byte, bitutil.BytesForBits(int64(len(sets))))
		for i, s := range sets {
			if t.IsValid(int(s)) {
				bitutil.SetBit(bm, i)
			}
		}
		e.out = append(e.out, nullSome)
		e.out = appendBits(e.out, bm, 0, len(sets))
	}
}

// findSets finds the distinct rows of map column t, giving each row's id
// in ids: the first row of each set, or nil when more than half of the
// rows are distinct (the column is then written plainly).
func (e *encoder) findSets(t *array.Map, ids []uint64) []int32 {
	reps, ok := e.attrSets(t, t.Len()/2, ids)
	if !ok {
		reps = e.mapSetsGeneric(t, t.Len()/2, ids)
	}
	return reps
}

// knownSets is attrSets from e.known, the sets of the column's n rows as
// the batch holds them (Batch.ItemAttrSets): ok when they are numbered in
// order of first appearance, as attrSets numbers them, so that the record
// is the same byte for byte. It takes e.known.
func (e *encoder) knownSets(n int, ids []uint64) (reps []int32, ok bool) {
	known := e.known
	e.known = nil
	if len(known) != n {
		return nil, false
	}
	reps = e.setTab.reps[:0]
	for i, s := range known {
		switch {
		case int(s) < len(reps):
		case int(s) == len(reps):
			reps = append(reps, int32(i))
		default:
			return nil, false // not numbered by first appearance
		}
		ids[i] = uint64(s)
	}
	e.setTab.reps = reps
	if len(reps) > n/2 {
		return nil, true // more than half distinct: plain, as attrSets says
	}
	return reps, true
}

// mapSetsGeneric is attrSets for any map column, through appendKey: nil
// when there are more than limit sets.
func (e *encoder) mapSetsGeneric(t *array.Map, limit int, ids []uint64) []int32 {
	n := t.Len()
	keys, items := t.Keys(), t.Items()
	sets := make(map[string]uint32)
	var reps []int32
	for i := range n {
		k := e.key[:0]
		if t.IsNull(i) {
			k = append(k, 0)
		} else {
			k = append(k, 1)
			s, end := t.ValueOffsets(i)
			for j := int(s); j < int(end); j++ {
				k = appendKey(appendKey(k, keys, j), items, j)
			}
		}
		e.key = k
		id, ok := sets[string(k)]
		if !ok {
			if len(reps) >= limit {
				return nil
			}
			id = uint32(len(reps))
			sets[string(k)] = id
			reps = append(reps, int32(i))
		}
		ids[i] = uint64(id)
	}
	return reps
}

func (e *encoder) mapPlain(t *array.Map) error {
	e.out = append(e.out, seqPlain)
	return e.list(t.List)
}

// appendKey appends an encoding of row j of a that tells apart any two
// different values of the same type.
func appendKey(k []byte, a arrow.Array, j int) []byte {
	if a.IsNull(j) {
		return append(k, 0)
	}
	switch t := a.(type) {
	case *array.Uint8:
		return append(k, 1, t.Value(j))
	case *array.Uint32:
		return binary.AppendUvarint(append(k, 1), uint64(t.Value(j)))
	case *array.Uint64:
		return binary.AppendUvarint(append(k, 1), t.Value(j))
	case *array.Int32:
		return binary.AppendUvarint(append(k, 1), uint64(t.Value(j)))
	case *array.Int64:
		return binary.AppendUvarint(append(k, 1), uint64(t.Value(j)))
	case *array.Float64:
		return binary.LittleEndian.AppendUint64(append(k, 1), math.Float64bits(t.Value(j)))
	case *array.Boolean:
		if t.Value(j) {
			return append(k, 2)
		}
		return append(k, 1)
	case *array.String:
		v := t.Value(j)
		return append(binary.AppendUvarint(append(k, 1), uint64(len(v))), v...)
	case *array.Binary:
		v := t.Value(j)
		return append(binary.AppendUvarint(append(k, 1), uint64(len(v))), v...)
	case *array.Struct:
		k = append(k, 1)
		for i := range t.NumField() {
			k = appendKey(k, t.Field(i), j)
		}
		return k
	case *array.Map:
		s, end := t.ValueOffsets(j)
		k = binary.AppendUvarint(append(k, 1), uint64(end-s))
		for i := int(s); i < int(end); i++ {
			k = appendKey(appendKey(k, t.Keys(), i), t.Items(), i)
		}
		return k
	case *array.List:
		s, end := t.ValueOffsets(j)
		k = binary.AppendUvarint(append(k, 1), uint64(end-s))
		for i := int(s); i < int(end); i++ {
			k = appendKey(k, t.ListValues(), i)
		}
		return k
	}
	panic(fmt.Sprintf("schemas: appendKey of %s", a.DataType()))
}

// ---------------------------------------------------------------- buffers

func newBuf(mem memory.Allocator, size int) *memory.Buffer {
	b := memory.NewResizableBuffer(mem)
	b.Resize(size)
	return b
}

// newFullBuf is newBuf for a buffer its caller writes whole, every byte of
// size, before anything reads it: a recycled buffer is then not cleared
// first (clearing was a tenth of a sink's CPU). A poisoned pool hands its
// poison out, so a caller that leaves bytes unwritten fails the tests.
func newFullBuf(mem memory.Allocator, size int) *memory.Buffer { return arrowpool.NewBuffer(mem, size) }

func castBytes[T any](b []byte) []T {
	var z T
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/int(unsafe.Sizeof(z)))
}

// ---------------------------------------------------------------- decoding

// maxDecodeElems bounds the values one ReadBatch may materialise (a corrupt
// value must not make us allocate without limit).
var maxDecodeElems = 1 << 27

type decoder struct {
	b      []byte
	err    error
	mem    memory.Allocator
	budget int
	depth  int
	format byte // the record format: 2 or 3
	last   byte
	u64    []uint64
	txt    *textScratch // see text
	// sets, when not nil, receives the row ids of the next top-level map
	// column stored as distinct sets (decodeTables: the items' attributes).
	sets *[]uint32
	// table, when not nil with sets, receives the table of distinct sets
	// itself, and the column is left with null rows (ReadBatchSets).
	table *arrow.Array
	// z is the zeros of the table being read: the buffers of columns
	// stored as a constant zero (the fields a table's rows do not use, a
	// gauge's count, sum and bucket lists) and of columns all null are
	// slices of it, made once, rather than buffers filled each.
	z *Zeros
}

// zeroInts reads the ints of n > 0 values when they are the constant 0
// (see intsOf), and reports whether they were.
func (d *decoder) zeroInts(n int) bool {
	if n > 0 && len(d.b) >= 2 && d.b[0] == intConst && d.b[1] == 0 {
		d.b = d.b[2:]
		return true
	}
	return false
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %w: "+format, append([]any{ErrSchema, errWire}, args...)...)
	}
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || n > len(d.b) {
		d.fail("truncated")
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

// count reads a count and charges it to the budget.
func (d *decoder) count() int {
	v := d.uvarint()
	d.charge(v)
	if d.err != nil {
		return 0
	}
	return int(v)
}

func (d *decoder) charge(n uint64) {
	if n > uint64(d.budget) {
		d.fail("too many values")
		return
	}
	d.budget -= int(n)
}

func (d *decoder) scratch(n int) []uint64 {
	if cap(d.u64) < n {
		d.u64 = make([]uint64, n)
	}
	return d.u64[:n]
}

// ints reads len(v) values into v.
func (d *decoder) ints(v []uint64) {
	if len(v) == 0 || d.err != nil {
		return
	}
	switch d.byte() {
	case intConst:
		c := d.uvarint()
		for i := range v {
			v[i] = c
		}
	case intFOR:
		w := int(d.byte())
		base := d.uvarint()
		if w > 8 {
			d.fail("int width %d", w)
			return
		}
		n := len(v)
		p := d.bytes(w * n)
		if d.err != nil {
			return
		}
		switch w {
		case 1:
			for i := range v {
				v[i] = base + uint64(p[i])
			}
		case 2:
			for i := range v {
				v[i] = base + (uint64(p[i]) | uint64(p[n+i])<<8)
			}
		default:
			for i := range v {
				x := uint64(0)
				for k := range w {
					x |= uint64(p[k*n+i]) << (8 * k)
				}
				v[i] = base + x
			}
		}
	case intDelta:
		w := int(d.byte())
		first := d.uvarint()
		if w > 8 {
			d.fail("int width %d", w)
			return
		}
		n := len(v) - 1
		p := d.bytes(w * n)
		if d.err != nil {
			return
		}
		v[0] = first
		for i := 1; i < len(v); i++ {
			x := uint64(0)
			for k := range w {
				x |= uint64(p[k*n+i-1]) << (8 * k)
			}
			v[i] = v[i-1] + uint64(unzigzag(x))
		}
	case intFORBits:
		d.last = intFORBits
		d.unpackInts(v)
	case intDeltaBits:
		d.last = intDeltaBits
		d.unpackInts(v)
	default:
		d.fail("int mode")
	}
}

// unpackInts reads the rest of an intFORBits or intDeltaBits value.
func (d *decoder) unpackInts(v []uint64) {
	delta := d.last == intDeltaBits
	b := int(d.byte())
	first := d.uvarint()
	if b < 1 || b > 64 {
		d.fail("int width %d", b)
		return
	}
	n := len(v)
	if delta {
		n--
	}
	p := d.bytes((n*b + 7) / 8)
	if d.err != nil {
		return
	}
	mask := uint64(1)<<b - 1
	if b == 64 {
		mask = ^uint64(0)
	}
	out := v
	if delta {
		out = v[1:]
	}
	pos := 0
	for i := range out {
		byteAt, sh := pos>>3, pos&7
		var x uint64
		if byteAt+8 <= len(p) {
			x = binary.LittleEndian.Uint64(p[byteAt:]) >> sh
			if sh+b > 64 {
				x |= uint64(p[byteAt+8]) << (64 - sh)
			}
		} else {
			for k := 0; byteAt+k < len(p) && k < 9; k++ {
				if s := 8*k - sh; s >= 0 {
					x |= uint64(p[byteAt+k]) << s
				} else {
					x |= uint64(p[byteAt+k]) >> -s
				}
			}
		}
		out[i] = x & mask
		pos += b
	}
	if delta {
		v[0] = first
		for i := 1; i < len(v); i++ {
			v[i] = v[i-1] + uint64(unzigzag(v[i]))
		}
		return
	}
	for i := range v {
		v[i] += first
	}
}

func (d *decoder) fixed(n, size int, put func(out []byte, v []uint64)) *memory.Buffer {
	if d.zeroInts(n) {
		return d.z.slice(d.mem, n*size)
	}
	v := d.scratch(n)
	d.ints(v)
	if d.err != nil {
		return nil
	}
	b := newFullBuf(d.mem, n*size)
	put(b.Bytes(), v)
	return b
}

func putInts[T uint8 | uint32 | uint64 | int32 | int64](out []byte, v []uint64) {
	o := castBytes[T](out)
	for i, x := range v {
		o[i] = T(x)
	}
}

func (d *decoder) floats(n int) *memory.Buffer {
	if n == 0 {
		return newBuf(d.mem, 0)
	}
	mode := d.byte()
	switch mode {
	case floatBits:
		return d.fixed(n, 8, putInts[uint64])
	case floatDec:
	default:
		d.fail("float mode")
		return nil
	}
	e := int(d.byte())
	if e >= len(pow10) {
		d.fail("float exponent")
		return nil
	}
	// The values; none made when they are all 0 (the shared zeros then
	// serve, unless exceptions are to be written over them).
	var b *memory.Buffer
	if !d.zeroInts(n) {
		v := d.scratch(n)
		d.ints(v)
		if d.err != nil {
			return nil
		}
		b = newFullBuf(d.mem, n*8)
		o := arrow.Float64Traits.CastFromBytes(b.Bytes())
		p := pow10[e]
		for i, m := range v {
			o[i] = float64(int64(m)) / p
		}
	}
	nexc := d.count()
	if nexc > n {
		d.fail("exceptions")
	}
	switch {
	case d.err != nil:
		if b != nil {
			b.Release()
		}
		return nil
	case nexc == 0 && b == nil:
		return d.z.slice(d.mem, n*8)
	case nexc == 0:
		return b
	case b == nil:
		b = newBuf(d.mem, n*8) // cleared
	}
	o := arrow.Float64Traits.CastFromBytes(b.Bytes())
	pos := make([]uint64, nexc)
	d.ints(pos)
	bitsv := make([]uint64, nexc)
	d.ints(bitsv)
	for k, i := range pos {
		if i >= uint64(n) {
			d.fail("exception position")
			break
		}
		o[i] = math.Float64frombits(bitsv[k])
	}
	if d.err != nil {
		b.Release()
		return nil
	}
	return b
}

// lengths reads n lengths and returns the offsets buffer and the total.
func (d *decoder) lengths(n int) (*memory.Buffer, int) {
	if d.zeroInts(n) { // every row empty
		return d.z.slice(d.mem, 4*(n+1)), 0
	}
	v := d.scratch(n)
	d.ints(v)
	if d.err != nil {
		return nil, 0
	}
	b := newFullBuf(d.mem, 4*(n+1))
	o := arrow.Int32Traits.CastFromBytes(b.Bytes())
	o[0] = 0
	total := uint64(0)
	for i, l := range v {
		total += l
		if l > math.MaxInt32 || total > math.MaxInt32 {
			d.fail("length")
			b.Release()
			return nil, 0
		}
		o[i+1] = int32(total)
	}
	d.charge(total)
	if d.err != nil {
		b.Release()
		return nil, 0
	}
	return b, int(total)
}

func releaseAll(bufs []*memory.Buffer, children []arrow.ArrayData) {
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	for _, c := range children {
		if c != nil {
			c.Release()
		}
	}
}

// col decodes a column of type dt and n rows.
func (d *decoder) col(dt arrow.DataType, n int) arrow.ArrayData {
	if d.err != nil {
		return nil
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > 32 {
		d.fail("nesting")
		return nil
	}
	var valid *memory.Buffer
	nulls := 0
	switch d.byte() {
	case nullNone:
	case nullAll:
		nulls = n
		valid = d.z.slice(d.mem, int(bitutil.BytesForBits(int64(n))))
	case nullSome:
		p := d.bytes(int(bitutil.BytesForBits(int64(n))))
		if d.err != nil {
			return nil
		}
		valid = newBuf(d.mem, len(p))
		copy(valid.Bytes(), p)
		nulls = n - bitutil.CountSetBits(p, 0, n)
	default:
		d.fail("validity mode")
		return nil
	}
	bufs := []*memory.Buffer{valid} // made at the size of the first: measured faster than room for three
	var children []arrow.ArrayData
	done := func() arrow.ArrayData {
		if d.err != nil {
			releaseAll(bufs, children)
			return nil
		}
		data := array.NewData(dt, n, bufs, children, nulls, 0)
		releaseAll(bufs, children)
		return data
	}
	switch dt.ID() {
	case arrow.UINT8:
		bufs = append(bufs, d.fixed(n, 1, putInts[uint8]))
	case arrow.UINT32:
		bufs = append(bufs, d.fixed(n, 4, putInts[uint32]))
	case arrow.UINT64:
		bufs = append(bufs, d.fixed(n, 8, putInts[uint64]))
	case arrow.INT32:
		bufs = append(bufs, d.fixed(n, 4, putInts[int32]))
	case arrow.INT64:
		bufs = append(bufs, d.fixed(n, 8, putInts[int64]))
	case arrow.FLOAT64:
		bufs = append(bufs, d.floats(n))
	case arrow.BOOL:
		p := d.bytes(int(bitutil.BytesForBits(int64(n))))
		if d.err == nil {
			b := newBuf(d.mem, len(p))
			copy(b.Bytes(), p)
			bufs = append(bufs, b)
		}
	case arrow.STRING, arrow.BINARY:
		ob, db := d.binary(n)
		bufs = append(bufs, ob, db)
		if dt.ID() == arrow.STRING && d.err == nil {
			d.checkUTF8(ob, db, n)
		}
	case arrow.STRUCT:
		// Fields would copy the slice of fields; the Data keeps children.
		st := dt.(*arrow.StructType)
		children = make([]arrow.ArrayData, 0, st.NumFields())
		for i := range st.NumFields() {
			children = append(children, d.col(st.Field(i).Type, n))
		}
	case arrow.LIST:
		ob, total := d.lengths(n)
		bufs = append(bufs, ob)
		children = append(children, d.col(dt.(*arrow.ListType).Elem(), total))
	case arrow.MAP:
		switch d.byte() {
		case seqPlain:
			ob, total := d.lengths(n)
			bufs = append(bufs, ob)
			entries := d.col(dt.(*arrow.MapType).Elem(), total)
			children = append(children, entries)
			if entries != nil && (entries.NullN() > 0 || entries.Children()[0].NullN() > 0) {
				d.fail("map entries or keys with nulls") // arrow's Map panics on them
			}
		case seqDict:
			releaseAll(bufs, nil)
			bufs = nil
			return d.dictCol(dt, n)
		default:
			d.fail("map mode")
		}
	default:
		d.fail("type %s", dt)
	}
	return done()
}

// dictCol reads k distinct rows and a row id per row, and gathers.
func (d *decoder) dictCol(dt arrow.DataType, n int) arrow.ArrayData {
	k := d.count()
	dist := d.col(dt, k)
	if dist == nil {
		return nil
	}
	defer dist.Release()
	v := d.scratch(n)
	d.ints(v)
	if d.err != nil {
		return nil
	}
	var sets []uint32
	if d.sets != nil && d.depth == 1 {
		sets = make([]uint32, n)
	}
	rs := runsIn(v) // each run written after the ids it replaces were read
	for i, x := range v {
		if x >= uint64(k) {
			d.fail("row id")
			return nil
		}
		if sets != nil {
			sets[i] = uint32(x)
		}
		rs = appendRow(rs, int32(x))
	}
	if sets != nil {
		*d.sets = sets
		if d.table != nil {
			*d.table = array.MakeFromData(dist)
			return d.nullMapRows(dist, n)
		}
	}
	// charge the expansion: rows times the average row size of the table
	a := array.MakeFromData(dist)
	defer a.Release()
	if m, ok := a.(*array.Map); ok && k > 0 {
		offs := m.Offsets()
		entries := uint64(0)
		for _, r := range rs {
			entries += uint64(offs[r[1]] - offs[r[0]])
		}
		d.charge(entries)
		if d.err != nil {
			return nil
		}
	}
	return Take(d.mem, dist, rs, nil)
}

// nullMapRows is a column of n null rows of the map type of table: its
// validity and offsets slices of the table's zeros, its entries table's
// sliced to none (MakeArrayOfNull allocated and cleared both, and built
// the entries' every child anew for every record).
func (d *decoder) nullMapRows(table arrow.ArrayData, n int) arrow.ArrayData {
	valid := d.z.slice(d.mem, int(bitutil.BytesForBits(int64(n))))
	offs := d.z.slice(d.mem, 4*(n+1))
	entries := array.NewSliceData(table.Children()[0], 0, 0)
	out := array.NewData(table.DataType(), n, []*memory.Buffer{valid, offs}, []arrow.ArrayData{entries}, n, 0)
	valid.Release()
	offs.Release()
	entries.Release()
	return out
}

// checkUTF8 fails the decoding when one of the n strings of offsets ob
// and data db is not UTF-8 (arrow's String requires it; a record a worker
// wrote never has one, a corrupt one may). ASCII data, the usual case, is
// one pass over the bytes.
func (d *decoder) checkUTF8(ob, db *memory.Buffer, n int) {
	data := db.Bytes()
	if otlpwire.IsASCII(data) {
		return
	}
	offs := arrow.Int32Traits.CastFromBytes(ob.Bytes())[:n+1]
	for i := range n {
		if !utf8.Valid(data[offs[i]:offs[i+1]]) {
			d.fail("string %d is not UTF-8", i)
			return
		}
	}
}

// binary reads n strings.
func (d *decoder) binary(n int) (*memory.Buffer, *memory.Buffer) {
	mode := d.byte()
	if n == 0 && mode == seqPlain {
		return newBuf(d.mem, 4), newBuf(d.mem, 0)
	}
	switch mode {
	case seqPlain:
		ob, total := d.lengths(n)
		p := d.bytes(total)
		if d.err != nil {
			if ob != nil {
				ob.Release()
			}
			return nil, nil
		}
		db := newFullBuf(d.mem, total)
		copy(db.Bytes(), p)
		return ob, db
	case seqDict:
	case seqText:
		if d.format < 3 {
			d.fail("string mode")
			return nil, nil
		}
		return d.text(n)
	default:
		d.fail("string mode")
		return nil, nil
	}
	k := d.count()
	lens := make([]uint64, k)
	d.ints(lens)
	doff := make([]int, k+1)
	for i, l := range lens {
		if l > uint64(len(d.b)) {
			d.fail("string length")
			return nil, nil
		}
		doff[i+1] = doff[i] + int(l)
	}
	dict := d.bytes(doff[k])
	v := d.scratch(n)
	d.ints(v)
	if d.err != nil {
		return nil, nil
	}
	total := 0
	for _, id := range v {
		if id >= uint64(k) {
			d.fail("string id")
			return nil, nil
		}
		total += doff[id+1] - doff[id]
		if total > math.MaxInt32 {
			d.fail("strings too long")
			return nil, nil
		}
	}
	d.charge(uint64(total) / 8)
	if d.err != nil {
		return nil, nil
	}
	ob := newFullBuf(d.mem, 4*(n+1))
	db := newFullBuf(d.mem, total)
	o := arrow.Int32Traits.CastFromBytes(ob.Bytes())
	out := db.Bytes()[:0]
	o[0] = 0
	for i, id := range v {
		out = append(out, dict[doff[id]:doff[id+1]]...)
		o[i+1] = int32(len(out))
	}
	return ob, db
}
