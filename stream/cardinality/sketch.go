package cardinality

import (
	"math/bits"

	"github.com/axiomhq/hyperloglog"
)

// sketch counts distinct 64-bit hashes: exactly, in a small open-addressing
// set, until the set would outgrow the dense HyperLogLog of precision p
// (2^p bytes), then in that dense HyperLogLog (axiomhq/hyperloglog).
//
// Why not the library's sparse representation: it keeps a sorted,
// delta-coded list plus a temporary set, and rebuilds the list whenever
// 2^p/100 hashes not in the temporary set have arrived — including hashes
// already in the list, since the set is cleared after each rebuild. The
// same series arrive every scrape, so in steady state that was a list
// rebuild (allocation, O(list)) every ~164 points per sketch: 65 KB and 90
// allocations per 1,000 points, and half the speed. A set of hashes makes a
// repeat one probe, and a dense HyperLogLog never allocates.
//
// Once dense, a series sketch keeps its set as a filter of the hashes it
// has counted (see insertDense), while its generation's filter room lasts:
// a series seen again is then found in one probe, as in the exact set, so
// insert can still report it as a repeat (and Observe skip its label
// values), rather than report every hash as new.
type sketch struct {
	p     uint8
	shift uint8    // 64 - log2 len(set): a hash's home slot is h >> shift
	n     int      // hashes in set
	set   []uint64 // 0 = empty slot; len a power of two, at most 2^p/8 while exact; once dense, the filter or one empty slot
	dense *hyperloglog.Sketch
	room  *int // bytes its generation may still spend on filters; nil: no filter
	// Of a filter that cannot grow: points looked up and found new since
	// the last check (see tally).
	looked, fresh int
}

// minSlots is the size of a set's first table.
const minSlots = 8

func newSketch(p uint8) *sketch {
	s := &sketch{p: p}
	s.setTable(minSlots)
	return s
}

// newSeriesSketch returns a series sketch that, once dense, keeps a filter
// while room (its generation's) allows.
func newSeriesSketch(room *int) *sketch {
	s := newSketch(seriesPrecision)
	s.room = room
	return s
}

// Bounds of a dense sketch's filter: its largest table (256 KiB, about
// 24,000 series at load 3/4), the slots a hash may go to from its home
// slot, and the bytes all filters of a generation may hold.
const (
	maxFilterSlots = 1 << 15
	filterWindow   = 32
	maxFilterBytes = 4 << 20
)

// maxSlots is the largest set table, as many bytes as the dense sketch.
func (s *sketch) maxSlots() int { return 1 << (s.p - 3) }

// insert adds h. It reports false when h was already counted, which only
// an exact set can tell: a dense sketch always reports true. A hash
// already in its home slot, the usual repeat, is found inline (a dense
// sketch has one empty slot).
func (s *sketch) insert(h uint64) bool {
	if h != 0 && s.set[h>>s.shift] == h {
		return false
	}
	return s.insertSlow(h)
}

func (s *sketch) insertSlow(h uint64) bool {
	if s.dense != nil {
		return s.insertDense(h)
	}
	if h == 0 {
		h = 1 // 0 marks an empty slot
	}
	if !s.add(h) {
		return false
	}
	s.n++
	if 4*s.n <= 3*len(s.set) { // load <= 3/4
		return true
	}
	if len(s.set) < s.maxSlots() {
		s.rehash(2 * len(s.set))
		return true
	}
	s.toDense()
	return true
}

func (s *sketch) setTable(slots int) {
	s.set = make([]uint64, slots)
	s.shift = uint8(64 - bits.TrailingZeros(uint(slots)))
}

// add puts h in the set, reporting whether it was new.
func (s *sketch) add(h uint64) bool {
	mask := uint64(len(s.set) - 1)
	for i := h >> s.shift; ; i = (i + 1) & mask {
		switch s.set[i] {
		case h:
			return false
		case 0:
			s.set[i] = h
			return true
		}
	}
}

