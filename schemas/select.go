package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Select returns a new batch of the items of b at rows (ascending, each
// once), with only the resources, scopes and metrics they belong to, in
// their order, and the ids renumbered. b is not modified. The worker uses
// it to split a batch between the processed topic and the aggregation
// topic.
//
// The items' attribute sets go with them, numbered in order of first
// appearance among the selected items, so that WriteBatch does not find
// them again: a batch that holds them as a table of sets
// (ItemAttrSetTable) gives the new batch a table of the selected items'
// sets only, and one that numbers them (ItemAttrSets) gives it their
// numbers, renumbered.
func Select(b *Batch, rows []int32, mem memory.Allocator) (*Batch, error) {
	if b.Items == nil {
		return nil, fmt.Errorf("%w: batch without items", ErrSchema)
	}
	n := int(b.Items.NumRows())
	for k, r := range rows {
		if r < 0 || int(r) >= n || (k > 0 && r <= rows[k-1]) {
			return nil, fmt.Errorf("schemas: select: rows must ascend within 0..%d (row %d is %d)", n-1, k, r)
		}
	}
	s := selector{mem: mem}
	itemRes, err1 := u32Col(b.Items, 0) // every items schema starts with resource_id, scope_id
	itemScope, err2 := u32Col(b.Items, 1)
	scopeRes, err3 := u32Col(b.Scopes, ScopeResourceID)
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, err
	}
	var itemMet, metRes, metScope *array.Uint32
	if b.Signal == otlpwire.Metrics {
		var e1, e2, e3 error
		itemMet, e1 = u32Col(b.Items, PtMetricID)
		metRes, e2 = u32Col(b.Metrics, MetResourceID)
		metScope, e3 = u32Col(b.Metrics, MetScopeID)
		if err := firstErr(e1, e2, e3); err != nil {
			return nil, err
		}
	}
	// Which parents the kept items use, then their new numbers.
	res := newKeep(int(b.Resources.NumRows()))
	scopes := newKeep(int(b.Scopes.NumRows()))
	var mets keep
	if itemMet != nil {
		mets = newKeep(int(b.Metrics.NumRows()))
	}
	for _, r := range rows {
		if err := firstErr(res.use(itemRes.Value(int(r))), scopes.use(itemScope.Value(int(r)))); err != nil {
			return nil, err
		}
		if itemMet != nil {
			if err := mets.use(itemMet.Value(int(r))); err != nil {
				return nil, err
			}
		}
	}
	// A kept metric keeps its scope and resource, a kept scope its
	// resource, even when (as ToOTLP allows) they differ from the items'.
	for m, used := range mets.used {
		if used {
			if err := firstErr(scopes.use(metScope.Value(m)), res.use(metRes.Value(m))); err != nil {
				return nil, err
			}
		}
	}
	for sc, used := range scopes.used {
		if used {
			if err := res.use(scopeRes.Value(sc)); err != nil {
				return nil, err
			}
		}
	}
	res.number()
	scopes.number()
	mets.number()

	out := &Batch{Signal: b.Signal}
	var err error
	if out.Resources, err = s.table(b.Resources, res.rows, nil); err == nil {
		out.Scopes, err = s.table(b.Scopes, scopes.rows, map[int]idMap{ScopeResourceID: {scopeRes, res.to}})
	}
	if err == nil && itemMet != nil {
		out.Metrics, err = s.table(b.Metrics, mets.rows, map[int]idMap{MetResourceID: {metRes, res.to}, MetScopeID: {metScope, scopes.to}})
	}
	if err == nil {
		ids := map[int]idMap{0: {itemRes, res.to}, 1: {itemScope, scopes.to}}
		if itemMet != nil {
			ids[PtMetricID] = idMap{itemMet, mets.to}
		}
		out.Items, err = s.table(b.Items, rows, ids)
	}
	if err != nil {
		out.Release()
		return nil, err
	}
	if err := selectSets(out, b, rows, mem); err != nil {
		out.Release()
		return nil, err
	}
	return out, nil
}

