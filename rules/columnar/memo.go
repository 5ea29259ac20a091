package columnar

import (
	"hash/maphash"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// rowMemo remembers, within one batch, the outcome of the rules on an
// item row, for the signals whose rules read and write nothing but
// attributes, resource and scope (sigInfo.memo): another row with equal
// attribute entries (same keys, value types and values, in the same order)
// and the same resource and scope (when the rules use them) has the same
// outcome, so the rules are not run again. The rewritten attributes are
// shared: their entries copied from the input are relative to the row
// (patch.base).
type rowMemo struct {
	seed    maphash.Seed
	buf     []byte
	cmp     []byte           // scratch of sameFields
	by      map[uint64]int32 // hash -> first entry of its chain
	entries []memoEntry
	hits    int
	off     bool // too few hits in this batch: stopped
}

type memoEntry struct {
	row      int32 // the row the outcome was computed on
	r, s     int32
	next     int32 // next entry with the same hash, or -1
	drop     bool
	err      bool
	hasPatch bool
	patch    patch
	tally    rules.Tally
}

// Give up memoising in a batch after memoGiveUp misses when fewer than
// 1 in memoMinHitRate rows hit.
const (
	memoGiveUp     = 1024
	memoMinHitRate = 4
)

func (m *rowMemo) reset() {
	if m.by == nil {
		m.seed = maphash.MakeSeed()
		m.by = map[uint64]int32{}
	}
	clear(m.by)
	for i := range m.entries {
		m.entries[i] = memoEntry{tally: m.entries[i].tally}
	}
	m.entries = m.entries[:0]
	m.hits = 0
	m.off = false
}

// key hashes what the outcome of row i depends on.
func (st *state) memoKey(i, r, s int) uint64 {
	m := &st.memo
	b := m.buf[:0]
	b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24), byte(s), byte(s>>8), byte(s>>16), byte(s>>24))
	if st.info.attrs {
		c := &st.itAttrs
		if c.m.IsNull(i) {
			b = append(b, 0xff)
		} else {
			start, end := c.m.ValueOffsets(i)
			for j := int(start); j < int(end); j++ {
				b = append(b, c.keys.Value(j)...)
				t := c.vals.typ.Value(j)
				b = append(b, 0, t)
				b = appendRawValue(b, &c.vals, j, t)
			}
		}
	}
	for _, f := range st.fieldKeys {
		b = f(b, i)
	}
	m.buf = b
	return maphash.Bytes(m.seed, b)
}

// lookup returns the entry for row i, or -1.
func (st *state) memoLookup(h uint64, i, r, s int) int32 {
	m := &st.memo
	e, ok := m.by[h]
	if !ok {
		return -1
	}
	for ; e >= 0; e = m.entries[e].next {
		me := &m.entries[e]
		if int(me.r) == r && int(me.s) == s && (!st.info.attrs || st.sameAttrRows(int(me.row), i)) && st.sameFields(int(me.row), i) {
			return e
		}
	}
	return -1
}

func (st *state) memoAdd(h uint64, i, r, s int) *memoEntry {
	m := &st.memo
	next := int32(-1)
	if e, ok := m.by[h]; ok {
		next = e
	}
	idx := int32(len(m.entries))
	m.by[h] = idx
	if len(m.entries) < cap(m.entries) {
		m.entries = m.entries[:idx+1]
		m.entries[idx] = memoEntry{tally: m.entries[idx].tally}
	} else {
		m.entries = append(m.entries, memoEntry{})
	}
	me := &m.entries[idx]
	me.row, me.r, me.s, me.next = int32(i), int32(r), int32(s), next
	return me
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
	for k := int(0); k < int(ea-sa); k++ {
		ja, jb := int(sa)+k, int(sb)+k
		if c.keys.Value(ja) != c.keys.Value(jb) {
			return false
		}
		t := c.vals.typ.Value(ja)
		if t != c.vals.typ.Value(jb) || !sameRawValue(&c.vals, ja, jb, t) {
			return false
		}
	}
	return true
}

func appendRawValue(b []byte, c *anyCols, j int, t uint8) []byte {
	switch t {
	case schemas.ValueString:
		return append(b, c.str.Value(j)...)
	case schemas.ValueBool:
		if c.b.Value(j) {
			return append(b, 1)
		}
		return append(b, 0)
	case schemas.ValueInt:
		v := uint64(c.i.Value(j))
		return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	case schemas.ValueDouble:
		v := math.Float64bits(c.d.Value(j))
		return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	case schemas.ValueNone, schemas.ValueEmpty:
		return b
	}
	return append(b, c.by.Value(j)...)
}

// sameRawValue compares entries ja and jb of type t as they are stored:
// equal stored values decode to equal values. (Doubles compare by bits.)
func sameRawValue(c *anyCols, ja, jb int, t uint8) bool {
	switch t {
	case schemas.ValueString:
		return c.str.Value(ja) == c.str.Value(jb)
	case schemas.ValueBool:
		return c.b.Value(ja) == c.b.Value(jb)
	case schemas.ValueInt:
		return c.i.Value(ja) == c.i.Value(jb)
	case schemas.ValueDouble:
		return math.Float64bits(c.d.Value(ja)) == math.Float64bits(c.d.Value(jb))
	case schemas.ValueNone, schemas.ValueEmpty:
		return true
	}
	return string(c.by.Value(ja)) == string(c.by.Value(jb))
}

// memoFields are the item fields, per signal, that the memo can key on:
// those with few distinct values (an item's body or ids would make it
// give up).
var memoFields = [...][]string{
	rules.Metrics: {"name", "unit", "type"},
	rules.Logs:    {"severity_number", "severity_text"},
	rules.Traces:  {"name", "kind", "status_code", "status_message"},
}

// memoFieldKeys sets st.fieldKeys for the fields of st.info.fields. Each
// appends a self-delimiting encoding of the field as the rules see it.
func (st *state) memoFieldKeys(it arrow.RecordBatch) error {
	st.fieldKeys = st.fieldKeys[:0]
	add := func(f func(b []byte, i int) []byte) { st.fieldKeys = append(st.fieldKeys, f) }
	for _, name := range st.info.fields {
		switch st.sig {
		case rules.Metrics:
			// name, unit and type come from the point's metric row.
			metricID, err := column[*array.Uint32](it, schemas.PtMetricID, "data_points")
			if err != nil {
				return err
			}
			add(func(b []byte, i int) []byte { return appendU32(b, metricID.Value(i)) })
			return nil // one key for all three
		case rules.Logs:
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
		case rules.Traces:
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
