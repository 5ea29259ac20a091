package schemas

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Column buffers: rows are collected in plain Go slices while a request is
// decoded and appended to the Arrow builders in bulk when the request is
// done (Builder.flush), so that validity bits are set a byte at a time and
// capacity is reserved once per column rather than checked per value.
//
// Byte slices held by the buffers point into the request body or into
// Builder.arena; both stay unchanged until the flush at the end of Append.

// allTrue is a read-only run of valid flags for the bulk appends that need
// an explicit validity slice; longer runs are appended in chunks.
var allTrue = func() *[4096]bool {
	var t [4096]bool
	for i := range t {
		t[i] = true
	}
	return &t
}()

// bulkAppender is implemented by the fixed-width Arrow builders.
type bulkAppender[T any] interface {
	AppendValues(v []T, valid []bool)
	AppendEmptyValues(n int)
}

// col buffers a non-nullable fixed-width column.
type bufCol[T any] struct {
	b bulkAppender[T]
	v []T
}

func newBufCol[T any](b array.Builder) bufCol[T] { return bufCol[T]{b: b.(bulkAppender[T])} }

func (c *bufCol[T]) add(x T) { c.v = append(c.v, x) }

func (c *bufCol[T]) flush() {
	if len(c.v) > 0 {
		c.b.AppendValues(c.v, nil)
		c.v = c.v[:0]
	}
}

func (c *bufCol[T]) clear() { c.v = c.v[:0] }

// bufOpt buffers a nullable fixed-width column.
type bufOpt[T any] struct {
	b     bulkAppender[T]
	v     []T
	valid []bool
	nulls int
}

func newBufOpt[T any](b array.Builder) bufOpt[T] { return bufOpt[T]{b: b.(bulkAppender[T])} }

func (c *bufOpt[T]) add(x T, ok bool) {
	c.v = append(c.v, x)
	c.valid = append(c.valid, ok)
	if !ok {
		c.nulls++
	}
}

func (c *bufOpt[T]) flush() {
	if len(c.v) > 0 {
		valid := c.valid
		if c.nulls == 0 {
			valid = nil
		}
		c.b.AppendValues(c.v, valid)
	}
	c.clear()
}

func (c *bufOpt[T]) clear() { c.v, c.valid, c.nulls = c.v[:0], c.valid[:0], 0 }

// bufBin buffers a non-nullable binary or string column.
type bufBin struct {
	b    *array.BinaryBuilder
	v    [][]byte
	hint int // see appendBins
}

func newBufBin(b array.Builder) bufBin {
	if s, ok := b.(*array.StringBuilder); ok {
		return bufBin{b: s.BinaryBuilder}
	}
	return bufBin{b: b.(*array.BinaryBuilder)}
}

func (c *bufBin) add(x []byte) { c.v = append(c.v, x) }

func (c *bufBin) flush() {
	if len(c.v) > 0 {
		appendBins(c.b, c.v, &c.hint)
		clear(c.v) // drop references to the request
		c.v = c.v[:0]
	}
}

func (c *bufBin) clear() {
	clear(c.v)
	c.v = c.v[:0]
}

// bufList buffers the offsets of a non-nullable list column whose values are
// appended directly to the value builder.
type bufList struct {
	b   *array.ListBuilder
	vb  array.Builder
	off []int32
}

func newBufList(b array.Builder) bufList {
	l := b.(*array.ListBuilder)
	return bufList{b: l, vb: l.ValueBuilder()}
}

// open starts a row; its values are those appended to the value builder until
// the next row starts.
func (c *bufList) open() { c.off = append(c.off, int32(c.vb.Len())) }

func (c *bufList) flush() {
	for off := c.off; len(off) > 0; {
		n := min(len(off), len(allTrue))
		c.b.AppendValues(off[:n], allTrue[:n])
		off = off[n:]
	}
	c.off = c.off[:0]
}

func (c *bufList) clear() { c.off = c.off[:0] }

// listCol is a non-nullable list column of a batch whose values are
// appended straight to the value builder vb. Rows without values cost
// nothing: a row's offset is recorded only when values are about to be
// appended to it (start), together with those of the rows before it that
// have none; at Build the rows not recorded start at the end of the values.
// The points of a gauge or sum have no list values but exemplars, so their
// six list columns are not touched at all.
type listCol struct {
	mem  memory.Allocator
	typ  arrow.DataType
	vb   array.Builder
	rows *int    // the rows of the table, read at Build
	off  []int32 // the offsets of the first len(off) rows
	// empty is the values of a batch without any, built once, in Go
	// memory (a builder between batches holds none of its allocator's):
	// an empty array of a nested type (an exemplar's struct and its map)
	// costs tens of allocations to build.
	empty arrow.Array
}

