package columnar

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// TestChainOnPool runs the worker's chain batch after batch on a recycling
// pool that poisons freed buffers, in the worker's order (the input batch
// is released before the rules' output is written), and compares every
// processed record with the chain on the Go allocator: an output column
// that shares an input buffer without a reference, or a value kept from an
// earlier batch, shows as a different record.
func TestChainOnPool(t *testing.T) {
	set := exampleSet(t)
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			var bodies [][]byte
			for _, c := range otlptest.Corpora() {
				if c.Signal == sig {
					bodies = append(bodies, c.Body)
				}
			}
			for seed := range 3 {
				bodies = append(bodies, otlptest.Request(sig, otlptest.Shape{Resources: 3, Items: 40 + seed, Points: 5, Seed: seed}))
			}
			pool := arrowpool.NewPoisoned()
			onPool := newChain(sig, set, pool)
			onGo := newChain(sig, set, memory.DefaultAllocator)
			for round := range 2 {
				for i, body := range bodies {
					want, got := onGo.run(t, body), onPool.run(t, body)
					if !bytes.Equal(want, got) {
						t.Fatalf("round %d, body %d: the record written on the pool differs from the one on the Go allocator", round, i)
					}
				}
			}
			onPool.b.Release()
			onGo.b.Release()
			if n := pool.Live(); n != 0 {
				t.Fatalf("%d bytes not freed after every batch was released", n)
			}
		})
	}
}

type chain struct {
	b *schemas.Builder
	e *Engine
}

func newChain(sig otlpwire.Signal, set *rules.Set, mem memory.Allocator) chain {
	return chain{schemas.NewBuilder(sig, mem), New(set, Options{Allocator: mem})}
}

func (c chain) run(t *testing.T, body []byte) []byte {
	t.Helper()
	if _, err := c.b.Append(body); err != nil {
		t.Fatal(err)
	}
	in := c.b.Build()
	out, err := c.e.Apply(in)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		in.Release()
	}
	defer out.Release()
	var buf bytes.Buffer
	if err := schemas.WriteBatch(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
