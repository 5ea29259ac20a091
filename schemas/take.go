package schemas

// Take is the one row gather of sluice: the column codec expands its
// dictionary-coded attribute columns with it, and the rule engine cuts the
// rows a rule keeps out of every column with it. It copies buffers run by
// run, one new buffer per buffer of the input, rather than slicing each run
// and concatenating (which allocates per run and per column) or calling
// arrow's compute.Take, which gathers row by row through its kernel
// machinery: on BenchmarkTake's shapes it took 2 to 7 times the
// instructions (21 where the expansion's rows merge into long runs), 3.5
// to 10 times the bytes and up to 30 times the allocations (arrow-go
// v18.8), and it would bring golang.org/x/sync, thrift and brotli into
// go.mod.
//
// Take lives here, not in a package of its own under internal/, because
// schemas may import nothing of ours but internal/otlpwire and
// internal/arrowpool (README.md, "How the parts may import each other").

import (
	"encoding/binary"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// rowIndex is the integer type of the rows of a run. Both are compiled
// separately (they differ in shape), so neither pays for the other.
type rowIndex interface{ int | int32 }

// Takeable reports whether Take supports arrays of type dt: every column
// type of the schemas and what they are built of, and any fixed-width type
// of whole bytes. Dictionaries, unions, run-end encoded, extension, view
// and 64-bit-offset list types are not.
func Takeable(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.NULL, arrow.BOOL, arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return true
	case arrow.STRUCT:
		for _, f := range dt.(*arrow.StructType).Fields() {
			if !Takeable(f.Type) {
				return false
			}
		}
		return true
	case arrow.LIST, arrow.MAP:
		return Takeable(dt.(arrow.ListLikeType).Elem())
	case arrow.FIXED_SIZE_LIST:
		return Takeable(dt.(*arrow.FixedSizeListType).Elem())
	case arrow.DICTIONARY, arrow.EXTENSION, arrow.DENSE_UNION, arrow.SPARSE_UNION, arrow.RUN_END_ENCODED:
		// (a dictionary's type is fixed width: that of its indexes)
		return false
	}
	fw, ok := dt.(arrow.FixedWidthDataType)
	return ok && fw.BitWidth() >= 8 && fw.BitWidth()%8 == 0
}

// Take returns the rows of d named by rs, in order, as new data allocated
// from mem. Run [lo, hi) stands for rows lo to hi-1 of d, counted from d's
// first row whatever its offset; runs may be empty, repeat rows and come in
// any order. An index list is runs of one row; as a run costs about what
// one row does, consecutive indexes are best merged into one run. d's type
// must be Takeable and the runs within d.
//
// The result is a new reference and holds no buffer of d, except when it
// has no rows: then it is a zero-length slice of d.
//
// With z (nil for none), a column, or a field of a struct column, whose
// rows of d are all null, or have no nulls and hold only zeros (values
// of 0, empty lists and strings), is taken without a gather: its buffers
// are slices of z's. The fields the rows of a table do not use (a gauge's
// count, sum, buckets and exemplars, ...) are most of its columns: a
// caller taking the rows of several columns passes one z for them all.
func Take[I rowIndex](mem memory.Allocator, d arrow.ArrayData, rs [][2]I, z *Zeros) arrow.ArrayData {
	n := 0
	for _, r := range rs {
		n += int(r[1] - r[0])
	}
	return takeRows(mem, d, rs, 0, n, z)
}