// selectSets gives out, the items of b at rows, their attribute sets
// (see Select).
func selectSets(out, b *Batch, rows []int32, mem memory.Allocator) error {
	sets := b.ItemAttrSets
	if len(sets) != b.Len() {
		if b.ItemAttrSetTable != nil {
			return fmt.Errorf("%w: select: %d attribute sets for %d items", ErrSchema, len(sets), b.Len())
		}
		return nil
	}
	// Renumbered in order of first appearance among the selected items,
	// as FindItemAttrSets and WriteBatch number them. Numbers from a table
	// are below its rows; the others are below the number of items
	// (FindItemAttrSets, the Builder, ReadBatch).
	n := len(sets)
	if t := b.ItemAttrSetTable; t != nil {
		n = t.Len()
	}
	to := make([]int32, n)
	for i := range to {
		to[i] = -1
	}
	ids := make([]uint32, len(rows))
	var first [][2]int32 // runs of the sets' rows in a table, in order of first appearance
	next := int32(0)
	for k, r := range rows {
		s := sets[r]
		if int(s) >= n {
			if b.ItemAttrSetTable != nil {
				return fmt.Errorf("%w: select: item %d has attribute set %d of %d", ErrSchema, r, s, n)
			}
			return nil
		}
		if to[s] < 0 {
			to[s] = next
			next++
			first = appendRow(first, int32(s))
		}
		ids[k] = uint32(to[s])
	}
	out.ItemAttrSets = ids
	if t := b.ItemAttrSetTable; t != nil {
		// Only the selected items' sets: the table WriteBatch would take
		// out of their attributes column.
		d := Take(mem, t.Data(), first, nil)
		out.ItemAttrSetTable = array.MakeFromData(d)
		d.Release()
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func u32Col(rec arrow.RecordBatch, i int) (*array.Uint32, error) {
	if rec == nil || i >= int(rec.NumCols()) {
		return nil, fmt.Errorf("%w: no id column %d", ErrSchema, i)
	}
	c, ok := rec.Column(i).(*array.Uint32)
	if !ok {
		return nil, fmt.Errorf("%w: id column %d is %s", ErrSchema, i, rec.Column(i).DataType())
	}
	return c, nil
}

// keep is which rows of a parent table stay, and their new numbers.
type keep struct {
	used []bool
	rows []int32  // kept rows, ascending
	to   []uint32 // old row -> new row
}

func newKeep(n int) keep { return keep{used: make([]bool, n)} }

func (k *keep) use(id uint32) error {
	if int(id) >= len(k.used) {
		return fmt.Errorf("%w: id %d of a table of %d rows", ErrSchema, id, len(k.used))
	}
	k.used[id] = true
	return nil
}

func (k *keep) number() {
	k.to = make([]uint32, len(k.used))
	for i, u := range k.used {
		if u {
			k.to[i] = uint32(len(k.rows))
			k.rows = append(k.rows, int32(i))
		}
	}
}

// idMap renumbers an id column: new id = to[old id].
type idMap struct {
	col *array.Uint32
	to  []uint32
}

type selector struct {
	mem  memory.Allocator
	runs [][2]int32
}

// table takes rows of rec, with the id columns of ids renumbered.
func (s *selector) table(rec arrow.RecordBatch, rows []int32, ids map[int]idMap) (arrow.RecordBatch, error) {
	s.runs = s.runs[:0]
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j] == rows[j-1]+1 {
			j++
		}
		s.runs = append(s.runs, [2]int32{rows[i], rows[j-1] + 1})
		i = j
	}
	cols := make([]arrow.Array, rec.NumCols())
	z := NewZeros(int(rec.NumRows()))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
		z.Release()
	}()
	for i := range cols {
		if m, ok := ids[i]; ok {
			bl := array.NewUint32Builder(s.mem)
			bl.Reserve(len(rows))
			for _, r := range rows {
				bl.UnsafeAppend(m.to[m.col.Value(int(r))])
			}
			cols[i] = bl.NewArray()
			bl.Release()
			continue
		}
		d := Take(s.mem, rec.Column(i).Data(), s.runs, z)
		cols[i] = array.MakeFromData(d)
		d.Release()
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(len(rows))), nil
}
