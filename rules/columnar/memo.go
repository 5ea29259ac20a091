package columnar

import (
	"bytes"
	"hash/maphash"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// rowMemo remembers, within one batch, the outcome of the rules on an
// item row, for the signals whose rules read and write nothing but
// attributes, resource and scope (sigInfo.memo): another row with equal
// attribute entries (same keys, value types and values, in the same order)
// and the same resource and scope (when the rules use them) has the same
// outcome, so the rules are not run again. When the rules read the values
// of a few attribute keys only (sigInfo.project), rows need only the same
// keys in the same order (their layout) and equal values of those keys.
// The patch is shared: its entries copied from the input are relative to
// the row (patchBase).
//
// The entries are found by the hash of their key in slots, an open
// addressing table (linear probing) of entry indexes, kept with the
// entries from batch to batch. Before hashing, a row is compared with the
// entry the row before it had (last): consecutive rows are often equal.
// predict turns that check off while it mostly fails, and on when the
// row's entry, found by hash, was last after all.
type rowMemo struct {
	seed    maphash.Seed
	buf     []byte
	cmp     []byte  // scratch of sameFields
	slots   []int32 // 1 + entry index, 0 empty; len a power of 2
	entries []memoEntry
	hits    int
	off     bool  // too few hits in this batch: stopped
	last    int32 // the entry of the row before, or -1
	predict int8  // >= 0: compare a row with last first
	// predicted counts the hits on last (for tests)
	predicted int
	// project: rows are keyed by their layout and projected values
	// (sigInfo.project). The first memoProbe rows of a batch are, and
	// they count the distinct rows whole too (probe): if keying rows
	// whole would hit about as often, the rest of the batch is keyed
	// whole, as without projection. (attrColumn once copied the output
	// row of equal rows keyed whole; it now writes every row from its
	// own entries, so the probe's gain is to be measured again.)
	project bool
	probe   []uint64 // hashes of the probe rows keyed whole
	probing bool
	layouts layouts
}

type memoEntry struct {
	hash     uint64
	row      int32 // the row the outcome was computed on
	r, s     int32
	layout   int32 // the row's layout when keyed by it, else -1
	replays  int32 // rows that replayed it (their tally is added at the end)
	drop     bool
	err      bool
	hasPatch bool
	patch    int32 // index in st.patches, when hasPatch
	mark     rules.Mark
	tally    rules.Tally
}

// Give up memoising in a batch after memoGiveUp misses when fewer than
// 1 in memoMinHitRate rows hit. The slot table starts at memoSlots.
const (
	memoGiveUp     = 1024
	memoMinHitRate = 4
	memoProbe      = 256
	memoSlots      = 64
)

// predictMin and predictMax bound rowMemo.predict.
const (
	predictMin = -2
	predictMax = 2
)

func (m *rowMemo) reset() {
	if m.slots == nil {
		m.seed = maphash.MakeSeed()
		m.slots = make([]int32, memoSlots)
	}
	if !m.clearSlots() {
		clear(m.slots)
	}
	for i := range m.entries {
		m.entries[i] = memoEntry{tally: m.entries[i].tally}
	}
	m.entries = m.entries[:0]
	m.hits = 0
	m.off = false
	m.last, m.predict, m.predicted = -1, 0, 0
	m.project, m.probing = false, false
	m.probe = m.probe[:0]
	m.layouts.reset()
}

// memoRow looks item row i (resource r, scope s) up in the memo. On a hit
// it gives the row the memoised outcome (replay) and reports true; on a
// miss it returns the entry to record the row's outcome in, or nil when
// the memo gives up on this batch.
//
// The key, hashed here rather than by a function of its own, is what the
// outcome depends on: the resource and scope when the rules read them, the
// attribute entries as stored, the fields the rules read (fieldKeys). A
// hit is most rows' whole path in repetitive batches, where one more call
// per row shows.
func (st *state) memoRow(i, r, s int) (*memoEntry, bool) {
	if !st.info.res {
		r = -1
	}
	if !st.info.memoScope {
		s = -1
	}
	m := &st.memo
	if m.probing {
		st.probeRow(i)
	}
	if m.project && st.info.attrs && len(st.fieldKeys) == 0 {
		if me, hit, ok := st.memoByLayout(i, r, s); ok {
			return me, hit
		}
	}
	lay := int32(-1)
	c := &st.itAttrs
	null := st.info.attrs && c.m.IsNull(i)
	var start, end int
	if st.info.attrs && !null {
		start, end = int(c.rowOff[i]), int(c.rowOff[i+1])
		if m.project {
			lay = m.layouts.of(c, start, end, st.info.attrVals)
		}
	}
	if m.predict >= 0 && m.last >= 0 {
		if st.sameKey(&m.entries[m.last], i, r, s, lay) {
			m.hits++
			m.predicted++
			m.predict = min(m.predict+1, predictMax)
			st.replay(i, &m.entries[m.last])
			return nil, true
		}
		m.predict--
	}
	b := m.buf[:0]
	b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24), byte(s), byte(s>>8), byte(s>>16), byte(s>>24))
	switch {
	case null:
		b = append(b, 0xff)
	case lay >= 0:
		b = appendProjected(b, c, start, lay, m.layouts.all[lay].vpos)
	case st.info.attrs:
		b = appendRowRaw(b, c, start, end)
	}
	for _, f := range st.fieldKeys {
		b = f(b, i)
	}
	m.buf = b
	h := maphash.Bytes(m.seed, b)
	if e := st.memoLookup(h, i, r, s, lay); e >= 0 {
		if e == m.last {
			m.predict = min(m.predict+1, predictMax)
		}
		m.last = e
		m.hits++
		st.replay(i, &m.entries[e])
		return nil, true
	}
	if len(m.entries) >= memoGiveUp && m.hits*memoMinHitRate < len(m.entries) {
		m.off = true
		return nil, false
	}
	me := st.memoAdd(h, i, r, s)
	me.layout = lay
	m.last = int32(len(m.entries) - 1)
	return me, false
}