func (s *sketch) has(h uint64) bool {
	if len(s.set) == 0 {
		return false
	}
	mask := uint64(len(s.set) - 1)
	for i := h >> s.shift; ; i = (i + 1) & mask {
		switch s.set[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

func (s *sketch) rehash(slots int) {
	old := s.set
	s.setTable(slots)
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

func newDense(p uint8) *hyperloglog.Sketch {
	d, err := hyperloglog.NewSketch(p, false)
	if err != nil {
		panic(err) // the precisions are constants in range
	}
	return d
}

func (s *sketch) toDense() {
	s.dense = newDense(s.p)
	for _, h := range s.set {
		if h != 0 {
			s.dense.InsertHash(h)
		}
	}
	if s.room != nil && *s.room >= 16*len(s.set) {
		// The set, every hash of which is counted, becomes the filter, at
		// twice its size (the set is at load 3/4, its probes unbounded).
		*s.room -= 8 * len(s.set)
		s.growFilter()
		return
	}
	// One empty slot, for insert's inline lookup to miss.
	s.set, s.shift, s.n = make([]uint64, 1), 64, 0
}

// insertDense adds h to a dense sketch, reporting false when its filter
// holds h. The filter is a cache of hashes the dense sketch has counted,
// so a hash found in it was counted (and its series' label values added)
// earlier in the generation. It is an open-addressing table whose probes
// stop after filterWindow slots: it doubles at load 3/4, or when a window
// is full above load 5/8, while maxFilterSlots and its generation's room
// allow; else a hash whose window is full replaces one of the window's. A
// hash it dropped costs, when seen again, what it would without a filter
// (a dense insert and its label values), and goes back in.
func (s *sketch) insertDense(h uint64) bool {
	if len(s.set) == 1 || h == 0 { // no filter (or the empty-slot mark)
		s.dense.InsertHash(h)
		return true
	}
	for {
		mask := uint64(len(s.set) - 1)
		home := h >> s.shift
		for k := range uint64(filterWindow) {
			switch i := (home + k) & mask; s.set[i] {
			case h:
				return false
			case 0:
				s.dense.InsertHash(h)
				s.set[i] = h
				s.n++
				if 4*s.n > 3*len(s.set) {
					s.growFilter()
				}
				return true
			}
		}
		// Linear probing makes long clusters well before load 3/4: below
		// 5/8, a full window is not worth doubling the table for.
		if 8*s.n < 5*len(s.set) || !s.growFilter() {
			// The window is full: h replaces one of its hashes.
			s.dense.InsertHash(h)
			s.set[(home+h&(filterWindow-1))&mask] = h
			return true
		}
	}
}

// tally counts points looked up in a dense sketch and how many were new
// (not in its filter). A filter that cannot grow and found fewer than half
// of 4 tables' worth of points is dropped, its bytes given back to its
// generation: its series do not fit (they churn, or are too many), and a
// lookup that fails costs more than none.
func (s *sketch) tally(points, fresh int) {
	if len(s.set) <= 1 || s.dense == nil || (len(s.set) < maxFilterSlots && *s.room >= 8*len(s.set)) {
		return
	}
	s.looked += points
	s.fresh += fresh
	if s.looked < 4*len(s.set) {
		return
	}
	if 2*s.fresh > s.looked {
		*s.room += 8 * len(s.set)
		s.set, s.shift, s.n = make([]uint64, 1), 64, 0
	}
	s.looked, s.fresh = 0, 0
}

// growFilter doubles the filter, if maxFilterSlots and the room allow,
// keeping the hashes that fit in their windows (all, most likely, at its
// new load); it reports whether it did.
func (s *sketch) growFilter() bool {
	if len(s.set) >= maxFilterSlots || *s.room < 8*len(s.set) {
		return false
	}
	*s.room -= 8 * len(s.set)
	old := s.set
	s.setTable(2 * len(old))
	s.n = 0
	mask := uint64(len(s.set) - 1)
	for _, h := range old {
		if h == 0 {
			continue
		}
		home := h >> s.shift
		for k := range uint64(filterWindow) {
			if i := (home + k) & mask; s.set[i] == 0 {
				s.set[i] = h
				s.n++
				break
			}
		}
	}
	return true
}

// bytes is the memory the sketch holds, about.
func (s *sketch) bytes() int {
	if s.dense != nil {
		if len(s.set) > 1 { // a filter
			return 1<<s.p + 64 + 8*len(s.set)
		}
		return 1<<s.p + 64
	}
	return 8*len(s.set) + 48
}

// union estimates the number of distinct hashes in a and b (either may be
// nil). It does not change a or b.
func union(a, b *sketch) uint64 {
	switch {
	case a == nil && b == nil:
		return 0
	case b == nil:
		return a.estimate()
	case a == nil:
		return b.estimate()
	}
	if a.dense == nil && b.dense == nil {
		n := uint64(a.n)
		for _, h := range b.set {
			if h != 0 && !a.has(h) {
				n++
			}
		}
		return n
	}
	if a.dense == nil {
		a, b = b, a
	}
	u := a.dense.Clone()
	if b.dense != nil {
		if err := u.Merge(b.dense); err != nil {
			panic(err) // same precision
		}
	} else {
		for _, h := range b.set {
			if h != 0 {
				u.InsertHash(h)
			}
		}
	}
	return u.Estimate()
}

func (s *sketch) estimate() uint64 {
	if s.dense != nil {
		return s.dense.Estimate()
	}
	return uint64(s.n)
}

// bytes is the memory m holds, about.
func (m *metric) bytes() int {
	n := 96 + len(m.name) + m.series.bytes() + cap(m.labels)*40
	for _, l := range m.labels {
		n += len(l.key) + l.values.bytes()
	}
	return n
}
