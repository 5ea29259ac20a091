package schemas

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// wireSets numbers the data points' attribute sets as the Builder decodes
// them, from the bytes of each point's attributes on the wire, and decodes
// a set seen before by copying its entries, decoded when it was first seen
// and kept (setStore), instead of parsing the bytes again. The sets are
// kept from batch to batch: a backlog holds each series once per step,
// and live traffic once per scrape, in the same order step after step,
// so most points repeat a set seen before, mostly the one that followed
// the previous point's set last time: that one is tried first, by
// comparing bytes alone. Build hands the batch its numbers (in the order
// its sets first came: Batch.ItemAttrSets) when at most half of its
// points are distinct, as FindItemAttrSets would have found them, and
// FindItemAttrSets then keeps them.
//
// Two rows get the same set only when their attribute bytes are equal,
// which equal entries make them only when each is encoded one way: so a
// row is numbered only when its attributes are one run of fields whose
// every KeyValue took appendKVs's usual encodings (one-byte lengths, a key
// then a string or int value, minimal varints), which encode equal entries
// alike. Any other row (a long value, a double, attributes split by other
// fields) stops the numbering for the rest of the batch; its rows are
// decoded as before, and the batch gets no numbers.
//
// When points bring sets not seen before (series that churn, or more than
// the store holds), the numbering is work for nothing (a hash and a copy
// of each set's bytes and entries). So it goes on while at least half of
// the rows numbered lately (each batch's rows weigh half as much as the
// next's) found their set known. Otherwise (or when a batch stopped it)
// it is off for the next wireSetsProbe-1 batches, and every
// wireSetsProbe-th batch tries again: repeating sets are found within that
// many batches.
//
// What is kept is bounded (maxWireSlots, maxSetBytes): past either, at the
// start of a batch, every set is forgotten. So is every set when a request
// fails: its entries may hold strings whose check failed.
type wireSets struct {
	off     bool // not numbering this batch
	stopped bool // this batch stopped it (off too)
	skip    int  // batches left to decode without numbering
	// rows numbered lately and how many found their set known, halved
	// each batch
	rows, repeats int
	ids           []uint32  // the batch's number of each row so far
	pids          *[]uint32 // the kept number of each row so far (from setIDBufs)
	gen           uint32    // the batch, for wireSet.gen
	locals        int32     // sets numbered in the batch
	added         int       // sets added in the batch
	prev          int32     // the set of the previous row numbered, or -1

	// kept from batch to batch
	sets  []wireSet
	wire  []byte    // the sets' attribute bytes, one after the other
	store *setStore // their decoded entries
	slots []int32   // open addressing on the hash: set number+1, 0 when empty
	seed  maphash.Seed
	empty int32  // the set without attributes, plus 1; 0 before it is seen
	space uint64 // the numbering of the kept sets (Batch.SetSpace)
}

// setSpaces numbers the numberings of kept sets of every Builder.
var setSpaces atomic.Uint64

// setIDBufs holds the kept numbers of released batches (Batch.ItemSetIDs)
// for the batches to come.
var setIDBufs = sync.Pool{New: func() any { return new([]uint32) }}

type wireSet struct {
	hash         uint64
	wire0, wire1 int32 // its bytes in wireSets.wire
	int0, int1   int32 // its int payloads in setStore.ints
	next         int32 // the set of the row after its last row, or -1
	gen          uint32
	local        int32 // its number in batch gen
}

// setStore holds the decoded entries of the sets: set n's are entries
// [ents[n], ents[n+1]).
type setStore struct {
	entries
	ents []int32
}

// appendRow appends a set's entries, [e0, len(a.typs)) of a, whose int
// payloads are a.ints[int0:].
func (st *setStore) appendRow(a *attrTable, e0, int0 int) {
	st.appendFrom(&a.entries, int32(e0), int32(len(a.typs)), int32(int0), int32(len(a.ints)))
	st.ents = append(st.ents, int32(len(st.typs)))
}

func (st *setStore) reset() {
	st.typs, st.keyData, st.strData, st.ints = st.typs[:0], st.keyData[:0], st.strData[:0], st.ints[:0]
	st.keyOff = append(st.keyOff[:0], 0)
	st.strOff = append(st.strOff[:0], 0)
	st.ents = append(st.ents[:0], 0)
}

