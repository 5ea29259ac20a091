package columnar

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// runs are the maximal ranges [lo, hi) of consecutive values of idx.
func runs(dst [][2]int, idx []int32) [][2]int {
	dst = dst[:0]
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && idx[j] == idx[j-1]+1 {
			j++
		}
		dst = append(dst, [2]int{int(idx[i]), int(idx[j-1]) + 1})
		i = j
	}
	return dst
}

// table assembles a record: columns already set in cols are used as they
// are, the others are taken from rec by rs. It releases cols.
func table(mem memory.Allocator, rec arrow.RecordBatch, cols []arrow.Array, rs [][2]int, n int) (arrow.RecordBatch, error) {
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range cols {
		if cols[i] != nil {
			continue
		}
		c, err := take(mem, rec.Column(i), rs)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(n)), nil
}

func u32Column(mem memory.Allocator, vals []int32) arrow.Array {
	b := array.NewUint32Builder(mem)
	defer b.Release()
	b.Reserve(len(vals))
	for _, v := range vals {
		b.UnsafeAppend(uint32(v))
	}
	return b.NewArray()
}

// attrWriter builds an attributes column.
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

type metricKey struct {
	m, scope   int32
	name, unit string
}

// parents holds the parent tables' rows of the output.
type parents struct {
	resSrc, scopeSrc, metSrc []int32 // output row -> input row (before pruning)
	newScopes, newMets       int
	metName, metUnit         []string // of new metrics
	scopeRes                 []int32  // output (pre-prune) scope -> output resource
	metScope, metRes         []int32
}

