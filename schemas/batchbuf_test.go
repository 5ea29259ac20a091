package schemas

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// TestBatchHandover: the buffers Build hands to a batch (batchbuf.go) are
// that batch's alone. A batch kept while the next one is built, on buffers
// that earlier batches freed, stays as it was, whether it is released
// before or after the next one; batches that outgrow the last one's
// buffers, or shrink, or are dropped by a failed Append, come out right;
// and once everything is released nothing of the allocator is left, on a
// poisoned pool (which also panics on a write to a freed buffer) and
// under checked allocators.
func TestBatchHandover(t *testing.T) {
	allocs := []struct {
		name string
		new  func() (memory.Allocator, func(t *testing.T))
	}{
		{"pool", func() (memory.Allocator, func(t *testing.T)) {
			p := arrowpool.NewPoisoned()
			return p, func(t *testing.T) {
				if n := p.Live(); n != 0 {
					t.Errorf("%d bytes of the pool not freed", n)
				}
			}
		}},
		{"checked pool", func() (memory.Allocator, func(t *testing.T)) {
			m := memory.NewCheckedAllocator(arrowpool.NewPoisoned())
			return m, func(t *testing.T) { m.AssertSize(t, 0) }
		}},
		{"checked go", func() (memory.Allocator, func(t *testing.T)) {
			m := memory.NewCheckedAllocator(memory.NewGoAllocator())
			return m, func(t *testing.T) { m.AssertSize(t, 0) }
		}},
	}
	for _, sig := range otlpwire.Signals {
		for _, a := range allocs {
			t.Run(sig.String()+"/"+a.name, func(t *testing.T) {
				mem, check := a.new()
				g := otlptest.NewGen(500+uint64(sig), otlptest.GenOptions{})
				b := NewBuilder(sig, mem)
				// the table of the items' attributes, and (metrics) a
				// batch column, to see that they took their buffers from
				// mem
				attrs := map[otlpwire.Signal]func() *attrTable{
					otlpwire.Metrics: func() *attrTable { return &b.pts.attrs },
					otlpwire.Logs:    func() *attrTable { return &b.logs.attrs },
					otlpwire.Traces:  func() *attrTable { return &b.spans.attrs },
				}[sig]
				type kept struct {
					batch *Batch
					want  []byte
				}
				var prev *kept
				taken, takenCol := 0, 0
				for i := range 30 {
					// Sizes that go up and down by more than the
					// power-of-two rounding of the buffers.
					shape := otlptest.Shape{Resources: 1 + i%3, Items: 5 + 60*(i%4), Points: 1 + i%3, Seed: i}
					bodies := [][]byte{otlptest.Request(sig, shape), g.Request(sig)}
					if i%7 == 3 { // a failed request drops what came before it
						if _, err := b.Append(append(append([]byte(nil), bodies[0]...), 0xff)); err == nil {
							t.Fatal("Append of a truncated request: no error")
						}
					}
					for _, body := range bodies {
						if _, err := b.Append(body); err != nil {
							t.Fatal(err)
						}
					}
					if attrs().keyDataB.b != nil {
						taken++
					}
					if sig == otlpwire.Metrics && b.pts.time.vb.b != nil {
						takenCol++
					}
					batch := b.Build()
					cur := &kept{batch, roundTrip(t, sig, memory.DefaultAllocator, bodies, false)}
					checkKept(t, i, "new", cur.batch, cur.want)
					if prev == nil {
						prev = cur
						continue
					}
					checkKept(t, i, "kept", prev.batch, prev.want)
					if i%2 == 0 {
						prev.batch.Release() // the older first
						prev = cur
					} else {
						cur.batch.Release() // the newer first; the older lives on
					}
				}
				checkKept(t, 30, "kept", prev.batch, prev.want)
				prev.batch.Release()
				b.Release()
				check(t)
				if taken < 20 {
					t.Errorf("the attribute table took its buffers from the allocator in %d batches of 30", taken)
				}
				if sig == otlpwire.Metrics && takenCol < 20 {
					t.Errorf("the time column took its buffer from the allocator in %d batches of 30", takenCol)
				}
			})
		}
	}
}

func checkKept(t *testing.T, i int, which string, b *Batch, want []byte) {
	t.Helper()
	got, err := ToOTLP(b, nil)
	if err != nil {
		t.Fatalf("cycle %d, %s batch: %v", i, which, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("cycle %d: the %s batch differs from the requests it was built from", i, which)
	}
}

// TestBatchHandoverUnbuilt: a Builder released with a batch appended and
// not built frees the buffers that batch took.
func TestBatchHandoverUnbuilt(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		pool := arrowpool.NewPoisoned()
		b := NewBuilder(sig, pool)
		body := otlptest.Request(sig, otlptest.Shape{Resources: 2, Items: 50, Points: 2})
		for range 3 {
			if _, err := b.Append(body); err != nil {
				t.Fatal(err)
			}
			b.Build().Release()
		}
		if _, err := b.Append(body); err != nil {
			t.Fatal(err)
		}
		b.Release()
		if n := pool.Live(); n != 0 {
			t.Errorf("%s: %d bytes of the pool not freed", sig, n)
		}
	}
}