// takeRows is Take of n rows, with the rows of rs counted from row base of
// d: a struct's children are indexed from the struct's offset, which is
// passed down instead of shifting a copy of the runs.
func takeRows[I rowIndex](mem memory.Allocator, d arrow.ArrayData, rs [][2]I, base, n int, z *Zeros) arrow.ArrayData {
	dt := d.DataType()
	if n == 0 {
		return array.NewSliceData(d, 0, 0)
	}
	if dt.ID() == arrow.NULL {
		return array.NewData(dt, n, []*memory.Buffer{nil}, nil, n, 0)
	}
	if z != nil {
		if out := takeZeros(mem, d, n, z); out != nil {
			return out
		}
	}
	off := base + d.Offset()
	in := d.Buffers()
	valid, nulls := takeValidity(mem, d, rs, off, n)
	var bufs []*memory.Buffer
	var children []arrow.ArrayData
	switch dt.ID() {
	case arrow.BOOL:
		vals := newBuf(mem, int(bitutil.BytesForBits(int64(n))))
		takeBits(in[1].Bytes(), off, rs, vals.Bytes())
		bufs = []*memory.Buffer{valid, vals}
	case arrow.STRING, arrow.BINARY:
		o, data := takeVarBinary[int32](mem, in, off, rs, n)
		bufs = []*memory.Buffer{valid, o, data}
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		o, data := takeVarBinary[int64](mem, in, off, rs, n)
		bufs = []*memory.Buffer{valid, o, data}
	case arrow.STRUCT:
		bufs = []*memory.Buffer{valid}
		children = make([]arrow.ArrayData, len(d.Children()))
		for k, c := range d.Children() {
			children[k] = takeRows(mem, c, rs, off, n, z)
		}
	case arrow.LIST, arrow.MAP:
		o, crs, total := takeListOffsets(mem, in[1], off, rs, n)
		bufs = []*memory.Buffer{valid, o}
		children = []arrow.ArrayData{takeRows(mem, d.Children()[0], crs, 0, total, z)}
	case arrow.FIXED_SIZE_LIST:
		size := int(dt.(*arrow.FixedSizeListType).Len())
		// int runs: n*size child rows may pass int32.
		crs := make([][2]int, len(rs))
		for k, r := range rs {
			crs[k] = [2]int{(off + int(r[0])) * size, (off + int(r[1])) * size}
		}
		bufs = []*memory.Buffer{valid}
		children = []arrow.ArrayData{takeRows(mem, d.Children()[0], crs, 0, n*size, z)}
	default:
		var vals *memory.Buffer
		switch w := dt.(arrow.FixedWidthDataType).BitWidth() / 8; w {
		case 1:
			vals = takeFixed[uint8](mem, in[1], off, rs, n)
		case 2:
			vals = takeFixed[uint16](mem, in[1], off, rs, n)
		case 4:
			vals = takeFixed[uint32](mem, in[1], off, rs, n)
		case 8:
			vals = takeFixed[uint64](mem, in[1], off, rs, n)
		default:
			vals = takeWide(mem, in[1], w, off, rs, n)
		}
		bufs = []*memory.Buffer{valid, vals}
	}
	out := array.NewData(dt, n, bufs, children, nulls, 0)
	releaseAll(bufs, children)
	return out
}

// takeZeros is n rows of d taken when every row of d is null, or none is
// and all hold zeros (see Take): the buffers are slices of z's, the
// children of a list those of its first row (none). It returns nil for
// any other d, and for structs and booleans, whose fields are taken one by
// one and whose bits are few.
func takeZeros(mem memory.Allocator, d arrow.ArrayData, n int, z *Zeros) arrow.ArrayData {
	dt := d.DataType()
	in := d.Buffers()
	lo, hi := d.Offset(), d.Offset()+d.Len()
	nulls := d.NullN()
	if nulls < 0 { // not counted yet (a slice)
		nulls = 0
		if len(in) > 0 && in[0] != nil {
			nulls = d.Len() - bitutil.CountSetBits(in[0].Bytes(), lo, d.Len())
		}
	}
	var allNull bool
	switch nulls {
	case 0:
	case d.Len():
		allNull = true
	default:
		return nil
	}
	var bufs []*memory.Buffer
	var children []arrow.ArrayData
	switch dt.ID() {
	case arrow.BOOL, arrow.STRUCT, arrow.FIXED_SIZE_LIST:
		return nil
	case arrow.STRING, arrow.BINARY, arrow.LIST, arrow.MAP:
		// Empty rows: the offsets do not move (nor, all null, need to).
		if !allNull && in[1] != nil && in[1].Len() > 0 {
			o := castBytes[int32](in[1].Bytes())
			if o[lo] != o[hi] {
				return nil
			}
		}
		bufs = []*memory.Buffer{nil, z.slice(mem, 4*(n+1))}
		if dt.ID() == arrow.STRING || dt.ID() == arrow.BINARY {
			bufs = append(bufs, z.slice(mem, 0))
		} else {
			children = []arrow.ArrayData{array.NewSliceData(d.Children()[0], 0, 0)}
		}
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return nil
	default:
		w := dt.(arrow.FixedWidthDataType).BitWidth() / 8
		if !allNull && (in[1] == nil || !z.zero(mem, in[1].Bytes()[lo*w:hi*w])) {
			return nil
		}
		bufs = []*memory.Buffer{nil, z.slice(mem, n*w)}
	}
	nulls = 0
	if allNull {
		bufs[0], nulls = z.slice(mem, int(bitutil.BytesForBits(int64(n)))), n
	}
	out := array.NewData(dt, n, bufs, children, nulls, 0)
	releaseAll(bufs, children)
	return out
}

