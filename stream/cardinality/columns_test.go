package cardinality

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	common "go.opentelemetry.io/proto/otlp/common/v1"
)

// TestHashRow: hashRow, the loop of rowHashes, gives the value hashes and
// the sum of pair hashes that hash and pairHash give entry by entry, on
// random batches (values of every type, duplicate keys, sliced and
// reordered columns), for every point and resource row.
func TestHashRow(t *testing.T) {
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 3))
		g := &gen{r: r, metrics: 4, ids: 50}
		b := g.batch(t, g.request(1+r.IntN(4), 1+r.IntN(200)))
		var c columns
		if err := c.init(b); err != nil {
			t.Fatal(err)
		}
		for _, a := range []*attrCol{&c.ptAttrs, &c.resAttrs} {
			for i := range a.m.Len() {
				start, end := a.entries(i)
				n := end - start
				kh := make([]uint64, n)
				var want uint64
				wantVH := make([]uint64, n)
				for e := range kh {
					kh[e] = r.Uint64()
					wantVH[e] = a.vals.hash(start + e)
					want += pairHash(kh[e], wantVH[e])
				}
				vh := make([]uint64, n+1) // longer than needed
				if got := a.vals.hashRow(start, kh, vh); got != want {
					t.Fatalf("seed %d row %d: sum %x, want %x", seed, i, got, want)
				}
				for e := range n {
					if vh[e] != wantVH[e] {
						t.Fatalf("seed %d row %d entry %d: hash %x, want %x", seed, i, e, vh[e], wantVH[e])
					}
				}
			}
		}
		b.Release()
	}
}

// TestStrHash: strHash gives equal bytes equal hashes wherever they are,
// and every byte of a string counts: no two of all short strings of a
// small alphabet, nor of strings one byte apart at any position, on both
// sides of its 16-byte bound, collide.
func TestStrHash(t *testing.T) {
	seen := map[uint64]string{}
	add := func(s string) {
		t.Helper()
		b := make([]byte, len(s)+8)
		copy(b[3:], s) // not at the start of its buffer
		h := strHash(b[3 : 3+len(s)])
		if h2 := strHash([]byte(s)); h2 != h {
			t.Fatalf("%q: hash %x and %x", s, h, h2)
		}
		if o, ok := seen[h]; ok && o != s {
			t.Fatalf("%q and %q: same hash %x", o, s, h)
		}
		seen[h] = s
	}
	const alpha = "\x00a0/.-z\xff"
	var all func(prefix string, n int)
	all = func(prefix string, n int) {
		add(prefix)
		if n == 0 {
			return
		}
		for i := range len(alpha) {
			all(prefix+alpha[i:i+1], n-1)
		}
	}
	all("", 5)
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		base := make([]byte, n)
		for i := range base {
			base[i] = byte('a' + r.IntN(26))
		}
		add(string(base))
		for i := range n {
			for _, d := range []byte{1, 0x80} {
				s := []byte(string(base))
				s[i] ^= d
				add(string(s))
			}
		}
	}
	for range 100_000 {
		add(fmt.Sprintf("%016x", r.Uint64()))
	}
}

// TestSame: same and sameRun, which compare runs of rows in one loop and
// one comparison of bytes, agree with comparing row by row (values by
// type and hash, keys by bytes), on runs of random batches, pairs of
// them that are often equal or nearly.
func TestSame(t *testing.T) {
	var equal, total int
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 5))
		g := &gen{r: r, metrics: 4}
		q := g.request(1+r.IntN(4), 1+r.IntN(200))
		// Sets that many points share, some with the same bytes in keys
		// or values cut differently.
		pool := [][]*common.KeyValue{kvs("a", "x", "bc", "y"), kvs("ab", "x", "c", "y"), kvs("k", "ab", "l", "c"), kvs("k", "a", "l", "bc")}
		for range 4 {
			pool = append(pool, g.attrs(r.IntN(7), false))
		}
		for _, rm := range q.ResourceMetrics {
			for _, m := range rm.ScopeMetrics[0].Metrics {
				for _, p := range m.GetGauge().DataPoints {
					if r.IntN(4) > 0 {
						p.Attributes = pool[r.IntN(len(pool))]
					}
				}
			}
		}
		b := g.batch(t, q)
		var c columns
		if err := c.init(b); err != nil {
			t.Fatal(err)
		}
		a := &c.ptAttrs
		for range 5000 {
			if a.n == 0 {
				break
			}
			n := r.IntN(min(a.n, 8) + 1)
			x, y := r.IntN(a.n-n+1), r.IntN(a.n-n+1)
			if r.IntN(2) == 0 { // the attributes of two points
				var end int
				x, end = a.entries(r.IntN(a.m.Len()))
				y, _ = a.entries(r.IntN(a.m.Len()))
				n = min(end-x, a.n-y)
			}
			wantVals, wantKeys := true, true
			for e := range n {
				if a.vals.typ[x+e] != a.vals.typ[y+e] || a.vals.hash(x+e) != a.vals.hash(y+e) {
					wantVals = false
				}
				if !bytes.Equal(a.keys.at(x+e), a.keys.at(y+e)) {
					wantKeys = false
				}
			}
			if got := a.vals.same(x, y, n); got != wantVals {
				t.Fatalf("seed %d: values of rows [%d, +%d) and [%d, +%d): same %v, want %v", seed, x, n, y, n, got, wantVals)
			}
			if got := a.keys.sameRun(x, y, n); got != wantKeys {
				t.Fatalf("seed %d: keys of rows [%d, +%d) and [%d, +%d): sameRun %v, want %v", seed, x, n, y, n, got, wantKeys)
			}
			total++
			if wantVals && n > 0 && x != y {
				equal++
			}
		}
		b.Release()
	}
	if equal < total/40 {
		t.Errorf("%d of %d runs equal: the test misses that case", equal, total)
	}
}