const (
	wireSetsProbe = 16
	// maxWireSlots and maxSetBytes bound what is kept from one batch to
	// the next: the hash table (up to 65,536 sets), and the memory the
	// sets take (8 MiB: about 20,000 sets of the realistic corpus's 6
	// attributes, at about 400 bytes each: their bytes on the wire,
	// decoded, and indexed). A batch adds its new sets before the bound is
	// checked at the next (a batch of max_batch_items' default, 16,384
	// points, adds up to about 7 MiB). The memory is kept when the sets
	// are forgotten, up to 4 times the bound (what they took at most,
	// with the slices' room to grow), so that series that churn do not
	// grow it again each time.
	maxWireSlots = 1 << 17
	maxSetBytes  = 8 << 20
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
// seen before) and were decoded as entries [e0, len(a.typs)) of a, their
// int payloads a.ints[int0:].
func (s *wireSets) add(run []byte, h uint64, a *attrTable, e0, int0 int) {
	n := int32(len(s.sets))
	w0 := int32(len(s.wire))
	s.wire = append(s.wire, run...)
	i0 := int32(len(s.store.ints))
	s.store.appendRow(a, e0, int0)
	s.sets = append(s.sets, wireSet{hash: h, wire0: w0, wire1: int32(len(s.wire)), int0: i0, int1: int32(len(s.store.ints)), next: -1})
	s.added++
	if 2*len(s.sets) > len(s.slots) {
		s.grow()
	} else {
		s.insert(h, n)
	}
	s.number(n)
}

// copy appends to the open row of a the entries of set n, and numbers it.
func (s *wireSets) copy(a *attrTable, n int32) {
	w := &s.sets[n]
	a.copyRow(s.store, n, w.int0, w.int1)
	s.number(n)
}

// number gives the current row set n, and makes n the set predicted after
// the previous row's.
func (s *wireSets) number(n int32) {
	if s.prev >= 0 {
		s.sets[s.prev].next = n
	}
	s.prev = n
	*s.pids = append(*s.pids, uint32(n))
	w := &s.sets[n]
	if w.gen != s.gen {
		w.gen, w.local = s.gen, s.locals
		s.locals++
	}
	s.ids = append(s.ids, uint32(w.local))
}

// predict is the set that followed the previous row's set when it was last
// seen, or -1: in a backlog the series come in the same order step after
// step, so a row is mostly the set predicted, and confirmed by comparing
// its bytes alone, with no hash to compute and look up.
func (s *wireSets) predict() int32 {
	if s.prev < 0 {
		return -1
	}
	return s.sets[s.prev].next
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
	s.ids, *s.pids = s.ids[:0], (*s.pids)[:0]
	s.prev = -1
}

// kept returns the kept numbers of the batch's n rows and their space when
// the numbering held for every row, or nil (before take). The batch owns
// them, and gives them back to setIDBufs at Release.
func (s *wireSets) kept(n int) (pids *[]uint32, space uint64) {
	if s.off || len(*s.pids) != n || n == 0 {
		return nil, 0
	}
	pids = s.pids
	s.pids = setIDBufs.Get().(*[]uint32)
	*s.pids = (*s.pids)[:0]
	return pids, s.space
}

// take returns the numbers of the batch's n rows when the numbering held
// for every row and at most half of them are distinct (else nil), whether
// it held, and starts the next batch.
func (s *wireSets) take(n int) (ids []uint32, numbered bool) {
	numbered = !s.off && len(s.ids) == n
	if numbered && n > 1 && int(s.locals) <= n/2 {
		ids = s.ids
		s.ids = make([]uint32, 0, n)
	}
	switch {
	case numbered:
		s.rows = s.rows/2 + n
		s.repeats = s.repeats/2 + n - s.added
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

// restart starts a batch: the sets are kept, within their bounds.
func (s *wireSets) restart() {
	if s.pids == nil {
		s.pids = setIDBufs.Get().(*[]uint32)
	}
	s.ids, *s.pids = s.ids[:0], (*s.pids)[:0]
	s.locals, s.added = 0, 0
	s.gen++
	if s.store == nil || s.gen == 0 || len(s.slots) > maxWireSlots {
		s.forget()
	} else if used, _ := s.bytes(); used > maxSetBytes {
		s.forget()
	}
	s.stopped = false
	s.off = noWireSets || s.skip > 0
	if s.skip > 0 {
		s.skip--
	}
}

// bytes is about the memory the kept sets take (used), and hold with the
// room their slices have beyond it.
func (s *wireSets) bytes() (used, held int) {
	st := s.store
	const set, ent = int(unsafe.Sizeof(wireSet{})), int(unsafe.Sizeof(sparse{}))
	used = len(s.wire) + set*len(s.sets) + 4*len(s.slots) + len(st.typs) + len(st.keyData) + len(st.strData) +
		4*(len(st.keyOff)+len(st.strOff)+len(st.ents)) + ent*len(st.ints)
	held = cap(s.wire) + set*cap(s.sets) + 4*cap(s.slots) + cap(st.typs) + cap(st.keyData) + cap(st.strData) +
		4*(cap(st.keyOff)+cap(st.strOff)+cap(st.ents)) + ent*cap(st.ints)
	return used, held
}

// forget forgets every set. The memory is kept for the sets to come, but
// what outgrew the bounds.
func (s *wireSets) forget() {
	if s.store == nil {
		s.store = new(setStore)
	} else if _, held := s.bytes(); held > 4*maxSetBytes {
		s.store, s.sets, s.wire = new(setStore), nil, nil
	}
	s.store.reset()
	s.sets, s.wire = s.sets[:0], s.wire[:0]
	if len(s.slots) > maxWireSlots {
		s.slots = nil
	}
	clear(s.slots)
	s.empty, s.prev = 0, -1
	s.gen = max(s.gen, 1)
	s.space = setSpaces.Add(1)
}

// attrRun is where the run of fields of p from i on whose one-byte tag is
// tag and whose length takes one byte ends.
func attrRun(p []byte, i int, tag byte) int {
	for i+1 < len(p) && p[i] == tag && p[i+1] < 0x80 && int(p[i+1]) <= len(p)-i-2 {
		i += 2 + int(p[i+1])
	}
	return i
}

// copyRow appends to the open row the entries of row r of src, whose int
// payloads are src.ints[int0:int1]: a row of usual encodings only (no
// doubles, bools or bytes), as wireSets numbers them. The copy waits while
// the rows copied are consecutive (the sets of a backlog's series, step
// after step, come in the order they were first seen), to be made for all
// of them at once (flushCopies): before anything else is appended, or the
// table is read.
func (a *attrTable) copyRow(src *setStore, r, int0, int1 int32) {
	if a.copy1 > a.copy0 && src == a.copySrc && r == a.copy1 && int0 == a.copyInt1 {
		a.copy1, a.copyInt1 = r+1, int1
	} else {
		a.flushCopies()
		a.copySrc, a.copy0, a.copy1, a.copyInt0, a.copyInt1 = src, r, r+1, int0, int1
	}
	a.copyEnts += src.ents[r+1] - src.ents[r]
}

// flushCopies appends the entries of the rows copyRow holds back.
func (a *attrTable) flushCopies() {
	if a.copy1 == a.copy0 {
		return
	}
	if a.started && !a.checkUpTo() { // what comes before, but not the copies
		a.invalid = true
	}
	src := a.copySrc
	a.appendFrom(&src.entries, src.ents[a.copy0], src.ents[a.copy1], a.copyInt0, a.copyInt1)
	a.copySrc, a.copy0, a.copy1, a.copyEnts = nil, 0, 0, 0
	a.checkedKeys, a.checkedStrs = len(a.keyOff)-1, len(a.strOff)-1
}

// appendShifted appends the offsets of src, each plus d.
func appendShifted(dst, src []int32, d int32) []int32 {
	n := len(dst)
	dst = slices.Grow(dst, len(src))[:n+len(src)]
	out := dst[n:]
	src = src[:len(out)] // no bounds checks in the loop
	for i := range out {
		out[i] = src[i] + d
	}
	return dst
}

// attrRow decodes the attributes of the open row of a data point, the run
// of fields from i on whose tag is attrTag, copying their entries when
// their set was seen before; it returns where the run ends, or i when its
// fields are not all of the usual encodings (the caller reads them one by
// one).
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
			s.copy(&t.attrs, n)
			return end, nil
		}
	}
	end := attrRun(p, i, attrTag)
	run := p[i:end]
	n, h := s.find(run)
	if n >= 0 {
		s.copy(&t.attrs, n)
		return end, nil
	}
	t.attrs.flushCopies()
	e0, int0 := len(t.attrs.typs), len(t.attrs.ints)
	j, fast, err := t.attrs.appendKVs(p, i, attrTag)
	if err != nil || !fast || j != end {
		s.stop()
		return j, err
	}
	s.add(run, h, &t.attrs, e0, int0)
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
	s.add(nil, h, &t.attrs, len(t.attrs.typs), len(t.attrs.ints))
	s.empty = int32(len(s.sets))
}
