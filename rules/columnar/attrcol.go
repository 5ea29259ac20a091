package columnar

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/schemas"
)

// rawAttrs builds an attributes column (map<string, AnyValue>), copying
// runs of input entries in bulk. Its slices (but rowValid) are written in
// place in Arrow buffers of the allocator, sized from the input by reset;
// finish hands them to the column (copying only a slice that outgrew its
// buffer). It requires input columns without nulls below the map level
// (plainAttrs).
type rawAttrs struct {
	rows, nullRows int
	rowOff         []int32
	rowValid       []byte
	keyOff         []int32
	keyData        []byte
	typ            []uint8
	strOff         []int32
	strData        []byte
	ints           []int64
	dbls           []float64
	bools          []byte
	byOff          []int32
	byData         []byte

	// the buffers the slices started in
	bRowOff, bKeyOff, bKeyData, bTyp, bStrOff, bStrData *memory.Buffer
	bInts, bDbls, bBools, bByOff, bByData               *memory.Buffer
}

// plainAttrs reports whether c has no nulls below the map rows, so that
// rawAttrs can copy it.
func plainAttrs(c *mapCols) bool {
	if c.keys.NullN() != 0 || c.m.ListValues().NullN() != 0 {
		return false
	}
	if c.keyOff == nil && c.keys.Len() > 0 {
		return false // no raw views (writeEntries reads them)
	}
	v := &c.vals
	return v.Type.NullN() == 0 && v.Str.NullN() == 0 && v.Int.NullN() == 0 && v.Double.NullN() == 0 && v.Bool.NullN() == 0 && v.Bytes.NullN() == 0 &&
		c.m.Items().NullN() == 0
}

// reset starts a column, with buffers of mem sized for about what c
// holds. finish must follow.
func (w *rawAttrs) reset(c *mapCols, mem memory.Allocator) {
	rows, n := c.m.Len(), c.keys.Len()
	n += n / 8
	kd, sd := len(c.keyData), len(c.strData)
	if c.keyOff == nil {
		kd, sd = 16*n, 16*n
	}
	kd += kd / 8
	sd += sd / 8
	w.rows, w.nullRows = 0, 0
	w.bRowOff, w.rowOff = arrowpool.Slice[int32](mem, rows+1)
	w.rowValid = w.rowValid[:0]
	w.bKeyOff, w.keyOff = arrowpool.Slice[int32](mem, n+1)
	w.bKeyData, w.keyData = arrowpool.Slice[byte](mem, kd)
	w.bTyp, w.typ = arrowpool.Slice[uint8](mem, n)
	w.bStrOff, w.strOff = arrowpool.Slice[int32](mem, n+1)
	w.bStrData, w.strData = arrowpool.Slice[byte](mem, sd)
	w.bInts, w.ints = arrowpool.Slice[int64](mem, n)
	w.bDbls, w.dbls = arrowpool.Slice[float64](mem, n)
	w.bBools, w.bools = arrowpool.Slice[byte](mem, n/8+1)
	w.bByOff, w.byOff = arrowpool.Slice[int32](mem, n+1)
	w.bByData, w.byData = arrowpool.Slice[byte](mem, len(c.vals.Bytes.ValueBytes())+64)
	w.rowOff = append(w.rowOff, 0)
	w.keyOff = append(w.keyOff, 0)
	w.strOff = append(w.strOff, 0)
	w.byOff = append(w.byOff, 0)
}

// detach forgets the buffers (the column owns them now).
func (w *rawAttrs) detach() {
	w.rowOff, w.keyOff, w.keyData, w.typ, w.strOff, w.strData = nil, nil, nil, nil, nil, nil
	w.ints, w.dbls, w.bools, w.byOff, w.byData = nil, nil, nil, nil, nil
	w.bRowOff, w.bKeyOff, w.bKeyData, w.bTyp, w.bStrOff, w.bStrData = nil, nil, nil, nil, nil, nil
	w.bInts, w.bDbls, w.bBools, w.bByOff, w.bByData = nil, nil, nil, nil, nil
}

func setBit(bm []byte, i int, v bool) []byte {
	for i>>3 >= len(bm) {
		bm = append(bm, 0)
	}
	if v {
		bm[i>>3] |= 1 << (i & 7)
	}
	return bm
}

