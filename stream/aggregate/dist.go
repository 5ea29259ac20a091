package aggregate

import "math"

// maxExpBuckets caps the buckets per side of a merged exponential
// histogram; wider ranges are downscaled further.
const maxExpBuckets = 160

// Flags of a dist.
const (
	dHasSum    = 1 << iota // sum is set
	dHasMinMax             // min and max are set
	dExp                   // exponential histogram (scale, zero and signed buckets)
)

// dist is a histogram's, exponential histogram's or summary's count, sum,
// min, max and buckets: the last point of an input, an interval's increase
// or an output series' running total.
type dist struct {
	count    uint64
	sum      float64
	min, max float64
	flags    uint8
	buckets  []uint64 // explicit bounds
	scale    int32
	zc       uint64
	zt       float64
	pos, neg expb
}

// expb are the buckets of one side of an exponential histogram: counts[i]
// is the bucket of index off+i.
type expb struct {
	off    int32
	counts []uint64
}

func (d *dist) reset() {
	*d = dist{buckets: d.buckets[:0], pos: expb{counts: d.pos.counts[:0]}, neg: expb{counts: d.neg.counts[:0]}}
}

// copyFrom makes d a deep copy of s, reusing d's slices.
func (d *dist) copyFrom(s *dist) {
	b, p, n := append(d.buckets[:0], s.buckets...), append(d.pos.counts[:0], s.pos.counts...), append(d.neg.counts[:0], s.neg.counts...)
	*d = *s
	d.buckets, d.pos.counts, d.neg.counts = b, p, n
}

// downscale lowers the resolution of e by by scale steps: index i goes to
// i >> by (floor for negative indices too).
func (e *expb) downscale(by int32) {
	if by <= 0 || len(e.counts) == 0 {
		return
	}
	if by > 62 {
		by = 62
	}
	lo := int64(e.off) >> by
	w := 0
	for i, c := range e.counts {
		// j never decreases and grows by at most one per step, and j <= i:
		// slot j is either the next one to open or already read.
		j := int((int64(e.off)+int64(i))>>by - lo)
		if j == w {
			e.counts[w] = 0
			w++
		}
		e.counts[j] += c
	}
	e.counts = e.counts[:w]
	e.off = int32(lo)
}

// trim drops leading and trailing zero buckets.
func (e *expb) trim() {
	i, j := 0, len(e.counts)
	for i < j && e.counts[i] == 0 {
		i++
	}
	for j > i && e.counts[j-1] == 0 {
		j--
	}
	if i == j {
		e.counts, e.off = e.counts[:0], 0
		return
	}
	if i > 0 {
		n := copy(e.counts, e.counts[i:j])
		e.counts = e.counts[:n]
		e.off += int32(i)
		return
	}
	e.counts = e.counts[:j]
}

// span is the index range [lo, hi) of e (empty: ok false).
func (e *expb) span() (lo, hi int64, ok bool) {
	if len(e.counts) == 0 {
		return 0, 0, false
	}
	return int64(e.off), int64(e.off) + int64(len(e.counts)), true
}

// fitScale is the largest scale <= s at which the union of a's and b's
// indices (each at scale s) spans at most maxExpBuckets.
func fitScale(s int32, a, b *expb) int32 {
	lo, hi, ok := a.span()
	if l2, h2, ok2 := b.span(); ok2 {
		if !ok || l2 < lo {
			lo = l2
		}
		if !ok || h2 > hi {
			hi = h2
		}
		ok = true
	}
	if !ok {
		return s
	}
	hi-- // inclusive
	for by := int32(0); ; by++ {
		if (hi>>by)-(lo>>by)+1 <= maxExpBuckets || by > 62 {
			return s - by
		}
	}
}

// add adds b's counts to e (same scale).
func (e *expb) add(b *expb) {
	if len(b.counts) == 0 {
		return
	}
	if len(e.counts) == 0 {
		e.off, e.counts = b.off, append(e.counts[:0], b.counts...)
		return
	}
	lo, hi := min(e.off, b.off), max(e.off+int32(len(e.counts)), b.off+int32(len(b.counts)))
	n := int(hi - lo)
	if lo < e.off {
		shift := int(e.off - lo)
		e.counts = append(e.counts, make([]uint64, shift)...)
		copy(e.counts[shift:], e.counts[:len(e.counts)-shift])
		clear(e.counts[:shift])
		e.off = lo
	}
	for len(e.counts) < n {
		e.counts = append(e.counts, 0)
	}
	for i, c := range b.counts {
		e.counts[int(b.off-e.off)+i] += c
	}
}