// build makes the output batch from the outcome of evaluate.
func (st *state) build() (*schemas.Batch, error) {
	b, mem := st.b, st.e.mem
	metrics := st.sig == otlpwire.Metrics
	nRes, nScopes := int(b.Resources.NumRows()), int(b.Scopes.NumRows())
	nMet := 0
	var metricID, metScopeCol *array.Uint32
	var err error
	if metrics {
		nMet = int(b.Metrics.NumRows())
		if metricID, err = column[*array.Uint32](b.Items, schemas.PtMetricID, "data_points"); err != nil {
			return nil, err
		}
		if metScopeCol, err = column[*array.Uint32](b.Metrics, schemas.MetScopeID, "metrics"); err != nil {
			return nil, err
		}
	}
	sResCol, err := column[*array.Uint32](b.Scopes, schemas.ScopeResourceID, "scopes")
	if err != nil {
		return nil, err
	}

	// simple: every item stays, under its resource, scope and metric, so
	// the parent tables are kept as they are.
	simple := !st.anyDrop && len(st.newRes) == 0
	for k := range st.patches {
		if p := &st.patches[k]; p.res >= 0 || p.what&chMetric != 0 {
			simple = false
			break
		}
	}

	// Kept rows and their parents (before pruning).
	sel := make([]int32, 0, st.n)
	for i := 0; i < st.n; i++ {
		if !st.drop[i] {
			sel = append(sel, int32(i))
		}
	}
	var pp parents
	pp.scopeRes = make([]int32, nScopes)
	for s := range nScopes {
		r := sResCol.Value(s)
		if int(r) >= nRes {
			return nil, fmt.Errorf("%w: scope %d refers to resource %d of %d", schemas.ErrSchema, s, r, nRes)
		}
		pp.scopeRes[s] = int32(r)
	}
	if metrics {
		pp.metScope = make([]int32, nMet)
		pp.metRes = make([]int32, nMet)
		for m := range nMet {
			s := metScopeCol.Value(m)
			if int(s) >= nScopes {
				return nil, fmt.Errorf("%w: metric %d refers to scope %d of %d", schemas.ErrSchema, m, s, nScopes)
			}
			pp.metScope[m] = int32(s)
			pp.metRes[m] = pp.scopeRes[s]
		}
	}
	var outRes, outScope, outMet []int32
	if !simple {
		outRes = make([]int32, len(sel))
		outScope = make([]int32, len(sel))
		if metrics {
			outMet = make([]int32, len(sel))
		}
	}
	newScopeBy := map[[2]int32]int32{}
	newMetBy := map[metricKey]int32{}
	var metName, metUnit *array.String
	if metrics {
		if metName, err = column[*array.String](b.Metrics, schemas.MetName, "metrics"); err != nil {
			return nil, err
		}
		if metUnit, err = column[*array.String](b.Metrics, schemas.MetUnit, "metrics"); err != nil {
			return nil, err
		}
	}
	for k, i := range sel {
		if simple {
			break
		}
		r, s := int32(st.resID.Value(int(i))), int32(st.scopeID.Value(int(i)))
		var p *patch
		if pi := st.patchOf[i]; pi >= 0 {
			p = &st.patches[pi]
		}
		res, scope := r, s
		if p != nil && p.res >= 0 {
			res = int32(nRes) + p.res
			key := [2]int32{s, res}
			ns, ok := newScopeBy[key]
			if !ok {
				ns = int32(nScopes + len(pp.scopeSrc))
				newScopeBy[key] = ns
				pp.scopeSrc = append(pp.scopeSrc, s)
				pp.scopeRes = append(pp.scopeRes, res)
			}
			scope = ns
		}
		outRes[k], outScope[k] = res, scope
		if metrics {
			m := int32(metricID.Value(int(i)))
			if scope != s || p != nil && p.what&chMetric != 0 {
				key := metricKey{m: m, scope: scope, name: metName.Value(int(m)), unit: metUnit.Value(int(m))}
				if p != nil && p.what&chMetric != 0 {
					key.name, key.unit = p.name, p.unit
				}
				nm, ok := newMetBy[key]
				if !ok {
					nm = int32(nMet + len(pp.metSrc))
					newMetBy[key] = nm
					pp.metSrc = append(pp.metSrc, m)
					pp.metName = append(pp.metName, key.name)
					pp.metUnit = append(pp.metUnit, key.unit)
					pp.metScope = append(pp.metScope, scope)
					pp.metRes = append(pp.metRes, res)
				}
				m = nm
			}
			outMet[k] = m
		}
	}
	pp.newScopes, pp.newMets = len(pp.scopeSrc), len(pp.metSrc)

	// Pruning: a parent that had items and has none left goes, and so do
	// the children of a parent that goes.
	totRes, totScopes, totMet := nRes+len(st.newRes), nScopes+pp.newScopes, nMet+pp.newMets
	before := make([]int32, nRes+nScopes+nMet)
	after := make([]int32, totRes+totScopes+totMet)
	bRes, bScope, bMet := before[:nRes], before[nRes:nRes+nScopes], before[nRes+nScopes:]
	aRes, aScope, aMet := after[:totRes], after[totRes:totRes+totScopes], after[totRes+totScopes:]
	if simple && metrics {
		for i := 0; i < st.n; i++ {
			if m := metricID.Value(i); int(m) >= nMet {
				return nil, fmt.Errorf("%w: data point %d refers to metric %d of %d", schemas.ErrSchema, i, m, nMet)
			}
		}
	}
	for i := 0; i < st.n && !simple; i++ {
		bRes[st.resID.Value(i)]++
		bScope[st.scopeID.Value(i)]++
		if metrics {
			m := metricID.Value(i)
			if int(m) >= nMet {
				return nil, fmt.Errorf("%w: data point %d refers to metric %d of %d", schemas.ErrSchema, i, m, nMet)
			}
			bMet[m]++
		}
	}
	for k := range outRes {
		aRes[outRes[k]]++
		aScope[outScope[k]]++
		if metrics {
			aMet[outMet[k]]++
		}
	}
	structural := len(st.newRes) > 0 || pp.newScopes > 0 || pp.newMets > 0
	resMap := make([]int32, totRes)
	var resRows []int32
	for r := range totRes {
		if r < nRes && bRes[r] > 0 && aRes[r] == 0 {
			resMap[r] = -1
			structural = true
			continue
		}
		resMap[r] = int32(len(resRows))
		if r < nRes {
			resRows = append(resRows, int32(r))
		} else {
			resRows = append(resRows, int32(st.newRes[r-nRes].orig))
		}
	}
	scopeMap := make([]int32, totScopes)
	var scopeRows []int32
	for s := range totScopes {
		if resMap[pp.scopeRes[s]] < 0 || s < nScopes && bScope[s] > 0 && aScope[s] == 0 {
			scopeMap[s] = -1
			structural = true
			continue
		}
		scopeMap[s] = int32(len(scopeRows))
		if s < nScopes {
			scopeRows = append(scopeRows, int32(s))
		} else {
			scopeRows = append(scopeRows, pp.scopeSrc[s-nScopes])
		}
	}
	metMap := make([]int32, totMet)
	var metRows []int32
	for m := range totMet {
		if scopeMap[pp.metScope[m]] < 0 || m < nMet && bMet[m] > 0 && aMet[m] == 0 {
			metMap[m] = -1
			structural = true
			continue
		}
		metMap[m] = int32(len(metRows))
		if m < nMet {
			metRows = append(metRows, int32(m))
		} else {
			metRows = append(metRows, pp.metSrc[m-nMet])
		}
	}

	out := &schemas.Batch{Signal: b.Signal}
	ok := false
	defer func() {
		if !ok {
			out.Release()
		}
	}()
	if !structural {
		b.Resources.Retain()
		b.Scopes.Retain()
		out.Resources, out.Scopes = b.Resources, b.Scopes
		if metrics {
			b.Metrics.Retain()
			out.Metrics = b.Metrics
		}
	} else {
		if out.Resources, err = st.resourcesTable(resRows, nRes, resMap); err != nil {
			return nil, err
		}
		// Scopes: resource_id renumbered.
		cols := make([]arrow.Array, b.Scopes.NumCols())
		ids := make([]int32, 0, len(scopeRows))
		for s := range totScopes {
			if scopeMap[s] >= 0 {
				ids = append(ids, resMap[pp.scopeRes[s]])
			}
		}
		cols[schemas.ScopeResourceID] = u32Column(mem, ids)
		var rs [][2]int
		if out.Scopes, err = table(mem, b.Scopes, cols, runs(rs, scopeRows), len(scopeRows)); err != nil {
			return nil, err
		}
		if metrics {
			cols := make([]arrow.Array, b.Metrics.NumCols())
			rids, sids := make([]int32, 0, len(metRows)), make([]int32, 0, len(metRows))
			nb, ub := array.NewStringBuilder(mem), array.NewStringBuilder(mem)
			for m := range totMet {
				if metMap[m] < 0 {
					continue
				}
				rids = append(rids, resMap[pp.metRes[m]])
				sids = append(sids, scopeMap[pp.metScope[m]])
				if m < nMet {
					nb.Append(metName.Value(m))
					ub.Append(metUnit.Value(m))
				} else {
					nb.Append(pp.metName[m-nMet])
					ub.Append(pp.metUnit[m-nMet])
				}
			}
			cols[schemas.MetResourceID] = u32Column(mem, rids)
			cols[schemas.MetScopeID] = u32Column(mem, sids)
			cols[schemas.MetName], cols[schemas.MetUnit] = nb.NewArray(), ub.NewArray()
			nb.Release()
			ub.Release()
			if out.Metrics, err = table(mem, b.Metrics, cols, runs(nil, metRows), len(metRows)); err != nil {
				return nil, err
			}
		}
	}

	// Items.
	it := b.Items
	cols := make([]arrow.Array, it.NumCols())
	if structural {
		for k := range sel {
			outRes[k] = resMap[outRes[k]]
			outScope[k] = scopeMap[outScope[k]]
			if metrics {
				outMet[k] = metMap[outMet[k]]
			}
		}
		cols[0], cols[1] = u32Column(mem, outRes), u32Column(mem, outScope)
		if metrics {
			cols[schemas.PtMetricID] = u32Column(mem, outMet)
		}
	}
	var what uint16
	for _, p := range st.patches {
		what |= p.what
	}
	if what&chAttrs != 0 {
		col := map[otlpwire.Signal]int{otlpwire.Metrics: schemas.PtAttributes, otlpwire.Logs: schemas.LogAttributes, otlpwire.Traces: schemas.SpanAttributes}[st.sig]
		if plainAttrs(&st.itAttrs) {
			cols[col] = st.attrColumn(sel)
		} else {
			w := newAttrWriter(mem)
			w.reserve(&st.itAttrs, len(sel))
			for _, i := range sel {
				if pi := st.patchOf[i]; pi >= 0 && st.patches[pi].what&chAttrs != 0 {
					p := &st.patches[pi]
					w.putRow(&st.itAttrs, st.kvs[p.kvStart:p.kvEnd], st.patchBase(int(i), p))
				} else {
					w.copyRow(&st.itAttrs, int(i))
				}
			}
			cols[col] = w.m.NewArray()
			w.m.Release()
		}
	}
	if err := st.fieldColumns(cols, sel, what); err != nil {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
		return nil, err
	}
	if out.Items, err = table(mem, it, cols, runs(nil, sel), len(sel)); err != nil {
		return nil, err
	}
	ok = true
	return out, nil
}

