package schemas

import (
	"bytes"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
)

// Batch slices: the Go slices in which the batch columns (attrTable,
// runCol, binCol) collect a batch lie in a buffer of the Builder's
// allocator, and Build hands that buffer to the Arrow array as it is
// instead of copying the slice into a new one (copies of some megabytes a
// batch under the Kubernetes load, 40% of Build). The next batch takes a
// fresh buffer, with a recycling allocator (internal/arrowpool) one that a
// released batch freed, as large as the last batch's slice rounded up to a
// power of two, so that the appends rarely outgrow it. A slice that did
// outgrow it has moved to the Go heap: Build copies that one into the
// buffer, as before. (arrowpool.Slice and Handover do the handing over,
// here and in rules/columnar's rawAttrs, which builds the columns it
// rewrites the same way.)
//
// The buffer is taken when a batch's first value is added, not at Build,
// so that a Builder between batches holds none of its allocator's memory,
// as before: a checked allocator sees no leak once the batches are
// released, and a Builder dropped between batches leaves nothing of the
// pool unfreed. Builder.Release frees the buffers of a batch that was
// never built.

// batchBuf is the allocator's buffer behind one batch slice.
type batchBuf struct {
	b    *memory.Buffer // nil when none
	hint int            // the size of the next buffer in bytes; 0 before the first Build
}

// take returns an empty slice over a new buffer of b.hint bytes
// (arrowpool.Slice); nil (the slice's appends go to the Go heap) when
// there is no hint yet.
func take[T word](mem memory.Allocator, b *batchBuf) []T {
	if b.hint == 0 {
		return nil
	}
	var zero T
	var s []T
	b.b, s = arrowpool.Slice[T](mem, b.hint/int(unsafe.Sizeof(zero)))
	return s
}

// give returns a buffer of mem holding s, the slice of the batch being
// built (arrowpool.Handover): b's own buffer when s still lies in it, else
// a copy. The caller drops s: the buffer is the array's now. The next take
// is sized by s.
func give[T word](mem memory.Allocator, s []T, b *batchBuf) *memory.Buffer {
	buf := arrowpool.Handover(mem, b.b, s)
	b.b = nil
	b.hint = nextHint(len(bytesOf(s)), b.hint)
	return buf
}

// nextHint is the size of the buffer for the next batch's slice after one
// of used bytes: a power of two, so that a recycling allocator can serve
// it from the buffers of its size class. It shrinks by at most half per
// batch, so that a small batch among large ones does not make the next
// large one outgrow its buffer.
func nextHint(used, hint int) int {
	n := max(used, hint/2)
	if n == 0 {
		return 0
	}
	return max(bitutil.NextPowerOf2(n), 64)
}

// free returns b's buffer, if any, to its allocator; the slice over it
// must be dropped.
func (b *batchBuf) free() {
	if b.b != nil {
		b.b.Release()
		b.b = nil
	}
}

// Zeros is the zero bytes of one record being built. The buffers of its
// columns that hold only zeros (the doubles of attributes that have none,
// the offsets of lists that are all empty, the values of the fields the
// points do not use: a gauge's count, sum, min and max) are slices of one
// buffer, cleared once, rather than buffers of their own, each cleared or
// filled: under the Kubernetes load, megabytes a batch. Arrays are
// immutable (see doc.go), so the columns can share it. The builder and the
// record reader make one per table; Take's caller may pass one for the
// columns of a table it takes rows of (see Take).
type Zeros struct {
	size int // of the first buffer: 8 bytes a value, and one more
	// bufs are taken as slices need them: the first of size bytes, a later
	// one for a slice none before holds (a column longer than the table,
	// such as its map entries).
	bufs []*memory.Buffer
}

// NewZeros is the zeros of a record whose columns mostly have at most
// values values (rows, or map entries). Release it once its columns are
// made.
func NewZeros(values int) *Zeros { return &Zeros{size: 8 * (values + 1)} }

// slice returns a buffer of n zero bytes: a slice of one of z's buffers,
// or a buffer of its own when z is nil (a column built on its own, in
// tests).
func (z *Zeros) slice(mem memory.Allocator, n int) *memory.Buffer {
	if z == nil || n == 0 {
		return newBuf(mem, n)
	}
	for _, b := range z.bufs {
		if n <= b.Len() {
			return memory.SliceBuffer(b, 0, n)
		}
	}
	b := newBuf(mem, max(n, z.size))
	z.bufs = append(z.bufs, b)
	return memory.SliceBuffer(b, 0, n)
}

// zero reports whether b holds only zero bytes, comparing it with z's
// first buffer (taken for it, unless b's first byte already says no).
func (z *Zeros) zero(mem memory.Allocator, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != 0 {
		return false
	}
	if len(z.bufs) == 0 {
		z.bufs = append(z.bufs, newBuf(mem, z.size))
	}
	for zb := z.bufs[0].Bytes(); len(b) > 0; {
		k := min(len(b), len(zb))
		if !bytes.Equal(b[:k], zb[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// Release drops z's references to its buffers: the columns hold theirs.
func (z *Zeros) Release() {
	if z == nil {
		return
	}
	for _, b := range z.bufs {
		b.Release()
	}
	z.bufs = nil
}
