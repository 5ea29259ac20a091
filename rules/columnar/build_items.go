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
//
// With st.wantSets, the items' attributes may come out as a table of sets
// (attrSetTable), in st.setTable and st.setIDs for build to put in the
// batch, and the items' column null.
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
		ac := attrColumnOf(st.sig)
		if st.wantSets && plainAttrs(&st.itAttrs) {
			st.setTable, st.setIDs, _ = st.attrSetTable(sel)
		}
		if st.setTable != nil {
			cols[ac] = array.MakeArrayOfNull(mem, schemas.AttributesType, len(sel))
		} else {
			cols[ac] = st.itemAttrs(sel)
		}
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

// attrColumn builds the items' attributes column of rows sel with rawAttrs.
// It plans the column first, as runs of input entries copied as they are
// and new entries (attrSegs): the entries a patch keeps between the ones it
// deletes or changes are one run, and so are the entries of consecutive
// rows the rules left alone; and as the list of the entries (idx). Then it
// writes the child columns, a pass over the entries for the fixed-width
// values and the offsets, a pass over the runs for the bytes (one copy per
// run).
func (st *state) attrColumn(sel []int32) arrow.Array {
	// w is a local copy, so that the slice headers it updates are not
	// heap writes (with their GC write barriers).
	var wv rawAttrs
	wv.rowValid = st.raw.rowValid
	w := &wv
	c := &st.itAttrs
	w.reset(c, st.e.mem)
	st.compilePatches()
	segs, psegs, patchOf := st.segs[:0], st.psegs, st.patchOf
	rowOff := c.rowOff
	n := int32(0) // entries planned
	// open: the last seg is a run that the next input entry may extend.
	open := false
	for _, i := range sel {
		if pi := patchOf[i]; pi >= 0 && st.patches[pi].what&chAttrs != 0 {
			p := &st.patches[pi]
			base := st.patchBase(int(i), p)
			n += p.entries
			for _, g := range psegs[p.segStart:p.segEnd] {
				if g.j0 < 0 {
					segs = append(segs, g)
					open = false
					continue
				}
				g.j0 += base
				g.j1 += base
				if open && segs[len(segs)-1].j1 == g.j0 {
					segs[len(segs)-1].j1 = g.j1
					continue
				}
				segs = append(segs, g)
				open = true
			}
			w.addRow(n, true)
			continue
		}
		if c.m.IsNull(int(i)) {
			w.addRow(n, false)
			continue
		}
		j0, j1 := rowOff[i], rowOff[i+1]
		if j1 > j0 {
			n += j1 - j0
			if open && segs[len(segs)-1].j1 == j0 {
				segs[len(segs)-1].j1 = j1
			} else {
				segs = append(segs, attrSeg{j0: j0, j1: j1})
				open = true
			}
		}
		w.addRow(n, true)
	}
	st.segs = segs
	idx := resize(st.idx, int(n))[:0]
	for _, g := range segs {
		if g.j0 < 0 {
			idx = append(idx, g.j0)
			continue
		}
		for j := g.j0; j < g.j1; j++ {
			idx = append(idx, j)
		}
	}
	st.idx = idx
	w.writeEntries(c, segs, idx, st.kvs)
	col := w.finish(st.e.mem)
	st.raw.rowValid = w.rowValid[:0]
	return col
}

// compilePatches sets the segments of the patches that rewrite attributes:
// their kvs as runs of input entries (of the row the patch was computed
// on, see patchBase) and new entries, in st.psegs.
func (st *state) compilePatches() {
	ps := st.psegs[:0]
	for k := range st.patches {
		p := &st.patches[k]
		if p.what&chAttrs == 0 {
			continue
		}
		p.segStart = int32(len(ps))
		p.entries = p.kvEnd - p.kvStart
		open := false
		for j := p.kvStart; j < p.kvEnd; j++ {
			e := &st.kvs[j]
			switch {
			case e.orig < 0:
				ps = append(ps, attrSeg{j0: -1 - j})
				open = false
			case open && ps[len(ps)-1].j1 == e.orig:
				ps[len(ps)-1].j1++
			default:
				ps = append(ps, attrSeg{j0: e.orig, j1: e.orig + 1})
				open = true
			}
		}
		p.segEnd = int32(len(ps))
	}
	st.psegs = ps
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