// beginProbe starts a batch keyed by layout when the rules allow it.
func (m *rowMemo) beginProbe(project bool) {
	m.project, m.probing = project, project
}

// probeRow counts the distinct rows of the first memoProbe rows keyed
// whole, then decides how the batch's further rows are keyed.
func (st *state) probeRow(i int) {
	m := &st.memo
	if m.hits+len(m.entries) >= memoProbe {
		m.probing = false
		m.project = distinct(m.probe) > 2*len(m.entries)
		return
	}
	c := &st.itAttrs
	if c.m.IsNull(i) {
		return
	}
	start, end := c.m.ValueOffsets(i)
	m.cmp = appendRowRaw(m.cmp[:0], c, int(start), int(end))
	m.probe = append(m.probe, maphash.Bytes(m.seed, m.cmp))
}

// distinct returns the number of distinct values of hs, sorting it.
func distinct(hs []uint64) int {
	slices.Sort(hs)
	return len(slices.Compact(hs))
}

// appendProjected appends to b what identifies a row of layout lay whose
// entries start at start, for rules that read the values at vpos only
// (the layout's entries of the keys they read): the layout, then each
// value's type and stored value.
func appendProjected(b []byte, c *mapCols, start int, lay int32, vpos []int16) []byte {
	b = append(b, byte(lay), byte(lay>>8), byte(lay>>16), byte(lay>>24))
	so, sd := c.strOff, c.strData
	for _, p := range vpos {
		j := start + int(p)
		t := c.typs[j]
		b = append(b, t)
		if t == schemas.ValueString {
			s0 := so[0]
			b = append(b, sd[so[j]-s0:so[j+1]-s0]...)
			continue
		}
		b = appendRawValue(b, &c.vals, j, t)
	}
	return b
}

