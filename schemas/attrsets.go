package schemas

import "github.com/apache/arrow-go/v18/arrow/array"

// FindItemAttrSets sets b.ItemAttrSets when at most half of the items'
// attribute sets are distinct, numbered in order of first appearance, and
// leaves it nil otherwise: what WriteBatch finds when it stores the
// items' attributes as a table of distinct sets, found once for a writer
// that also does per-set work (the worker's cardinality tracker) before it
// writes the batch, which then uses them rather than finding them again.
// The numbers go into buf when it has room: buf is then b's until b is
// released or its ItemAttrSets dropped.
func (b *Batch) FindItemAttrSets(buf []uint32) {
	b.ItemAttrSets = nil
	if b.Items == nil || b.ItemAttrSetTable != nil {
		return
	}
	f := b.Items.Schema().FieldIndices("attributes")
	if len(f) != 1 {
		return
	}
	t, ok := b.Items.Column(f[0]).(*array.Map)
	n := b.Len()
	if !ok || n <= 1 {
		return
	}
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	if cap(e.setIDs) < n {
		e.setIDs = make([]uint64, n)
	}
	ids := e.setIDs[:n]
	if e.findSets(t, ids) == nil {
		return
	}
	sets := buf[:0]
	if cap(sets) < n {
		sets = make([]uint32, n)
	}
	sets = sets[:n]
	for i, id := range ids {
		sets[i] = uint32(id)
	}
	b.ItemAttrSets = sets
}
