package arrowpool

import (
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestAllocateZeroedAlignedAndRecycled(t *testing.T) {
	p := New()
	for _, size := range []int{0, 1, 100, MinPooled - 1, MinPooled, MinPooled + 1, 100_000, 3 << 20} {
		b := p.Allocate(size)
		if len(b) != size {
			t.Fatalf("Allocate(%d): len %d", size, len(b))
		}
		if size > 0 && uintptr(unsafe.Pointer(&b[0]))%64 != 0 {
			t.Fatalf("Allocate(%d) is not 64-byte aligned", size)
		}
		for i := range b {
			b[i] = 0xff
		}
		p.Free(b)
		// A reused buffer is zeroed again.
		c := p.Allocate(size)
		for i, x := range c {
			if x != 0 {
				t.Fatalf("Allocate(%d) after a Free: byte %d is %#x", size, i, x)
			}
		}
		p.Free(c)
	}
	if p.Live() != 0 {
		t.Fatalf("Live = %d after freeing everything", p.Live())
	}
}

func TestReallocateKeepsContentAndZeroesGrowth(t *testing.T) {
	p := New()
	b := p.Allocate(10)
	copy(b, "0123456789")
	for _, size := range []int{5, 5000, 4096, 70_000, 9} {
		b = p.Reallocate(size, b)
		if len(b) != size {
			t.Fatalf("Reallocate(%d): len %d", size, len(b))
		}
		if want := "012345678"[:min(5, size)]; string(b[:len(want)]) != want {
			t.Fatalf("Reallocate(%d) lost the content: %q", size, b[:len(want)])
		}
		for i := 5; i < size; i++ {
			if b[i] != 0 {
				t.Fatalf("Reallocate(%d): byte %d past the old length is %#x", size, i, b[i])
			}
		}
	}
	p.Free(b)
	if p.Live() != 0 {
		t.Fatalf("Live = %d after freeing everything", p.Live())
	}
}

func TestPoisonCatchesWriteAfterFree(t *testing.T) {
	p := NewPoisoned()
	b := p.Allocate(MinPooled)
	p.Free(b)
	for i := range b {
		if b[i] != poisonByte {
			t.Fatalf("freed buffer not poisoned at %d", i)
		}
	}
	b[7] = 1 // a write after free
	defer func() {
		r := recover()
		if r == nil {
			// sync.Pool may drop the buffer (e.g. a GC ran): then there is
			// nothing to reuse and nothing to catch.
			t.Skip("the pool dropped the freed buffer")
		}
		if !strings.Contains(r.(string), "written at byte 7") {
			t.Fatalf("panic %v", r)
		}
	}()
	for range 100 { // sync.Pool keeps the buffer on this P
		p.Free(p.Allocate(MinPooled))
	}
}

// An Arrow builder and array on the pool, batch after batch, from several
// goroutines (run with -race).
func TestArrowArraysOnThePool(t *testing.T) {
	p := NewPoisoned()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			b := array.NewStringBuilder(p)
			defer b.Release()
			for batch := range 20 {
				for i := range 2000 {
					if i%7 == 0 {
						b.AppendNull()
						continue
					}
					b.Append(strings.Repeat("x", (g+batch+i)%50))
				}
				a := b.NewStringArray()
				for i := range a.Len() {
					if i%7 == 0 {
						if !a.IsNull(i) {
							t.Errorf("row %d not null", i)
						}
						continue
					}
					if want := strings.Repeat("x", (g+batch+i)%50); a.Value(i) != want {
						t.Errorf("goroutine %d batch %d row %d: %q", g, batch, i, a.Value(i))
						return
					}
				}
				a.Release()
			}
		})
	}
	wg.Wait()
	if p.Live() != 0 {
		t.Fatalf("Live = %d after every array was released", p.Live())
	}
}

var sink []byte

func BenchmarkAllocateFree(b *testing.B) {
	for _, tc := range []struct {
		name string
		mem  memory.Allocator
	}{{"pool", New()}, {"go", memory.DefaultAllocator}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(1 << 20)
			for b.Loop() {
				sink = tc.mem.Allocate(1 << 20)
				tc.mem.Free(sink)
			}
		})
	}
}