// newListCol is the column of list builder b of the record builder, whose
// value builder it takes over (b itself stays empty).
func newListCol(mem memory.Allocator, b array.Builder, rows *int) listCol {
	l := b.(*array.ListBuilder)
	return listCol{mem: mem, typ: l.Type(), vb: l.ValueBuilder(), rows: rows}
}

// start is called before values of row i, the row being decoded, are
// appended to vb.
func (c *listCol) start(i int) {
	if len(c.off) <= i {
		o := int32(c.vb.Len())
		for len(c.off) <= i {
			c.off = append(c.off, o)
		}
	}
}

func (c *listCol) newArray(z *Zeros) arrow.Array {
	n := *c.rows
	var vals arrow.Array
	if c.vb.Len() == 0 {
		if c.empty == nil {
			eb := array.NewBuilder(memory.DefaultAllocator, c.typ.(*arrow.ListType).Elem())
			c.empty = eb.NewArray()
			eb.Release()
		}
		vals = c.empty
		vals.Retain()
	} else {
		vals = c.vb.NewArray()
	}
	defer vals.Release()
	var ob *memory.Buffer
	if vals.Len() == 0 {
		ob = z.slice(c.mem, 4*(n+1)) // every list empty
	} else {
		ob = newFullBuf(c.mem, 4*(n+1))
		off := castBytes[int32](ob.Bytes())[:n+1]
		copy(off, c.off)
		end := int32(vals.Len())
		for i := len(c.off); i <= n; i++ {
			off[i] = end
		}
	}
	d := array.NewData(c.typ, n, []*memory.Buffer{nil, ob}, []arrow.ArrayData{vals.Data()}, 0, 0)
	ob.Release()
	c.off = c.off[:0]
	a := array.MakeFromData(d)
	d.Release()
	return a
}

// release drops the empty values array.
func (c *listCol) release() {
	if c.empty != nil {
		c.empty.Release()
		c.empty = nil
	}
}

// appendBins appends v to b, growing the data buffer geometrically
// (BinaryBuilder.AppendValues alone grows it to the exact size, which
// copies the whole buffer on every bulk append). *hint carries the data size
// b reached in the previous batch: the first append of a batch reserves that
// much at once, instead of growing to it by doubling.
func appendBins(b *array.BinaryBuilder, v [][]byte, hint *int) {
	if len(v) == 0 {
		return
	}
	total := 0
	for _, x := range v {
		total += len(x)
	}
	if need := b.DataLen() + total; need > b.DataCap() {
		size := max(bitutil.NextPowerOf2(need), 1024)
		if b.DataLen() == 0 {
			size = max(size, *hint)
		}
		b.ReserveData(size - b.DataLen())
	}
	b.AppendValues(v, nil)
	*hint = b.DataLen()
}

// Batch columns: the fixed-width and binary columns of the data points are
// collected in plain slices for a whole batch, in buffers of the allocator
// that become the Arrow arrays' at Build (see batchbuf.go), rather than
// going through Arrow builders (which clear every buffer they grow and copy
// on each growth). A column whose values are all the same so far (a field
// the points do not use: a gauge's count, a histogram's value) only counts
// them.

// word is what a batch column holds: the bits of its values (float64
// columns hold math.Float64bits, so that -0 and NaNs stay exact).
type word interface {
	~uint8 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~bool
}

// runCol is a non-nullable fixed-width batch column.
type runCol[T word] struct {
	mem   memory.Allocator
	typ   arrow.DataType
	v     []T // the rows, once mixed
	vb    batchBuf
	first T
	n     int
	mixed bool // v holds the rows; else all n rows are first
}

func newRunCol[T word](mem memory.Allocator, typ arrow.DataType) runCol[T] {
	return runCol[T]{mem: mem, typ: typ}
}

func (c *runCol[T]) add(x T) {
	if !c.mixed {
		if c.n == 0 {
			c.first = x
		}
		if x == c.first {
			c.n++
			return
		}
		c.spill()
	}
	c.v = append(c.v, x)
	c.n++
}

// fill adds zero values until the column has n rows.
func (c *runCol[T]) fill(n int) {
	var zero T
	if c.n >= n {
		return
	}
	if !c.mixed && (c.n == 0 || c.first == zero) {
		c.first, c.n = zero, n
		return
	}
	for c.n < n {
		c.add(zero)
	}
}

// spill writes out the run of equal values.
func (c *runCol[T]) spill() {
	if c.v == nil {
		c.v = take[T](c.mem, &c.vb)
	}
	c.v = c.v[:0]
	for range c.n {
		c.v = append(c.v, c.first)
	}
	c.mixed = true
}

func (c *runCol[T]) reset() {
	c.v, c.n, c.mixed = c.v[:0], 0, false
	var zero T
	c.first = zero
}

// release frees the buffer of a batch that is not built.
func (c *runCol[T]) release() {
	c.vb.free()
	c.v = nil
	c.reset()
}