// sameProjected reports whether item rows a and b, both of a layout with
// the projected keys at vpos, have equal values of those keys.
func (st *state) sameProjected(a, b int, vpos []int16) bool {
	c := &st.itAttrs
	sa, sb := int(c.rowOff[a]), int(c.rowOff[b])
	so, sd, typs := c.strOff, c.strData, c.typs
	for _, p := range vpos {
		ja, jb := sa+int(p), sb+int(p)
		t := typs[ja]
		if t != typs[jb] {
			return false
		}
		if t == schemas.ValueString {
			s0 := so[0]
			if string(sd[so[ja]-s0:so[ja+1]-s0]) != string(sd[so[jb]-s0:so[jb+1]-s0]) {
				return false
			}
			continue
		}
		if !sameRawValue(&c.vals, ja, jb, t) {
			return false
		}
	}
	return true
}

// memoLookup returns the entry for row i (of layout lay, or -1 when it is
// keyed by its whole attributes) whose key hashes to h, or -1.
func (st *state) memoLookup(h uint64, i, r, s int, lay int32) int32 {
	m := &st.memo
	mask := len(m.slots) - 1
	for p := int(h) & mask; ; p = (p + 1) & mask {
		e := m.slots[p] - 1
		if e < 0 {
			return -1
		}
		if me := &m.entries[e]; me.hash == h && st.sameKey(me, i, r, s, lay) {
			return e
		}
	}
}

// sameKey reports whether row i (resource r, scope s, layout lay) has the
// key of entry me: the rules have the same outcome on both.
func (st *state) sameKey(me *memoEntry, i, r, s int, lay int32) bool {
	if int(me.r) != r || int(me.s) != s || me.layout != lay {
		return false
	}
	var same bool
	switch {
	case !st.info.attrs:
		same = true
	case lay >= 0:
		same = st.sameProjected(int(me.row), i, st.memo.layouts.all[lay].vpos)
	default:
		same = st.sameAttrRows(int(me.row), i)
	}
	return same && st.sameFields(int(me.row), i)
}

// memoAdd adds an entry for row i, whose key hashes to h.
func (st *state) memoAdd(h uint64, i, r, s int) *memoEntry {
	m := &st.memo
	idx := int32(len(m.entries))
	m.insert(h, idx)
	if len(m.entries) < cap(m.entries) {
		m.entries = m.entries[:idx+1]
		m.entries[idx] = memoEntry{tally: m.entries[idx].tally}
	} else {
		m.entries = append(m.entries, memoEntry{})
	}
	me := &m.entries[idx]
	me.hash, me.row, me.r, me.s = h, int32(i), int32(r), int32(s)
	return me
}

// clearSlots empties the slots of the entries when they are few in a large
// table, and reports whether it did (else the caller clears the table).
func (m *rowMemo) clearSlots() bool {
	if len(m.entries) >= len(m.slots)/8 {
		return false
	}
	mask := len(m.slots) - 1
	for e := range m.entries {
		p := int(m.entries[e].hash) & mask
		for n := 0; m.slots[p] != int32(e+1); n++ {
			if n == len(m.slots) {
				return false // not in the table
			}
			p = (p + 1) & mask
		}
		m.slots[p] = 0
	}
	return true
}

// insert puts entry idx, the next entry to be added, whose key hashes to
// h, in the slot table.
func (m *rowMemo) insert(h uint64, idx int32) {
	if 2*(len(m.entries)+1) > len(m.slots) {
		m.grow()
	}
	mask := len(m.slots) - 1
	p := int(h) & mask
	for m.slots[p] != 0 {
		p = (p + 1) & mask
	}
	m.slots[p] = idx + 1
}

// grow doubles the slot table (at most half full) and places the entries
// in it again.
func (m *rowMemo) grow() {
	m.slots = make([]int32, 2*len(m.slots))
	mask := len(m.slots) - 1
	for e := range m.entries {
		p := int(m.entries[e].hash) & mask
		for m.slots[p] != 0 {
			p = (p + 1) & mask
		}
		m.slots[p] = int32(e + 1)
	}
}