// finish returns the column.
func (w *rawAttrs) finish(mem memory.Allocator) arrow.Array {
	n := len(w.typ)
	var bufs []*memory.Buffer
	mk := func(b *memory.Buffer) *memory.Buffer { bufs = append(bufs, b); return b }
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	defer w.detach()
	var datas []arrow.ArrayData
	data := func(d arrow.ArrayData) arrow.ArrayData { datas = append(datas, d); return d }
	defer func() {
		for _, d := range datas {
			d.Release()
		}
	}()
	str := func(dt arrow.DataType, off, b *memory.Buffer) arrow.ArrayData {
		return data(array.NewData(dt, n, []*memory.Buffer{nil, mk(off), mk(b)}, nil, 0, 0))
	}
	prim := func(dt arrow.DataType, b *memory.Buffer) arrow.ArrayData {
		return data(array.NewData(dt, n, []*memory.Buffer{nil, mk(b)}, nil, 0, 0))
	}
	st := schemas.AnyValueType
	children := make([]arrow.ArrayData, 6)
	children[schemas.AnyType] = prim(st.Field(schemas.AnyType).Type, arrowpool.Handover(mem, w.bTyp, w.typ))
	children[schemas.AnyStr] = str(st.Field(schemas.AnyStr).Type, arrowpool.Handover(mem, w.bStrOff, w.strOff), arrowpool.Handover(mem, w.bStrData, w.strData))
	children[schemas.AnyInt] = prim(st.Field(schemas.AnyInt).Type, arrowpool.Handover(mem, w.bInts, w.ints))
	children[schemas.AnyDouble] = prim(st.Field(schemas.AnyDouble).Type, arrowpool.Handover(mem, w.bDbls, w.dbls))
	bools := w.bools
	if need := int(bitutil.BytesForBits(int64(n))); len(bools) < need {
		bools = append(bools, make([]byte, need-len(bools))...)
	}
	children[schemas.AnyBool] = prim(st.Field(schemas.AnyBool).Type, arrowpool.Handover(mem, w.bBools, bools))
	children[schemas.AnyBytes] = str(st.Field(schemas.AnyBytes).Type, arrowpool.Handover(mem, w.bByOff, w.byOff), arrowpool.Handover(mem, w.bByData, w.byData))
	vals := data(array.NewData(st, n, []*memory.Buffer{nil}, children, 0, 0))
	mt := schemas.AttributesType
	keys := str(mt.KeyType(), arrowpool.Handover(mem, w.bKeyOff, w.keyOff), arrowpool.Handover(mem, w.bKeyData, w.keyData))
	entries := data(array.NewData(mt.Elem(), n, []*memory.Buffer{nil}, []arrow.ArrayData{keys, vals}, 0, 0))
	var valid *memory.Buffer
	if w.nullRows > 0 {
		rv := w.rowValid
		if need := int(bitutil.BytesForBits(int64(w.rows))); len(rv) < need {
			rv = append(rv, make([]byte, need-len(rv))...)
		}
		valid = mk(arrowpool.Handover(mem, nil, rv))
	}
	m := array.NewData(mt, w.rows, []*memory.Buffer{valid, mk(arrowpool.Handover(mem, w.bRowOff, w.rowOff))}, []arrow.ArrayData{entries}, w.nullRows, 0)
	defer m.Release()
	return array.MakeFromData(m)
}

// attrWriter builds an attributes column entry by entry, through Arrow
// builders: slower than rawAttrs, but it takes any input column.
type attrWriter struct {
	m *array.MapBuilder
	k *array.StringBuilder
	v anyBuilder
}

func newAttrWriter(mem memory.Allocator) attrWriter {
	m := array.NewBuilder(mem, schemas.AttributesType).(*array.MapBuilder)
	return attrWriter{m: m, k: m.KeyBuilder().(*array.StringBuilder), v: newAnyBuilder(m.ItemBuilder().(*array.StructBuilder))}
}

// reserve makes room for about what c holds.
func (w *attrWriter) reserve(c *mapCols, rows int) {
	n := c.keys.Len() + rows/4
	w.m.Reserve(rows)
	w.k.Reserve(n)
	w.k.ReserveData(len(c.keys.ValueBytes()) + n)
	w.v.s.Reserve(n)
	w.v.typ.Reserve(n)
	w.v.str.Reserve(n)
	w.v.str.ReserveData(len(c.vals.Str.ValueBytes()) + n)
	w.v.i.Reserve(n)
	w.v.d.Reserve(n)
	w.v.b.Reserve(n)
	w.v.by.Reserve(n)
	w.v.by.ReserveData(len(c.vals.Bytes.ValueBytes()))
}

// copyRow appends row i of c unchanged.
func (w *attrWriter) copyRow(c *mapCols, i int) {
	if c.m.IsNull(i) {
		w.m.AppendNull()
		return
	}
	w.m.Append(true)
	start, end := c.m.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		w.k.Append(c.keys.Value(j))
		w.v.copyFrom(&c.vals, j)
	}
}

// putRow appends a rewritten row.
func (w *attrWriter) putRow(c *mapCols, kvs []kv, base int32) {
	w.m.Append(true)
	for _, e := range kvs {
		if e.orig >= 0 {
			w.k.Append(c.keys.Value(int(e.orig + base)))
			w.v.copyFrom(&c.vals, int(e.orig+base))
			continue
		}
		w.k.Append(e.key)
		w.v.putValue(e.val)
	}
}