// buf is a buffer of the allocator holding the values: v's own once
// mixed, a slice of z when they are all zero.
func (c *runCol[T]) buf(z *Zeros) *memory.Buffer {
	if c.mixed {
		b := give(c.mem, c.v, &c.vb)
		c.v = nil
		return b
	}
	var zero T
	if c.first == zero {
		return z.slice(c.mem, c.n*int(unsafe.Sizeof(zero)))
	}
	b := newFullBuf(c.mem, c.n*int(unsafe.Sizeof(zero)))
	dst := castBytes[T](b.Bytes())[:c.n]
	for i := range dst {
		dst[i] = c.first
	}
	return b
}

// newArray returns the column of the rows added since the last call and
// starts a new one.
func (c *runCol[T]) newArray(z *Zeros) arrow.Array {
	b := c.buf(z)
	d := array.NewData(c.typ, c.n, []*memory.Buffer{nil, b}, nil, 0, 0)
	b.Release()
	c.reset()
	a := array.MakeFromData(d)
	d.Release()
	return a
}

// optCol is a nullable fixed-width batch column: the values (those under
// nulls kept, as Arrow builders keep them) and their validity.
type optCol[T word] struct {
	v     runCol[T]
	valid runCol[bool]
}

func newOptCol[T word](mem memory.Allocator, typ arrow.DataType) optCol[T] {
	return optCol[T]{v: newRunCol[T](mem, typ), valid: newRunCol[bool](mem, arrow.FixedWidthTypes.Boolean)}
}

func (c *optCol[T]) add(x T, ok bool) {
	c.v.add(x)
	c.valid.add(ok)
}

// fill adds zero values under nulls until the column has n rows.
func (c *optCol[T]) fill(n int) {
	c.v.fill(n)
	c.valid.fill(n)
}

func (c *optCol[T]) release() {
	c.v.release()
	c.valid.release()
}

func (c *optCol[T]) newArray(z *Zeros) arrow.Array {
	n := c.v.n
	var validity *memory.Buffer
	nulls := 0
	switch {
	case !c.valid.mixed && (n == 0 || c.valid.first):
	case !c.valid.mixed:
		validity, nulls = z.slice(c.v.mem, int(bitutil.BytesForBits(int64(n)))), n
	default:
		validity = newFullBuf(c.v.mem, int(bitutil.BytesForBits(int64(n))))
		bm := validity.Bytes()
		clear(bm)
		for i, ok := range c.valid.v {
			if ok {
				bitutil.SetBit(bm, i)
			} else {
				nulls++
			}
		}
	}
	b := c.v.buf(z)
	d := array.NewData(c.v.typ, n, []*memory.Buffer{validity, b}, nil, nulls, 0)
	b.Release()
	if validity != nil {
		validity.Release()
	}
	c.v.reset()
	c.valid.reset()
	a := array.MakeFromData(d)
	d.Release()
	return a
}

// binCol is a non-nullable binary or string batch column. Values are
// copied in, so they need not outlive the Append that adds them.
type binCol struct {
	mem   memory.Allocator
	typ   arrow.DataType
	off   []int32 // n+1 offsets, once mixed
	data  []byte
	offB  batchBuf
	dataB batchBuf
	n     int
	mixed bool // off holds the offsets; else all n values are empty
}

func newBinCol(mem memory.Allocator, typ arrow.DataType) binCol {
	return binCol{mem: mem, typ: typ}
}

func (c *binCol) add(x []byte) {
	if !c.mixed {
		if len(x) == 0 {
			c.n++
			return
		}
		if c.off == nil {
			c.off, c.data = take[int32](c.mem, &c.offB), take[byte](c.mem, &c.dataB)
		}
		c.off = c.off[:0]
		for range c.n + 1 {
			c.off = append(c.off, 0)
		}
		c.mixed = true
	}
	c.data = append(c.data, x...)
	c.off = append(c.off, int32(len(c.data)))
	c.n++
}

// release frees the buffers of a batch that is not built.
func (c *binCol) release() {
	c.offB.free()
	c.dataB.free()
	c.off, c.data, c.n, c.mixed = nil, nil, 0, false
}

func (c *binCol) newArray(z *Zeros) arrow.Array {
	var ob, db *memory.Buffer
	if c.mixed {
		ob, db = give(c.mem, c.off, &c.offB), give(c.mem, c.data, &c.dataB)
		c.off, c.data = nil, nil
	} else {
		ob, db = z.slice(c.mem, 4*(c.n+1)), copyBuf(c.mem, nil)
	}
	d := array.NewData(c.typ, c.n, []*memory.Buffer{nil, ob, db}, nil, 0, 0)
	ob.Release()
	db.Release()
	c.n, c.mixed = 0, false
	a := array.MakeFromData(d)
	d.Release()
	return a
}