// takeValidity gathers d's validity bitmap; none when the rows taken have
// no nulls.
func takeValidity[I rowIndex](mem memory.Allocator, d arrow.ArrayData, rs [][2]I, off, n int) (*memory.Buffer, int) {
	in := d.Buffers()
	if len(in) == 0 || in[0] == nil || d.NullN() == 0 {
		return nil, 0
	}
	b := newBuf(mem, int(bitutil.BytesForBits(int64(n))))
	takeBits(in[0].Bytes(), off, rs, b.Bytes())
	nulls := n - bitutil.CountSetBits(b.Bytes(), 0, n)
	if nulls == 0 {
		b.Release()
		return nil, 0
	}
	return b, nulls
}

// takeBits gathers the bits of src into dst, every byte of which it writes.
// Bits are gathered in a word and stored a byte or a word at a time: the
// runs are short in both callers (a row of the dictionary expansion, the
// few entries of an attribute set), where bit by bit costs several times
// as much.
func takeBits[I rowIndex](src []byte, off int, rs [][2]I, dst []byte) {
	var acc uint64 // bits taken and not yet stored, the first in bit 0
	k, at := 0, 0  // their count (< 8 between runs); the byte of dst they go to
	for _, r := range rs {
		lo, cnt := off+int(r[0]), int(r[1]-r[0])
		switch {
		case cnt == 0:
			continue
		case cnt == 1:
			acc |= uint64(src[lo>>3]>>(lo&7)&1) << k
			k++
		case cnt >= 128:
			dst[at] = byte(acc)
			bitutil.CopyBitmap(src, lo, cnt, dst, 8*at+k)
			end := 8*at + k + cnt
			at, k, acc = end>>3, end&7, 0
			if k > 0 {
				acc = uint64(dst[at]) & (1<<k - 1)
			}
			continue
		default:
			for ; cnt > 56; cnt -= 56 { // k < 8: 56 more bits fit
				acc |= bitsAt(src, lo) & (1<<56 - 1) << k
				lo, k = lo+56, k+56
				at, acc, k = storeBits(dst, at, acc, k)
			}
			acc |= bitsAt(src, lo) & (1<<cnt - 1) << k
			k += cnt
		}
		if k >= 8 {
			at, acc, k = storeBits(dst, at, acc, k)
		}
	}
	for ; k > 0; k -= 8 {
		dst[at] = byte(acc)
		acc >>= 8
		at++
	}
}

// bitsAt returns at least 57 bits of src from bit i on (zeros past its end).
func bitsAt(src []byte, i int) uint64 {
	b := i >> 3
	if b+8 <= len(src) {
		return binary.LittleEndian.Uint64(src[b:]) >> (i & 7)
	}
	var x uint64
	for j, v := range src[b:] {
		x |= uint64(v) << (8 * j)
	}
	return x >> (i & 7)
}

// storeBits stores the whole bytes of the k bits of acc at dst[at:] and
// returns what is left. A word store may write past them: zeros, stored
// over later.
func storeBits(dst []byte, at int, acc uint64, k int) (int, uint64, int) {
	if at+8 <= len(dst) {
		binary.LittleEndian.PutUint64(dst[at:], acc)
		nb := k >> 3
		return at + nb, acc >> (8 * nb), k & 7
	}
	for ; k >= 8; k -= 8 {
		dst[at] = byte(acc)
		acc >>= 8
		at++
	}
	return at, acc, k
}

// takeFixed gathers values of T: typed, so that a short run (a row of the
// dictionary expansion, an attribute set's entries) is a few moves, not a
// call of memmove.
func takeFixed[T uint8 | uint16 | uint32 | uint64, I rowIndex](mem memory.Allocator, in *memory.Buffer, off int, rs [][2]I, n int) *memory.Buffer {
	var zero T
	b := newFullBuf(mem, n*int(unsafe.Sizeof(zero)))
	dst := castBytes[T](b.Bytes())
	src := castBytes[T](in.Bytes())[off:]
	at := 0
	for _, r := range rs {
		if r[1]-r[0] <= 4 {
			for _, v := range src[r[0]:r[1]] {
				dst[at] = v
				at++
			}
		} else {
			at += copy(dst[at:], src[r[0]:r[1]])
		}
	}
	return b
}

