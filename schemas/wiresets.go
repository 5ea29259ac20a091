package schemas

import (
	"bytes"
	"hash/maphash"
	"slices"
)

// wireSets numbers the data points' attribute sets as the Builder decodes
// them, from the bytes of each point's attributes on the wire, and decodes
// a set seen before in the batch by copying the entries of its first row
// instead of parsing the bytes again. A backlog holds each series once per
// step, in the same order step after step, so most points of a worker's
// batch repeat a set, mostly the one that followed the previous point's
// set last time: that one is tried first, by comparing bytes alone. Build
// hands the numbers to the batch (Batch.ItemAttrSets) when at most half of
// the points are distinct, as FindItemAttrSets would have found them, and
// FindItemAttrSets then keeps them.
//
// Two rows get the same number only when their attribute bytes are equal,
// which equal entries make them only when each is encoded one way: so a
// row is numbered only when its attributes are one run of fields whose
// every KeyValue took appendKVs's usual encodings (one-byte lengths, a key
// then a string or int value, minimal varints), which encode equal entries
// alike. Any other row (a long value, a double, attributes split by other
// fields) stops the numbering for the rest of the batch; its rows are
// decoded as before, and the batch gets no numbers.
//
// Live traffic holds each series once per batch: numbering it is work for
// nothing (a hash and a copy of each set's bytes). So the numbering goes
// on while at least half of the rows numbered lately (each batch's rows
// weigh half as much as the next's) repeated a set: a worker's small batch
// of one step between batches of several does not turn it off. Otherwise
// (or when a batch stopped it) it is off for the next wireSetsProbe-1
// batches, and every wireSetsProbe-th batch tries again: a backlog is
// found within that many batches.
type wireSets struct {
	off     bool // not numbering this batch
	stopped bool // this batch stopped it (off too)
	skip    int  // batches left to decode without numbering
	// rows numbered lately and how many repeated a set, halved each batch
	rows, repeats int
	ids           []uint32 // the set of each row so far
	sets          []wireSet
	wire          []byte  // the sets' attribute bytes, one after the other
	slots         []int32 // open addressing on the hash: set number+1, 0 when empty
	seed          maphash.Seed
	empty         int32 // the set without attributes, plus 1; 0 before it is seen
}

type wireSet struct {
	hash         uint64
	wire0, wire1 int32 // its bytes in wireSets.wire
	row          int32 // its first row
	int0, int1   int32 // that row's int payloads in attrTable.ints
	next         int32 // the set of the row after its last row, or -1
}

const (
	wireSetsProbe = 16
	// maxWireSlots bounds the hash table kept from one batch to the next
	// (twice the sets of a batch of worker.max_batch_items' default).
	maxWireSlots = 1 << 17
)

// Test hooks: noWireSets turns the numbering off (decoding with and
// without it must build the same batch); wireHashMask makes hashes collide.
var (
	noWireSets   = false
	wireHashMask = ^uint64(0)
)

// find returns the set whose bytes are run and run's hash, or -1.
func (s *wireSets) find(run []byte) (int32, uint64) {
	if len(s.slots) == 0 {
		s.seed = maphash.MakeSeed()
		s.slots = make([]int32, 1024)
	}
	h := maphash.Bytes(s.seed, run) & wireHashMask
	mask := uint64(len(s.slots) - 1)
	for k := h & mask; ; k = (k + 1) & mask {
		n := s.slots[k]
		if n == 0 {
			return -1, h
		}
		if w := &s.sets[n-1]; w.hash == h && bytes.Equal(s.wire[w.wire0:w.wire1], run) {
			return n - 1, h
		}
	}
}

// add numbers the current row, whose attributes are run (hash h, not
// seen before) and whose int payloads are ints [int0, int1) of its table.
func (s *wireSets) add(run []byte, h uint64, row, int0, int1 int) {
	n := int32(len(s.sets))
	w0 := int32(len(s.wire))
	s.wire = append(s.wire, run...)
	s.sets = append(s.sets, wireSet{h, w0, int32(len(s.wire)), int32(row), int32(int0), int32(int1), -1})
	if 2*len(s.sets) > len(s.slots) {
		s.grow()
	} else {
		s.insert(h, n)
	}
	s.number(n)
}

