package cardinality

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
