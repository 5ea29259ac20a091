package columnar

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// This file cuts rows out of Arrow arrays by copying their buffers run by
// run: one new buffer per buffer of the input, instead of a slice per kept
// run and a Concatenate (which allocates per run and per column).

// takeable reports whether takeRuns supports arrays of type dt.
func takeable(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.NULL, arrow.BOOL, arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return true
	case arrow.STRUCT:
		for _, f := range dt.(*arrow.StructType).Fields() {
			if !takeable(f.Type) {
				return false
			}
		}
		return true
	case arrow.LIST, arrow.MAP:
		return takeable(dt.(arrow.ListLikeType).Elem())
	case arrow.FIXED_SIZE_LIST:
		return takeable(dt.(*arrow.FixedSizeListType).Elem())
	case arrow.DICTIONARY, arrow.EXTENSION, arrow.DENSE_UNION, arrow.SPARSE_UNION, arrow.RUN_END_ENCODED:
		return false
	}
	fw, ok := dt.(arrow.FixedWidthDataType)
	return ok && fw.BitWidth() >= 8 && fw.BitWidth()%8 == 0
}

// runsLen is the number of rows of rs.
func runsLen(rs [][2]int) int {
	n := 0
	for _, r := range rs {
		n += r[1] - r[0]
	}
	return n
}

// takeRuns returns the rows of d named by rs (row indices of d, before its
// offset), in order, as new data of n rows. d's type must be takeable.
// copyBits is bitutil.CopyBitmap without its two allocations for short runs
// (a filter that drops scattered rows copies many).
func copyBits(src []byte, srcOff, n int, dst []byte, dstOff int) {
	if n >= 128 {
		bitutil.CopyBitmap(src, srcOff, n, dst, dstOff)
		return
	}
	for i := range n {
		bitutil.SetBitTo(dst, dstOff+i, bitutil.BitIsSet(src, srcOff+i))
	}
}

func takeRuns(mem memory.Allocator, d arrow.ArrayData, rs [][2]int, n int) arrow.ArrayData {
	if n == 0 {
		return array.NewSliceData(d, 0, 0)
	}
	var bufs []*memory.Buffer
	newBuf := func(size int) *memory.Buffer {
		b := memory.NewResizableBuffer(mem)
		b.Resize(size)
		bufs = append(bufs, b)
		return b
	}
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	dt, off := d.DataType(), d.Offset()
	in := d.Buffers()

	// Validity.
	var valid *memory.Buffer
	nulls := 0
	if dt.ID() != arrow.NULL && len(in) > 0 && in[0] != nil && d.NullN() != 0 {
		valid = newBuf(int(bitutil.BytesForBits(int64(n))))
		vb := valid.Bytes()
		if len(vb) > 0 {
			vb[len(vb)-1] = 0
		}
		src, at := in[0].Bytes(), 0
		for _, r := range rs {
			copyBits(src, off+r[0], r[1]-r[0], vb, at)
			at += r[1] - r[0]
		}
		nulls = n - bitutil.CountSetBits(vb, 0, n)
		if nulls == 0 {
			valid = nil
		}
	}

	switch dt.ID() {
	case arrow.NULL:
		return array.NewData(dt, n, []*memory.Buffer{nil}, nil, n, 0)
	case arrow.BOOL:
		vals := newBuf(int(bitutil.BytesForBits(int64(n))))
		vb := vals.Bytes()
		if len(vb) > 0 {
			vb[len(vb)-1] = 0
		}
		src, at := in[1].Bytes(), 0
		for _, r := range rs {
			copyBits(src, off+r[0], r[1]-r[0], vb, at)
			at += r[1] - r[0]
		}
		return array.NewData(dt, n, []*memory.Buffer{valid, vals}, nil, nulls, 0)
	case arrow.STRING, arrow.BINARY:
		o, data := takeVarBinary[int32](newBuf, in, off, rs, n)
		return array.NewData(dt, n, []*memory.Buffer{valid, o, data}, nil, nulls, 0)
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		o, data := takeVarBinary[int64](newBuf, in, off, rs, n)
		return array.NewData(dt, n, []*memory.Buffer{valid, o, data}, nil, nulls, 0)
	case arrow.STRUCT:
		shifted := rs
		if off != 0 {
			shifted = make([][2]int, len(rs))
			for k, r := range rs {
				shifted[k] = [2]int{r[0] + off, r[1] + off}
			}
		}
		children := make([]arrow.ArrayData, len(d.Children()))
		for k, c := range d.Children() {
			children[k] = takeRuns(mem, c, shifted, n)
		}
		out := array.NewData(dt, n, []*memory.Buffer{valid}, children, nulls, 0)
		for _, c := range children {
			c.Release()
		}
		return out
	case arrow.LIST, arrow.MAP:
		src := arrow.Int32Traits.CastFromBytes(in[1].Bytes())[off:]
		ob := newBuf(arrow.Int32Traits.BytesRequired(n + 1))
		dst := arrow.Int32Traits.CastFromBytes(ob.Bytes())
		dst[0] = 0
		at, pos := 1, int32(0)
		var crs [][2]int
		for _, r := range rs {
			lo, hi := src[r[0]], src[r[1]]
			d := pos - lo
			for _, v := range src[r[0]+1 : r[1]+1] {
				dst[at] = v + d
				at++
			}
			pos += hi - lo
			if hi > lo {
				if k := len(crs) - 1; k >= 0 && crs[k][1] == int(lo) {
					crs[k][1] = int(hi)
				} else {
					crs = append(crs, [2]int{int(lo), int(hi)})
				}
			}
		}
		child := takeRuns(mem, d.Children()[0], crs, int(pos))
		defer child.Release()
		return array.NewData(dt, n, []*memory.Buffer{valid, ob}, []arrow.ArrayData{child}, nulls, 0)
	case arrow.FIXED_SIZE_LIST:
		size := int(dt.(*arrow.FixedSizeListType).Len())
		crs := make([][2]int, len(rs))
		for k, r := range rs {
			crs[k] = [2]int{(r[0] + off) * size, (r[1] + off) * size}
		}
		child := takeRuns(mem, d.Children()[0], crs, n*size)
		defer child.Release()
		return array.NewData(dt, n, []*memory.Buffer{valid}, []arrow.ArrayData{child}, nulls, 0)
	}
	// Fixed width.
	w := dt.(arrow.FixedWidthDataType).BitWidth() / 8
	vals := newBuf(n * w)
	vb := vals.Bytes()
	src, at := in[1].Bytes(), 0
	for _, r := range rs {
		at += copy(vb[at:], src[(off+r[0])*w:(off+r[1])*w])
	}
	return array.NewData(dt, n, []*memory.Buffer{valid, vals}, nil, nulls, 0)
}