// number gives the current row set n, and makes n the set predicted after
// the previous row's.
func (s *wireSets) number(n int32) {
	if len(s.ids) > 0 {
		s.sets[s.ids[len(s.ids)-1]].next = n
	}
	s.ids = append(s.ids, uint32(n))
}

// predict is the set that followed the previous row's set when it was last
// seen, or -1: in a backlog the series come in the same order step after
// step, so a row is mostly the set predicted, and confirmed by comparing
// its bytes alone, with no hash to compute and look up.
func (s *wireSets) predict() int32 {
	if len(s.ids) == 0 {
		return -1
	}
	return s.sets[s.ids[len(s.ids)-1]].next
}

func (s *wireSets) insert(h uint64, n int32) {
	mask := uint64(len(s.slots) - 1)
	k := h & mask
	for s.slots[k] != 0 {
		k = (k + 1) & mask
	}
	s.slots[k] = n + 1
}

// grow doubles the slots and inserts every set again.
func (s *wireSets) grow() {
	s.slots = make([]int32, 2*len(s.slots))
	for n := range s.sets {
		s.insert(s.sets[n].hash, int32(n))
	}
}

// stop gives the numbering up until the next batch.
func (s *wireSets) stop() {
	s.off, s.stopped = true, true
	s.ids = s.ids[:0]
}

// take returns the numbers of the batch's n rows when the numbering held
// for every row and at most half of them are distinct (else nil), whether
// it held, and starts the next batch.
func (s *wireSets) take(n int) (ids []uint32, numbered bool) {
	numbered = !s.off && len(s.ids) == n
	if numbered && n > 1 && len(s.sets) <= n/2 {
		ids = s.ids
		s.ids = make([]uint32, 0, n)
	}
	switch {
	case numbered:
		s.rows = s.rows/2 + n
		s.repeats = s.repeats/2 + n - len(s.sets)
		if 2*s.repeats < s.rows {
			s.skip = wireSetsProbe - 1 // not worth it lately
		}
	case s.stopped:
		s.skip = wireSetsProbe - 1 // encodings it does not number
	}
	if s.skip > 0 {
		s.rows, s.repeats = 0, 0
	}
	s.restart()
	return ids, numbered
}

// restart starts a batch: the last one's sets are forgotten.
func (s *wireSets) restart() {
	s.ids = s.ids[:0]
	s.sets = s.sets[:0]
	s.wire = s.wire[:0]
	s.empty = 0
	if len(s.slots) > maxWireSlots {
		s.slots = nil // a batch of more sets than usual: not kept
	}
	clear(s.slots)
	s.stopped = false
	s.off = noWireSets || s.skip > 0
	if s.skip > 0 {
		s.skip--
	}
}

// attrRun is where the run of fields of p from i on whose one-byte tag is
// tag and whose length takes one byte ends.
func attrRun(p []byte, i int, tag byte) int {
	for i+1 < len(p) && p[i] == tag && p[i+1] < 0x80 && int(p[i+1]) <= len(p)-i-2 {
		i += 2 + int(p[i+1])
	}
	return i
}

// copyRow appends to the open row the entries of row r, whose int payloads
// are ints [int0, int1): a row of usual encodings only (no doubles, bools
// or bytes), as wireSets numbers them. The copy waits while the rows
// copied are consecutive (the first step of a backlog's series, step
// after step), to be made for all of them at once (flushCopies): before
// anything else is appended, or the table is read.
func (a *attrTable) copyRow(r, int0, int1 int32) {
	if a.copy1 > a.copy0 && r == a.copy1 && int0 == a.copyInt1 {
		a.copy1, a.copyInt1 = r+1, int1
	} else {
		a.flushCopies()
		a.copy0, a.copy1, a.copyInt0, a.copyInt1 = r, r+1, int0, int1
	}
	a.copyEnts += a.rowOff[r+1] - a.rowOff[r]
}

