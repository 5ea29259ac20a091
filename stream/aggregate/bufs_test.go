package aggregate

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// The snapshot buffers outlive garbage collections (a sync.Pool would drop
// them), the largest are kept, and no more than maxSnapBufs.
func TestSnapBufsKeepLargest(t *testing.T) {
	var l bufList
	if b := l.get(); b != nil {
		t.Fatalf("empty list gave a buffer of cap %d", cap(b))
	}
	for _, n := range []int{10, 1000, 100, 500} {
		l.put(make([]byte, 3, n))
	}
	runtime.GC()
	runtime.GC()
	a, b, c := l.get(), l.get(), l.get()
	if cap(a) != 1000 || cap(b) != 500 || c != nil {
		t.Fatalf("got caps %d, %d and %v; want 1000, 500 and nothing", cap(a), cap(b), c)
	}
	if len(a) != 0 || len(b) != 0 {
		t.Fatalf("buffers not empty: len %d, %d", len(a), len(b))
	}
	l.put(nil)
	if x := l.get(); x != nil {
		t.Fatalf("a nil buffer was kept")
	}
}

// A second snapshot of the same state reuses the buffers of the first,
// even after garbage collections: it allocates a small part of its size
// however large the state.
func TestSnapshotReusesBuffers(t *testing.T) {
	batch, in, outH := benchBatch(t, mCum, 20_000, 2)
	defer batch.Release()
	a := New(Config{})
	if err := a.Add("t", batch, in, outH, spec10, time.Unix(1000, 0)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := a.Snapshot(&out); err != nil {
		t.Fatal(err)
	}
	size := out.Len()
	out.Reset()
	runtime.GC() // a sync.Pool loses its buffers in two
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	if err := a.Snapshot(&out); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	if grown := ms.TotalAlloc - before; grown > uint64(size)/4 {
		t.Fatalf("a snapshot of %d bytes allocated %d bytes: its buffers were not reused", size, grown)
	}
}