// AllocateNoZero skips the clearing of a recycled buffer: a poisoned pool
// hands out its poison, so that a caller that reads a byte it did not
// write shows wrong output in the tests.
func TestAllocateNoZeroHandsOutThePoison(t *testing.T) {
	p := NewPoisoned()
	b := p.Allocate(100_000)
	for i := range b {
		b[i] = 0xff
	}
	p.Free(b)
	var c []byte
	for range 100 { // a sync.Pool may drop a buffer now and then
		if c = p.AllocateNoZero(100_000); c[0] == poisonByte {
			break
		}
		p.Free(c)
	}
	if len(c) != 100_000 || uintptr(unsafe.Pointer(&c[0]))%64 != 0 {
		t.Fatalf("AllocateNoZero(100000): len %d, aligned %v", len(c), uintptr(unsafe.Pointer(&c[0]))%64 == 0)
	}
	for i, x := range c {
		if x != poisonByte {
			t.Fatalf("byte %d of a recycled buffer is %#x, want the poison %#x", i, x, poisonByte)
		}
	}
	p.Free(c)
	if z := p.Allocate(100_000); z[0] != 0 || z[len(z)-1] != 0 {
		t.Fatal("Allocate after AllocateNoZero is not zeroed")
	}
}

func TestNewBuffer(t *testing.T) {
	p := NewPoisoned()
	for _, size := range []int{0, 1, 100, MinPooled + 1, 100_000} {
		b := NewBuffer(p, size)
		if b.Len() != size || b.Cap() != (size+63)&^63 {
			t.Fatalf("NewBuffer(%d): Len %d, Cap %d", size, b.Len(), b.Cap())
		}
		b.Resize(2*size + 1) // grows like any buffer of the pool
		if b.Len() != 2*size+1 {
			t.Fatalf("Resize: Len %d", b.Len())
		}
		b.Release()
	}
	if p.Live() != 0 {
		t.Fatalf("Live = %d after releasing every buffer", p.Live())
	}
	g := memory.NewGoAllocator() // not a Pool: zeroed as usual
	b := NewBuffer(g, 100)
	if b.Len() != 100 || b.Bytes()[99] != 0 {
		t.Fatalf("NewBuffer on the Go allocator: Len %d", b.Len())
	}
	b.Release()
}

// TestHandover: a slice appended within Slice's buffer is handed over as
// that buffer, one that outgrew it is copied into it, and without a
// buffer into a new one; the values are the slice's each way, and nothing
// leaks.
func TestHandover(t *testing.T) {
	for _, p := range []*Pool{New(), NewPoisoned()} {
		mem := memory.NewCheckedAllocator(p)
		for _, n := range []int{0, 3, 1000, 5000} {
			b, s := Slice[int32](mem, 1000)
			for i := range n {
				s = append(s, int32(i))
			}
			got := Handover(mem, b, s)
			if got != b || got.Len() != 4*n {
				t.Fatalf("n %d: buffer %p of %d bytes, want %p of %d", n, got, got.Len(), b, 4*n)
			}
			// Up to the 1,000 values of Slice's room the appends stay in
			// the buffer; 5,000 moved them to the Go heap.
			if n > 0 && (unsafe.SliceData(got.Bytes()) == (*byte)(unsafe.Pointer(unsafe.SliceData(s)))) != (n <= 1000) {
				t.Fatalf("n %d: handed over in place: %v", n, n > 1000)
			}
			vals := unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(got.Bytes()))), n)
			for i, v := range vals {
				if v != int32(i) {
					t.Fatalf("n %d: value %d is %d", n, i, v)
				}
			}
			got.Release()
			nb := Handover(mem, nil, []byte("abc"))
			if string(nb.Bytes()) != "abc" {
				t.Fatalf("without a buffer: %q", nb.Bytes())
			}
			nb.Release()
		}
		mem.AssertSize(t, 0)
	}
}