// flushCopies appends the entries of the rows copyRow holds back.
func (a *attrTable) flushCopies() {
	if a.copy1 == a.copy0 {
		return
	}
	if a.started && !a.checkUpTo() { // what comes before, but not the copies
		a.invalid = true
	}
	e0, e1 := a.rowOff[a.copy0], a.rowOff[a.copy1]
	base := int32(len(a.typs))
	a.typs = append(a.typs, a.typs[e0:e1]...)
	k0, k1 := a.keyOff[e0], a.keyOff[e1]
	a.keyOff = appendShifted(a.keyOff, a.keyOff[e0+1:e1+1], int32(len(a.keyData))-k0)
	a.keyData = append(a.keyData, a.keyData[k0:k1]...)
	s0, s1 := a.strOff[e0], a.strOff[e1]
	a.strOff = appendShifted(a.strOff, a.strOff[e0+1:e1+1], int32(len(a.strData))-s0)
	a.strData = append(a.strData, a.strData[s0:s1]...)
	for _, x := range a.ints[a.copyInt0:a.copyInt1] {
		a.ints = append(a.ints, sparse{x.i - e0 + base, x.v})
	}
	a.copy0, a.copy1, a.copyEnts = 0, 0, 0
	a.checkedKeys, a.checkedStrs = len(a.keyOff)-1, len(a.strOff)-1
}

// appendShifted appends the offsets of src, each plus d.
func appendShifted(dst, src []int32, d int32) []int32 {
	n := len(dst)
	dst = slices.Grow(dst, len(src))[:n+len(src)]
	for i, o := range src {
		dst[n+i] = o + d
	}
	return dst
}

// attrRow decodes the attributes of the open row of a data point, the run
// of fields from i on whose tag is attrTag, copying them from the first
// row of their set when the batch had them before; it returns where the
// run ends, or i when its fields are not all of the usual encodings (the
// caller reads them one by one).
func (t *pointBuilder) attrRow(p []byte, i int, attrTag byte) (int, error) {
	s := &t.sets
	if s.off {
		j, _, err := t.attrs.appendKVs(p, i, attrTag)
		return j, err
	}
	if n := s.predict(); n >= 0 {
		w := &s.sets[n]
		// The run is the set's when it starts with its bytes and ends there.
		if end := i + int(w.wire1-w.wire0); end <= len(p) && (end == len(p) || p[end] != attrTag) &&
			bytes.Equal(p[i:end], s.wire[w.wire0:w.wire1]) {
			t.attrs.copyRow(w.row, w.int0, w.int1)
			s.number(n)
			return end, nil
		}
	}
	end := attrRun(p, i, attrTag)
	run := p[i:end]
	n, h := s.find(run)
	if n >= 0 {
		w := &s.sets[n]
		t.attrs.copyRow(w.row, w.int0, w.int1)
		s.number(n)
		return end, nil
	}
	t.attrs.flushCopies()
	int0 := len(t.attrs.ints)
	j, fast, err := t.attrs.appendKVs(p, i, attrTag)
	if err != nil || !fast || j != end {
		s.stop()
		return j, err
	}
	s.add(run, h, t.attrs.len()-1, int0, len(t.attrs.ints))
	return j, nil
}

// noAttrs numbers the open row of a data point without attributes.
func (t *pointBuilder) noAttrs() {
	s := &t.sets
	if s.off {
		return
	}
	if s.empty > 0 { // known: no hash to look up
		s.number(s.empty - 1)
		return
	}
	_, h := s.find(nil) // runs of attributes are never empty: not there
	s.add(nil, h, t.attrs.len()-1, len(t.attrs.ints), len(t.attrs.ints))
	s.empty = int32(len(s.sets))
}