// appendRowRaw appends to b what identifies entries [start, end) of c:
// the row's key bytes, value types and string bytes, each one contiguous
// range of the entry columns, then the values of other types. Equal rows
// give equal bytes (what differs in the stored bytes of equal rows, such
// as the string column of non-string entries, only costs memo hits).
func appendRowRaw(b []byte, c *mapCols, start, end int) []byte {
	if c.keyOff == nil {
		for j := start; j < end; j++ {
			b = append(b, c.keys.Value(j)...)
			t := c.vals.Type.Value(j)
			b = append(b, 0, t)
			b = appendRawValue(b, &c.vals, j, t)
		}
		return b
	}
	n := end - start
	b = append(b, byte(n), byte(n>>8))
	k0, s0 := c.keyOff[0], c.strOff[0]
	b = append(b, c.keyData[c.keyOff[start]-k0:c.keyOff[end]-k0]...)
	typs := c.typs[start:end]
	b = append(b, typs...)
	b = append(b, c.strData[c.strOff[start]-s0:c.strOff[end]-s0]...)
	for k, t := range typs {
		if t != schemas.ValueString {
			b = appendRawValue(b, &c.vals, start+k, t)
		}
	}
	return b
}

// sameAttrRows reports whether item rows a and b have the same attribute
// entries.
func (st *state) sameAttrRows(a, b int) bool {
	c := &st.itAttrs
	na, nb := c.m.IsNull(a), c.m.IsNull(b)
	if na || nb {
		return na == nb
	}
	sa, ea := c.m.ValueOffsets(a)
	sb, eb := c.m.ValueOffsets(b)
	if ea-sa != eb-sb {
		return false
	}
	if c.keyOff != nil {
		return sameRowRaw(c, int(sa), int(sb), int(ea-sa))
	}
	for k := int(0); k < int(ea-sa); k++ {
		ja, jb := int(sa)+k, int(sb)+k
		if c.keys.Value(ja) != c.keys.Value(jb) {
			return false
		}
		t := c.vals.Type.Value(ja)
		if t != c.vals.Type.Value(jb) || !sameRawValue(&c.vals, ja, jb, t) {
			return false
		}
	}
	return true
}

// sameRowRaw compares the n entries from ja and jb of c: keys and types
// as byte ranges, string values as one byte range when their offsets
// line up (else one by one), other values one by one.
func sameRowRaw(c *mapCols, ja, jb, n int) bool {
	ko := c.keyOff
	da, db := ko[ja], ko[jb]
	for k := 1; k <= n; k++ {
		if ko[ja+k]-da != ko[jb+k]-db {
			return false
		}
	}
	k0 := ko[0]
	if !bytes.Equal(c.keyData[da-k0:ko[ja+n]-k0], c.keyData[db-k0:ko[jb+n]-k0]) {
		return false
	}
	return sameValuesRaw(c, ja, jb, n)
}

// sameValuesRaw is sameRowRaw for entries known to have the same keys.
func sameValuesRaw(c *mapCols, ja, jb, n int) bool {
	so := c.strOff
	if !bytes.Equal(c.typs[ja:ja+n], c.typs[jb:jb+n]) {
		return false
	}
	strs := true // the string values are equal byte ranges
	sa, sb := so[ja], so[jb]
	for k := 1; k <= n && strs; k++ {
		strs = so[ja+k]-sa == so[jb+k]-sb
	}
	s0 := so[0]
	strs = strs && bytes.Equal(c.strData[sa-s0:so[ja+n]-s0], c.strData[sb-s0:so[jb+n]-s0])
	for k, t := range c.typs[ja : ja+n] {
		if t == schemas.ValueString && strs {
			continue
		}
		if !sameRawValue(&c.vals, ja+k, jb+k, t) {
			return false
		}
	}
	return true
}

func appendRawValue(b []byte, c *anyCols, j int, t uint8) []byte {
	switch t {
	case schemas.ValueString:
		return append(b, c.Str.Value(j)...)
	case schemas.ValueBool:
		if c.Bool.Value(j) {
			return append(b, 1)
		}
		return append(b, 0)
	case schemas.ValueInt:
		v := uint64(c.Int.Value(j))
		return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	case schemas.ValueDouble:
		v := math.Float64bits(c.Double.Value(j))
		return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	case schemas.ValueNone, schemas.ValueEmpty:
		return b
	}
	return append(b, c.Bytes.Value(j)...)
}

