package columnar

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// itemsTable builds the items table of the kept rows sel: parent ids from
// ip when the parent tables changed (structural), the attribute and field
// columns the rules changed rebuilt, the other columns cut from the input.
func (st *state) itemsTable(sel []int32, ip *itemParents, structural bool) (arrow.RecordBatch, error) {
	mem, it := st.e.mem, st.b.Items
	cols := make([]arrow.Array, it.NumCols())
	if structural {
		// Items start with resource_id, scope_id in every items schema.
		cols[0], cols[1] = u32Column(mem, ip.res), u32Column(mem, ip.scope)
		if st.sig == otlpwire.Metrics {
			cols[schemas.PtMetricID] = u32Column(mem, ip.met)
		}
	}
	what := st.changedFields()
	if what&chAttrs != 0 {
		cols[attrColumnOf(st.sig)] = st.itemAttrs(sel)
	}
	if err := st.fieldColumns(cols, sel, what); err != nil {
		releaseAll(cols)
		return nil, err
	}
	st.runs = runs(st.runs, sel)
	return table(mem, it, cols, st.runs, len(sel))
}

// changedFields is the union of what the patches changed (the ch* bits).
func (st *state) changedFields() uint16 {
	var what uint16
	for k := range st.patches {
		what |= st.patches[k].what
	}
	return what
}

// itemAttrs builds the items' attributes column of rows sel: in bulk
// (attrColumn) when the input column allows it, else entry by entry.
func (st *state) itemAttrs(sel []int32) arrow.Array {
	if plainAttrs(&st.itAttrs) {
		return st.attrColumn(sel)
	}
	return st.attrColumnByEntry(sel)
}

// attrColumnByEntry builds the items' attributes column of rows sel with
// an attrWriter, which handles nulls at every level.
func (st *state) attrColumnByEntry(sel []int32) arrow.Array {
	w := newAttrWriter(st.e.mem)
	w.reserve(&st.itAttrs, len(sel))
	for _, i := range sel {
		if p := st.patchAt(i); p != nil && p.what&chAttrs != 0 {
			w.putRow(&st.itAttrs, st.kvs[p.kvStart:p.kvEnd], st.patchBase(int(i), p))
		} else {
			w.copyRow(&st.itAttrs, int(i))
		}
	}
	a := w.m.NewArray()
	w.m.Release()
	return a
}

// attrColumn builds the items' attributes column of rows sel with rawAttrs:
// rows without rewritten attributes are copied with their entries in bulk.
func (st *state) attrColumn(sel []int32) arrow.Array {
	// w is a local copy, so that the slice headers it updates per row are
	// not heap writes (with their GC write barriers).
	var wv rawAttrs
	wv.rowValid = st.raw.rowValid
	w := &wv
	c := &st.itAttrs
	w.reset(c, st.e.mem)
	// A patch the memo shares gives rows with equal attributes equal
	// output: the first is built, the others copy it. Rows memoised by
	// their layout share the patch, not their other values: each is built
	// (the memo keys rows by layout when few rows are equal whole).
	st.memoOut = resize(st.memoOut, len(st.memo.entries))
	for k := range st.memoOut {
		st.memoOut[k] = -1
	}
	for _, i := range sel {
		if pi := st.patchOf[i]; pi >= 0 && st.patches[pi].what&chAttrs != 0 {
			p := &st.patches[pi]
			if p.memo > 0 && int(p.memo) <= len(st.memoOut) {
				if me := &st.memo.entries[p.memo-1]; me.layout < 0 {
					if r := st.memoOut[p.memo-1]; r >= 0 {
						w.copyOutRow(int(r))
						continue
					}
					st.memoOut[p.memo-1] = int32(w.rows)
				}
			}
			w.putRow(c, st.kvs[p.kvStart:p.kvEnd], st.patchBase(int(i), p))
			continue
		}
		if c.m.IsNull(int(i)) {
			w.endRow(false)
			continue
		}
		start, end := c.m.ValueOffsets(int(i))
		w.copyEntries(c, int(start), int(end))
		w.endRow(true)
	}
	col := w.finish(st.e.mem)
	st.raw.rowValid = w.rowValid[:0]
	return col
}

// fieldColumns rebuilds the item columns of the fields the rules changed
// (what). Metric name and unit live in the metrics table (metricsTable).
func (st *state) fieldColumns(cols []arrow.Array, sel []int32, what uint16) error {
	switch st.sig {
	case otlpwire.Logs:
		return st.logColumns(cols, sel, what)
	case otlpwire.Traces:
		return st.spanColumns(cols, sel, what)
	}
	return nil
}