// sub sets e to e - b (same scale); ok is false when a bucket of b exceeds e's.
func (e *expb) subOK(b *expb) bool {
	for i, c := range b.counts {
		j := int(int64(b.off) - int64(e.off) + int64(i))
		if c == 0 {
			continue
		}
		if j < 0 || j >= len(e.counts) || e.counts[j] < c {
			return false
		}
	}
	for i, c := range b.counts {
		if c != 0 {
			e.counts[int(b.off-e.off)+i] -= c
		}
	}
	return true
}

// mergeMinMax folds s's min and max into d's: set only while every
// contribution had them.
func (d *dist) mergeMinMax(s *dist, first bool) {
	switch {
	case first:
		d.min, d.max = s.min, s.max
		d.flags = d.flags&^dHasMinMax | s.flags&dHasMinMax
	case d.flags&s.flags&dHasMinMax != 0:
		d.min, d.max = math.Min(d.min, s.min), math.Max(d.max, s.max)
	default:
		d.flags &^= dHasMinMax
	}
}

// add merges s into d; first says d is empty (takes s's flags).
func (d *dist) add(s *dist, first bool) {
	if first {
		d.copyFrom(s)
		return
	}
	d.count += s.count
	if d.flags&s.flags&dHasSum != 0 {
		d.sum += s.sum
	} else {
		d.flags &^= dHasSum
	}
	d.mergeMinMax(s, false)
	if len(d.buckets) == len(s.buckets) {
		for i, c := range s.buckets {
			d.buckets[i] += c
		}
	}
	if d.flags&dExp == 0 {
		return
	}
	d.zc += s.zc
	d.zt = math.Max(d.zt, s.zt)
	scale := min(d.scale, s.scale)
	// s is read only: downscale a copy when it is finer.
	sp, sn := s.pos, s.neg
	if s.scale > scale {
		sp = expb{off: s.pos.off, counts: append([]uint64(nil), s.pos.counts...)}
		sn = expb{off: s.neg.off, counts: append([]uint64(nil), s.neg.counts...)}
		sp.downscale(s.scale - scale)
		sn.downscale(s.scale - scale)
	}
	d.pos.downscale(d.scale - scale)
	d.neg.downscale(d.scale - scale)
	d.scale = scale
	fp, fn := fitScale(scale, &d.pos, &sp), fitScale(scale, &d.neg, &sn)
	if f := min(fp, fn); f < scale {
		d.pos.downscale(scale - f)
		d.neg.downscale(scale - f)
		sp = expb{off: sp.off, counts: append([]uint64(nil), sp.counts...)}
		sn = expb{off: sn.off, counts: append([]uint64(nil), sn.counts...)}
		sp.downscale(scale - f)
		sn.downscale(scale - f)
		d.scale = f
	}
	d.pos.add(&sp)
	d.neg.add(&sn)
}

// increase sets inc to cur - last, the increase of a cumulative input
// since its last point. It returns false on a reset (count, zero count or
// a bucket went down, the zero threshold or the bucket layout changed):
// then the caller takes cur whole.
func increase(inc, cur, last *dist) bool {
	if cur.count < last.count || cur.zc < last.zc || len(cur.buckets) != len(last.buckets) ||
		cur.flags&dExp != last.flags&dExp || cur.zt != last.zt {
		return false
	}
	for i, c := range cur.buckets {
		if c < last.buckets[i] {
			return false
		}
	}
	inc.copyFrom(cur)
	inc.count -= last.count
	inc.zc -= last.zc
	if cur.flags&last.flags&dHasSum != 0 {
		inc.sum -= last.sum
	} else {
		inc.flags &^= dHasSum
	}
	for i := range inc.buckets {
		inc.buckets[i] -= last.buckets[i]
	}
	if cur.flags&dExp == 0 {
		return true
	}
	// Bring both to the coarser scale: the older is downscaled to the
	// newer's scale (or the newer to the older's when it is finer).
	lp, ln := last.pos, last.neg
	if last.scale > cur.scale {
		lp = expb{off: last.pos.off, counts: append([]uint64(nil), last.pos.counts...)}
		ln = expb{off: last.neg.off, counts: append([]uint64(nil), last.neg.counts...)}
		lp.downscale(last.scale - cur.scale)
		ln.downscale(last.scale - cur.scale)
	} else if cur.scale > last.scale {
		inc.pos.downscale(cur.scale - last.scale)
		inc.neg.downscale(cur.scale - last.scale)
		inc.scale = last.scale
	}
	if !inc.pos.subOK(&lp) || !inc.neg.subOK(&ln) {
		return false
	}
	inc.pos.trim()
	inc.neg.trim()
	return true
}