// sameRawValue compares entries ja and jb of type t as they are stored:
// equal stored values decode to equal values. (Doubles compare by bits.)
func sameRawValue(c *anyCols, ja, jb int, t uint8) bool {
	switch t {
	case schemas.ValueString:
		return c.Str.Value(ja) == c.Str.Value(jb)
	case schemas.ValueBool:
		return c.Bool.Value(ja) == c.Bool.Value(jb)
	case schemas.ValueInt:
		return c.Int.Value(ja) == c.Int.Value(jb)
	case schemas.ValueDouble:
		return math.Float64bits(c.Double.Value(ja)) == math.Float64bits(c.Double.Value(jb))
	case schemas.ValueNone, schemas.ValueEmpty:
		return true
	}
	return string(c.Bytes.Value(ja)) == string(c.Bytes.Value(jb))
}

// memoFields are the item fields, per signal, that the memo can key on:
// those with few distinct values (an item's body or ids would make it
// give up).
var memoFields = [...][]string{
	otlpwire.Metrics: {"name", "unit", "type"},
	otlpwire.Logs:    {"severity_number", "severity_text"},
	otlpwire.Traces:  {"name", "kind", "status_code", "status_message"},
}

// memoFieldKeys sets st.fieldKeys for the fields of st.info.fields. Each
// appends a self-delimiting encoding of the field as the rules see it.
func (st *state) memoFieldKeys(it arrow.RecordBatch) error {
	st.fieldKeys = st.fieldKeys[:0]
	add := func(f func(b []byte, i int) []byte) { st.fieldKeys = append(st.fieldKeys, f) }
	for _, name := range st.info.fields {
		switch st.sig {
		case otlpwire.Metrics:
			// name, unit and type come from the point's metric row.
			metricID, err := column[*array.Uint32](it, schemas.PtMetricID, "data_points")
			if err != nil {
				return err
			}
			add(func(b []byte, i int) []byte { return appendU32(b, metricID.Value(i)) })
			return nil // one key for all three
		case otlpwire.Logs:
			switch name {
			case "severity_number":
				c, err := column[*array.Int32](it, schemas.LogSeverityNumber, "log_records")
				if err != nil {
					return err
				}
				add(func(b []byte, i int) []byte { return appendU32(b, uint32(c.Value(i))) })
			case "severity_text":
				c, err := column[*array.String](it, schemas.LogSeverityText, "log_records")
				if err != nil {
					return err
				}
				add(func(b []byte, i int) []byte { return appendStr(b, c.Value(i)) })
			}
		case otlpwire.Traces:
			switch name {
			case "name", "status_message":
				col := schemas.SpanName
				if name == "status_message" {
					col = schemas.SpanStatusMessage
				}
				c, err := column[*array.String](it, col, "spans")
				if err != nil {
					return err
				}
				add(func(b []byte, i int) []byte { return appendStr(b, c.Value(i)) })
			case "kind", "status_code":
				col := schemas.SpanKind
				if name == "status_code" {
					col = schemas.SpanStatusCode
				}
				c, err := column[*array.Int32](it, col, "spans")
				if err != nil {
					return err
				}
				add(func(b []byte, i int) []byte {
					if c.IsNull(i) {
						return append(b, 0)
					}
					return appendU32(append(b, 1), uint32(c.Value(i)))
				})
			}
		}
	}
	return nil
}

// sameFields reports whether rows a and b agree on st.info.fields.
func (st *state) sameFields(a, b int) bool {
	if len(st.fieldKeys) == 0 {
		return true
	}
	m := &st.memo
	k := m.cmp[:0]
	for _, f := range st.fieldKeys {
		k = f(k, a)
	}
	n := len(k)
	for _, f := range st.fieldKeys {
		k = f(k, b)
	}
	m.cmp = k
	return string(k[:n]) == string(k[n:])
}

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

func appendStr(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}
