package schemas

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
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
