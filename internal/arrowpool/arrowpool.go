// Package arrowpool is an Arrow memory.Allocator that recycles the buffers
// of released batches. A worker builds, filters and encodes one batch after
// another with buffers of about the same sizes; allocating each afresh
// costs the runtime's zeroing of new pages and the garbage collector's work
// on tens of megabytes per second (a fifth of the worker's time on the log
// corpus). The pool hands back a buffer freed by an earlier batch instead.
//
// Buffers of at least MinPooled bytes come in power-of-two capacities from
// one sync.Pool per size class, so idle buffers are dropped by the garbage
// collector like any pooled object and the pool needs no size limit.
// Smaller ones come from memory.DefaultAllocator. Memory is zeroed on
// allocation, as with the Go allocator, and 64-byte aligned.
//
// Recycling makes a use after Release visible: a string or slice taken
// from an array and kept after the batch is released may see the bytes of
// a later batch. A poisoned pool (NewPoisoned; Default when the environment
// has SLUICE_ARROWPOOL_POISON=1, as `make test` sets) overwrites freed
// buffers, so such a use shows as wrong output, and panics when a freed
// buffer was written to before its reuse.
package arrowpool

import (
	"fmt"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// MinPooled is the smallest size served from the pool. A batch's small
// buffers are most of its buffers (the validity bitmaps and short columns
// of a selection or a record of a thousand rows): served from the pool too
// they cost a quarter less garbage (BenchmarkProcessK8sLoad/merged: 855 →
// 623 kB a poll), and the poisoned pool of the tests watches them too.
// Power-of-two capacities from 64 bytes are 64-byte aligned.
const MinPooled = 64

// maxClass bounds the pooled capacities at 1 GiB; larger ones are
// allocated and dropped.
const maxClass = 30

const poisonByte = 0xa5

// Pool is a recycling memory.Allocator, safe for concurrent use.
type Pool struct {
	classes [maxClass + 1]sync.Pool // of *[]byte, by log2 of the capacity
	holders sync.Pool               // empty *[]byte, so that Free does not allocate
	live    atomic.Int64
	poison  bool
}

var _ memory.Allocator = (*Pool)(nil)

// New returns an empty pool.
func New() *Pool { return &Pool{} }

// NewPoisoned returns a pool that overwrites every freed buffer and panics
// when a freed buffer was written to before its reuse: for tests.
func NewPoisoned() *Pool { return &Pool{poison: true} }

// Default is the pool of the worker and the sinks; poisoned when the
// environment has SLUICE_ARROWPOOL_POISON=1.
var Default = func() *Pool {
	if os.Getenv("SLUICE_ARROWPOOL_POISON") == "1" {
		return NewPoisoned()
	}
	return New()
}()

// Live is the number of bytes allocated and not yet freed.
func (p *Pool) Live() int64 { return p.live.Load() }

// Allocate returns size zeroed bytes.
func (p *Pool) Allocate(size int) []byte { return p.allocate(size, true) }

// AllocateNoZero returns size bytes whose contents are undefined: for a
// caller that writes every byte before it reads any (a decoder filling a
// column), which saves clearing a recycled buffer (a tenth of a sink's
// CPU). A poisoned pool hands the poison out as it is, so a caller that
// leaves bytes unwritten shows wrong output in the tests.
func (p *Pool) AllocateNoZero(size int) []byte { return p.allocate(size, false) }

// NewBuffer returns a buffer of size bytes from mem for a caller that
// writes every byte it later reads (a decoder filling a column, an append
// into the buffer's room): from a Pool, recycled memory is not cleared
// first (AllocateNoZero). Its capacity is size rounded up to 64 bytes, as
// memory.Buffer's own; it resizes like any buffer of mem.
func NewBuffer(mem memory.Allocator, size int) *memory.Buffer {
	p, ok := mem.(*Pool)
	if !ok || size == 0 {
		b := memory.NewResizableBuffer(mem)
		b.Resize(size)
		return b
	}
	b := memory.NewBufferWithAllocator(p.AllocateNoZero((size+63)&^63), mem)
	b.ResizeNoShrink(size)
	return b
}

func (p *Pool) allocate(size int, zero bool) []byte {
	c := class(size)
	if c < 0 {
		b := memory.DefaultAllocator.Allocate(size)
		p.live.Add(int64(cap(b)))
		return b
	}
	p.live.Add(1 << c)
	if v := p.classes[c].Get(); v != nil {
		h := v.(*[]byte)
		b := (*h)[:size]
		*h = nil
		p.holders.Put(h)
		if p.poison {
			checkPoison(b[:cap(b)])
		}
		if zero {
			clear(b)
		}
		return b
	}
	b := make([]byte, size, 1<<c)
	return b
}

// Reallocate resizes b, in place when its capacity allows.
func (p *Pool) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// Free returns b to the pool.
func (p *Pool) Free(b []byte) {
	n := cap(b)
	if n == 0 {
		return
	}
	p.live.Add(-int64(n))
	c := class(n)
	if c < 0 || n != 1<<c {
		return // from the Go allocator, or too large: the GC takes it
	}
	b = b[:n]
	if p.poison {
		for i := range b {
			b[i] = poisonByte
		}
	}
	h, _ := p.holders.Get().(*[]byte)
	if h == nil {
		h = new([]byte)
	}
	*h = b
	p.classes[c].Put(h)
}

// class is the size class of size (log2 of the pooled capacity), or -1 for
// sizes served by the Go allocator.
func class(size int) int {
	if size < MinPooled {
		return -1
	}
	c := bits.Len(uint(size - 1))
	if c > maxClass {
		return -1
	}
	return c
}

func checkPoison(b []byte) {
	for i, x := range b {
		if x != poisonByte {
			panic(fmt.Sprintf("arrowpool: a freed buffer of %d bytes was written at byte %d after it was freed", len(b), i))
		}
	}
}

// Slice returns a buffer of mem with room for n values of T (at least
// one) and an empty slice over its memory, for a caller that appends to
// the slice and then gives the buffer to an Arrow array (Handover): the
// appends fill the buffer in place while they fit. From a Pool the memory
// is not cleared (NewBuffer).
func Slice[T any](mem memory.Allocator, n int) (*memory.Buffer, []T) {
	var zero T
	b := NewBuffer(mem, max(n, 1)*int(unsafe.Sizeof(zero)))
	b.ResizeNoShrink(0)
	buf := b.Buf()
	return b, unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(buf))), len(buf)/int(unsafe.Sizeof(zero)))[:0]
}

// Handover returns a buffer of mem holding the values of s, which was
// appended to from Slice's slice over b: b itself, its length set, when s
// still lies in b's memory; else b (a new buffer when nil) after copying s
// into it, when an append moved s to the Go heap. The caller drops s and
// b: the buffer is the array's.
func Handover[T any](mem memory.Allocator, b *memory.Buffer, s []T) *memory.Buffer {
	var zero T
	nb := len(s) * int(unsafe.Sizeof(zero))
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), nb)
	if b != nil && nb > 0 && len(b.Buf()) >= nb && unsafe.SliceData(raw) == unsafe.SliceData(b.Buf()) {
		b.ResizeNoShrink(nb)
		return b
	}
	if b == nil {
		b = memory.NewResizableBuffer(mem)
	}
	b.Resize(nb)
	copy(b.Bytes(), raw)
	return b
}