// takeWide gathers values of w bytes (fixed-size binary, decimals,
// intervals).
func takeWide[I rowIndex](mem memory.Allocator, in *memory.Buffer, w, off int, rs [][2]I, n int) *memory.Buffer {
	b := newFullBuf(mem, n*w)
	dst, src := b.Bytes(), in.Bytes()
	at := 0
	for _, r := range rs {
		at += copy(dst[at:], src[(off+int(r[0]))*w:(off+int(r[1]))*w])
	}
	return b
}

// takeVarBinary gathers the offsets and data of a string or binary array.
func takeVarBinary[O int32 | int64, I rowIndex](mem memory.Allocator, in []*memory.Buffer, off int, rs [][2]I, n int) (*memory.Buffer, *memory.Buffer) {
	var zero O
	ob := newFullBuf(mem, (n+1)*int(unsafe.Sizeof(zero)))
	dst := castBytes[O](ob.Bytes())
	var src []O
	if in[1] != nil {
		src = castBytes[O](in[1].Bytes())
	}
	if len(src) == 0 { // no offsets buffer: all rows empty
		clear(dst)
		return ob, newBuf(mem, 0)
	}
	src = src[off:]
	var size O
	for _, r := range rs {
		size += src[r[1]] - src[r[0]]
	}
	db := newFullBuf(mem, int(size))
	data := db.Bytes()
	var sd []byte
	if in[2] != nil {
		sd = in[2].Bytes()
	}
	dst[0] = 0
	at, pos := 1, O(0)
	for _, r := range rs {
		lo, hi := src[r[0]], src[r[1]]
		copy(data[pos:], sd[lo:hi])
		if r[1]-r[0] == 1 {
			pos += hi - lo
			dst[at] = pos
			at++
			continue
		}
		shift := pos - lo
		s := src[r[0]+1 : r[1]+1]
		d := dst[at : at+len(s)]
		for j, v := range s {
			d[j] = v + shift
		}
		at += len(s)
		pos += hi - lo
	}
	return ob, db
}

// takeListOffsets gathers the offsets of a list or map array, and returns
// the runs of child rows to take with them (adjacent ones merged) and
// their row count.
func takeListOffsets[I rowIndex](mem memory.Allocator, in *memory.Buffer, off int, rs [][2]I, n int) (*memory.Buffer, [][2]int32, int) {
	src := castBytes[int32](in.Bytes())[off:]
	ob := newFullBuf(mem, 4*(n+1))
	dst := castBytes[int32](ob.Bytes())
	dst[0] = 0
	// Counted first: most lists of a filtered column are empty or merge,
	// and an expansion's runs are many.
	m, end := 0, int32(-1)
	for _, r := range rs {
		if lo, hi := src[r[0]], src[r[1]]; hi > lo {
			if lo != end {
				m++
			}
			end = hi
		}
	}
	crs := make([][2]int32, 0, m)
	at, pos := 1, int32(0)
	for _, r := range rs {
		lo, hi := src[r[0]], src[r[1]]
		if r[1]-r[0] == 1 {
			dst[at] = pos + hi - lo
			at++
		} else {
			shift := pos - lo
			s := src[r[0]+1 : r[1]+1]
			d := dst[at : at+len(s)]
			for j, v := range s {
				d[j] = v + shift
			}
			at += len(s)
		}
		pos += hi - lo
		if hi > lo {
			if k := len(crs) - 1; k >= 0 && crs[k][1] == lo {
				crs[k][1] = hi
			} else {
				crs = append(crs, [2]int32{lo, hi})
			}
		}
	}
	return ob, crs, int(pos)
}

// appendRow appends row i to rs, extending the last run when i follows it.
func appendRow(rs [][2]int32, i int32) [][2]int32 {
	if k := len(rs) - 1; k >= 0 && rs[k][1] == i {
		rs[k][1]++
		return rs
	}
	return append(rs, [2]int32{i, i + 1})
}

// runsIn views scratch as room for len(scratch) runs of int32 rows, so that
// a caller holding a scratch of a uint64 per row (ids decoded, say) builds
// its runs there without allocating. Run k takes the place of scratch[k]:
// filled by appendRow from scratch's own values, it is written only after
// value k was read.
func runsIn(scratch []uint64) [][2]int32 {
	if len(scratch) == 0 {
		return nil
	}
	return unsafe.Slice((*[2]int32)(unsafe.Pointer(unsafe.SliceData(scratch))), len(scratch))[:0]
}
