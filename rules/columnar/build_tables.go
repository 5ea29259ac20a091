package columnar

import (
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
// are, the others are taken from rec by rs. It releases cols. The columns
// taken share one buffer of zeros for what holds only zeros or nulls (see
// schemas.Take): most columns of a table of gauges.
func table(mem memory.Allocator, rec arrow.RecordBatch, cols []arrow.Array, rs [][2]int, n int) (arrow.RecordBatch, error) {
	defer releaseAll(cols)
	z := schemas.NewZeros(int(rec.NumRows()))
	defer z.Release()
	for i := range cols {
		if cols[i] != nil {
			continue
		}
		c, err := take(mem, rec.Column(i), rs, z)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(n)), nil
}

func releaseAll(cols []arrow.Array) {
	for _, c := range cols {
		if c != nil {
			c.Release()
		}
	}
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

// parentTables sets the parent tables of out: the input's own (retained)
// when structural is false, else the tables of the plan pp.
func (st *state) parentTables(out *schemas.Batch, pp *parents, structural bool) error {
	b := st.b
	metrics := st.sig == otlpwire.Metrics
	if !structural {
		b.Resources.Retain()
		b.Scopes.Retain()
		out.Resources, out.Scopes = b.Resources, b.Scopes
		if metrics {
			b.Metrics.Retain()
			out.Metrics = b.Metrics
		}
		return nil
	}
	var err error
	if out.Resources, err = st.resourcesTable(&pp.res); err != nil {
		return err
	}
	if out.Scopes, err = st.scopesTable(pp); err != nil {
		return err
	}
	if metrics {
		out.Metrics, err = st.metricsTable(pp)
	}
	return err
}

// resourcesTable builds the resources table of l: its new rows get the
// attributes the rules gave them (st.newRes).
func (st *state) resourcesTable(l *level) (arrow.RecordBatch, error) {
	mem, b := st.e.mem, st.b
	cols := make([]arrow.Array, b.Resources.NumCols())
	if len(l.src) > 0 {
		w := newAttrWriter(mem)
		for r, o := range l.out {
			if o < 0 {
				continue
			}
			if r < l.n {
				w.copyRow(&st.resAttrs, r)
			} else {
				w.putRow(&st.resAttrs, st.newRes[r-l.n].kvs, 0)
			}
		}
		cols[schemas.ResAttributes] = w.m.NewArray()
		w.m.Release()
	}
	return table(mem, b.Resources, cols, runs(nil, l.rows), len(l.rows))
}

// scopesTable builds the scopes table of pp, with resource_id renumbered.
func (st *state) scopesTable(pp *parents) (arrow.RecordBatch, error) {
	mem, l := st.e.mem, &pp.scope
	cols := make([]arrow.Array, st.b.Scopes.NumCols())
	ids := make([]int32, 0, len(l.rows))
	for s, o := range l.out {
		if o >= 0 {
			ids = append(ids, pp.res.out[l.up[s]])
		}
	}
	cols[schemas.ScopeResourceID] = u32Column(mem, ids)
	return table(mem, st.b.Scopes, cols, runs(nil, l.rows), len(l.rows))
}

// metricsTable builds the metrics table of pp, with resource_id and
// scope_id renumbered and the names and units of the new metrics.
func (st *state) metricsTable(pp *parents) (arrow.RecordBatch, error) {
	mem, l := st.e.mem, &pp.met
	cols := make([]arrow.Array, st.b.Metrics.NumCols())
	rids, sids := make([]int32, 0, len(l.rows)), make([]int32, 0, len(l.rows))
	nb, ub := array.NewStringBuilder(mem), array.NewStringBuilder(mem)
	for m, o := range l.out {
		if o < 0 {
			continue
		}
		rids = append(rids, pp.res.out[pp.metRes[m]])
		sids = append(sids, pp.scope.out[l.up[m]])
		if m < l.n {
			nb.Append(pp.inName.Value(m))
			ub.Append(pp.inUnit.Value(m))
		} else {
			nb.Append(pp.metName[m-l.n])
			ub.Append(pp.metUnit[m-l.n])
		}
	}
	cols[schemas.MetResourceID] = u32Column(mem, rids)
	cols[schemas.MetScopeID] = u32Column(mem, sids)
	cols[schemas.MetName], cols[schemas.MetUnit] = nb.NewArray(), ub.NewArray()
	nb.Release()
	ub.Release()
	return table(mem, st.b.Metrics, cols, runs(nil, l.rows), len(l.rows))
}