// logColumns rebuilds severity_text, severity_number and body.
func (st *state) logColumns(cols []arrow.Array, sel []int32, what uint16) error {
	var err error
	if what&chText != 0 {
		if cols[schemas.LogSeverityText], err = st.stringColumn(schemas.LogSeverityText, sel, chText); err != nil {
			return err
		}
	}
	if what&chSevNum != 0 {
		if cols[schemas.LogSeverityNumber], err = st.severityColumn(sel); err != nil {
			return err
		}
	}
	if what&chBody != 0 {
		cols[schemas.LogBody], err = st.bodyColumn(sel)
	}
	return err
}

// spanColumns rebuilds name, status_message and with it status_code.
func (st *state) spanColumns(cols []arrow.Array, sel []int32, what uint16) error {
	var err error
	if what&chName != 0 {
		if cols[schemas.SpanName], err = st.stringColumn(schemas.SpanName, sel, chName); err != nil {
			return err
		}
	}
	if what&chText != 0 {
		if cols[schemas.SpanStatusMessage], err = st.stringColumn(schemas.SpanStatusMessage, sel, chText); err != nil {
			return err
		}
		cols[schemas.SpanStatusCode], err = st.statusCodeColumn(sel)
	}
	return err
}

// str is the new value of the string field of bit: chName or chText.
func (p *patch) str(bit uint16) string {
	if bit == chName {
		return p.name
	}
	return p.text
}

// stringColumn rebuilds items column col, the string field of bit.
func (st *state) stringColumn(col int, sel []int32, bit uint16) (arrow.Array, error) {
	src, err := column[*array.String](st.b.Items, col, "items")
	if err != nil {
		return nil, err
	}
	bl := array.NewStringBuilder(st.e.mem)
	defer bl.Release()
	bl.Reserve(len(sel))
	for _, i := range sel {
		if p := st.patchAt(i); p != nil && p.what&bit != 0 {
			bl.Append(p.str(bit))
		} else {
			bl.Append(src.Value(int(i)))
		}
	}
	return bl.NewArray(), nil
}

// severityColumn rebuilds the logs' severity_number column.
func (st *state) severityColumn(sel []int32) (arrow.Array, error) {
	src, err := column[*array.Int32](st.b.Items, schemas.LogSeverityNumber, "log_records")
	if err != nil {
		return nil, err
	}
	bl := array.NewInt32Builder(st.e.mem)
	defer bl.Release()
	for _, i := range sel {
		if p := st.patchAt(i); p != nil && p.what&chSevNum != 0 {
			bl.Append(int32(p.sevNum))
		} else {
			bl.Append(src.Value(int(i)))
		}
	}
	return bl.NewArray(), nil
}

// bodyColumn rebuilds the logs' body column: bodies the rules left are
// copied as stored.
func (st *state) bodyColumn(sel []int32) (arrow.Array, error) {
	src, err := newAnyCols(st.b.Items.Column(schemas.LogBody))
	if err != nil {
		return nil, err
	}
	sb := array.NewStructBuilder(st.e.mem, schemas.AnyValueType)
	defer sb.Release()
	w := newAnyBuilder(sb)
	for _, i := range sel {
		if p := st.patchAt(i); p != nil && p.what&chBody != 0 {
			w.putValue(p.body)
		} else {
			w.copyFrom(&src, int(i))
		}
	}
	return sb.NewArray(), nil
}

// statusCodeColumn rebuilds the spans' status_code column to go with a
// rebuilt status_message: a message on a span without status needs a
// status to be written, so it gets code unset.
func (st *state) statusCodeColumn(sel []int32) (arrow.Array, error) {
	src, err := column[*array.Int32](st.b.Items, schemas.SpanStatusCode, "spans")
	if err != nil {
		return nil, err
	}
	bl := array.NewInt32Builder(st.e.mem)
	defer bl.Release()
	for _, i := range sel {
		switch p := st.patchAt(i); {
		case src.IsValid(int(i)):
			bl.Append(src.Value(int(i)))
		case p != nil && p.what&chText != 0 && p.text != "":
			bl.Append(0)
		default:
			bl.AppendNull()
		}
	}
	return bl.NewArray(), nil
}