// takeVarBinary gathers the offsets and data of a string or binary array.
func takeVarBinary[O int32 | int64](newBuf func(int) *memory.Buffer, in []*memory.Buffer, off int, rs [][2]int, n int) (*memory.Buffer, *memory.Buffer) {
	var src []O
	if in[1] != nil && in[1].Len() > 0 {
		src = unsafeCast[O](in[1].Bytes())[off:]
	}
	var size O
	if src != nil {
		for _, r := range rs {
			size += src[r[1]] - src[r[0]]
		}
	}
	var zero O
	w := int(unsafeSizeof(zero))
	ob := newBuf((n + 1) * w)
	dst := unsafeCast[O](ob.Bytes())
	db := newBuf(int(size))
	data := db.Bytes()
	dst[0] = 0
	if src == nil {
		clear(dst)
		return ob, db
	}
	var sd []byte
	if in[2] != nil {
		sd = in[2].Bytes()
	}
	at, pos := 1, O(0)
	for _, r := range rs {
		lo, hi := src[r[0]], src[r[1]]
		d := pos - lo
		for _, v := range src[r[0]+1 : r[1]+1] {
			dst[at] = v + d
			at++
		}
		copy(data[pos:], sd[lo:hi])
		pos += hi - lo
	}
	return ob, db
}

// take returns the rows of a named by rs, in order (a new reference).
func take(mem memory.Allocator, a arrow.Array, rs [][2]int) (arrow.Array, error) {
	switch {
	case len(rs) == 1 && rs[0][0] == 0 && rs[0][1] == a.Len():
		a.Retain()
		return a, nil
	case len(rs) == 0:
		return array.NewSlice(a, 0, 0), nil
	case len(rs) == 1:
		return array.NewSlice(a, int64(rs[0][0]), int64(rs[0][1])), nil
	}
	if takeable(a.DataType()) {
		d := takeRuns(mem, a.Data(), rs, runsLen(rs))
		defer d.Release()
		return array.MakeFromData(d), nil
	}
	parts := make([]arrow.Array, len(rs))
	for k, r := range rs {
		parts[k] = array.NewSlice(a, int64(r[0]), int64(r[1]))
	}
	out, err := array.Concatenate(parts, mem)
	for _, p := range parts {
		p.Release()
	}
	return out, err
}