// resourcesTable builds the resources table of rows (input rows; those
// from nRes on in resMap order are new resources).
func (st *state) resourcesTable(rows []int32, nRes int, resMap []int32) (arrow.RecordBatch, error) {
	mem, b := st.e.mem, st.b
	cols := make([]arrow.Array, b.Resources.NumCols())
	if len(st.newRes) > 0 {
		w := newAttrWriter(mem)
		for r := range resMap {
			if resMap[r] < 0 {
				continue
			}
			if r < nRes {
				w.copyRow(&st.resAttrs, r)
			} else {
				w.putRow(&st.resAttrs, st.newRes[r-nRes].kvs, 0)
			}
		}
		cols[schemas.ResAttributes] = w.m.NewArray()
		w.m.Release()
	}
	return table(mem, b.Resources, cols, runs(nil, rows), len(rows))
}

// fieldColumns rebuilds the item columns of fields the rules changed.
func (st *state) fieldColumns(cols []arrow.Array, sel []int32, what uint16) error {
	mem, it := st.e.mem, st.b.Items
	patchOf := func(i int32) *patch {
		if pi := st.patchOf[i]; pi >= 0 {
			return &st.patches[pi]
		}
		return nil
	}
	strCol := func(col int, bit uint16, get func(p *patch) string) error {
		src, err := column[*array.String](it, col, "items")
		if err != nil {
			return err
		}
		bl := array.NewStringBuilder(mem)
		defer bl.Release()
		bl.Reserve(len(sel))
		for _, i := range sel {
			if p := patchOf(i); p != nil && p.what&bit != 0 {
				bl.Append(get(p))
			} else {
				bl.Append(src.Value(int(i)))
			}
		}
		cols[col] = bl.NewArray()
		return nil
	}
	switch st.sig {
	case otlpwire.Logs:
		if what&chText != 0 {
			if err := strCol(schemas.LogSeverityText, chText, func(p *patch) string { return p.text }); err != nil {
				return err
			}
		}
		if what&chSevNum != 0 {
			src, err := column[*array.Int32](it, schemas.LogSeverityNumber, "log_records")
			if err != nil {
				return err
			}
			bl := array.NewInt32Builder(mem)
			defer bl.Release()
			for _, i := range sel {
				if p := patchOf(i); p != nil && p.what&chSevNum != 0 {
					bl.Append(int32(p.sevNum))
				} else {
					bl.Append(src.Value(int(i)))
				}
			}
			cols[schemas.LogSeverityNumber] = bl.NewArray()
		}
		if what&chBody != 0 {
			src, err := newAnyCols(it.Column(schemas.LogBody))
			if err != nil {
				return err
			}
			sb := array.NewStructBuilder(mem, schemas.AnyValueType)
			defer sb.Release()
			w := newAnyBuilder(sb)
			for _, i := range sel {
				if p := patchOf(i); p != nil && p.what&chBody != 0 {
					w.putValue(p.body)
				} else {
					w.copyFrom(&src, int(i))
				}
			}
			cols[schemas.LogBody] = sb.NewArray()
		}
	case otlpwire.Traces:
		if what&chName != 0 {
			if err := strCol(schemas.SpanName, chName, func(p *patch) string { return p.name }); err != nil {
				return err
			}
		}
		if what&chText != 0 {
			if err := strCol(schemas.SpanStatusMessage, chText, func(p *patch) string { return p.text }); err != nil {
				return err
			}
			// A message on a span without status needs a status to be
			// written: give it code unset.
			src, err := column[*array.Int32](it, schemas.SpanStatusCode, "spans")
			if err != nil {
				return err
			}
			bl := array.NewInt32Builder(mem)
			defer bl.Release()
			for _, i := range sel {
				switch p := patchOf(i); {
				case src.IsValid(int(i)):
					bl.Append(src.Value(int(i)))
				case p != nil && p.what&chText != 0 && p.text != "":
					bl.Append(0)
				default:
					bl.AppendNull()
				}
			}
			cols[schemas.SpanStatusCode] = bl.NewArray()
		}
	}
	return nil
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
	// A patch the memo shares gives equal rows: the first is built, the
	// others copy it.
	st.memoOut = resize(st.memoOut, len(st.memo.entries))
	for k := range st.memoOut {
		st.memoOut[k] = -1
	}
	for _, i := range sel {
		if pi := st.patchOf[i]; pi >= 0 && st.patches[pi].what&chAttrs != 0 {
			p := &st.patches[pi]
			if p.memo > 0 && int(p.memo) <= len(st.memoOut) {
				if r := st.memoOut[p.memo-1]; r >= 0 {
					w.copyOutRow(int(r))
					continue
				}
				st.memoOut[p.memo-1] = int32(w.rows)
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
