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
//
// A batch that holds its items' attributes as a table of sets keeps its
// numbers, and so does a batch whose Builder numbered its sets as it
// decoded them (or found them not worth numbering).
func (b *Batch) FindItemAttrSets(buf []uint32) {
	if b.ItemAttrSetTable != nil || b.setsFound && sameSlice(b.ItemAttrSets, b.builtSets) {
		return
	}
	b.ItemAttrSets = nil
	if b.Items == nil {
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

// AttrSets numbers the distinct rows of t, a column of the attributes
// type, in order of first appearance, as WriteBatch finds them: ids[i]
// gets the number of row i (ids has t.Len() elements). It appends the
// first row of each set to reps and returns it.
func AttrSets(t *array.Map, ids []uint32, reps []int32) []int32 {
	n := t.Len()
	if n == 0 {
		return reps
	}
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	if cap(e.setIDs) < n {
		e.setIDs = make([]uint64, n)
	}
	ids64 := e.setIDs[:n]
	found, ok := e.attrSets(t, n, ids64)
	if !ok {
		found = e.mapSetsGeneric(t, n, ids64)
	}
	for i, id := range ids64 {
		ids[i] = uint32(id)
	}
	return append(reps, found...)
}

// sameSlice is whether a and b are the same slice (nil or not).
func sameSlice(a, b []uint32) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
