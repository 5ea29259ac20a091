package columnar

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// build makes the output batch from the outcome of evaluate. It plans the
// parent tables first (parentLinks, remapItems, countItems, prune), so that
// the common case of items that all stay under their parents keeps the
// input's parent tables and skips the plan, then writes the tables
// (parentTables in build_tables.go, itemsTable in build_items.go).
//
// The plan's slices (pp, ip, sel and the counts) are st's, reused from
// batch to batch.
func (st *state) build() (*schemas.Batch, error) {
	pp := &st.pp
	pp.reset()
	if err := st.parentLinks(pp); err != nil {
		return nil, err
	}
	sel := st.keptRows()
	var ip itemParents
	structural := false
	switch moved := st.parentsMoved(); {
	case !moved && !st.anyDrop:
		// Every item stays under its parents: the parent tables are kept.
	case !moved:
		// Items are dropped, none moves: the kept items' parents are
		// their input rows, so they are counted without remapping them,
		// and remapped only when some parent goes.
		st.countKept(pp)
		if structural = pp.prune(); structural {
			ip = st.remapItems(pp, sel)
		}
	default:
		ip = st.remapItems(pp, sel)
		st.countItems(pp, &ip)
		structural = pp.prune()
	}
	out := &schemas.Batch{Signal: st.b.Signal}
	if err := st.parentTables(out, pp, structural); err != nil {
		out.Release()
		return nil, err
	}
	if structural {
		ip.renumber(pp)
	}
	st.setTable, st.setIDs = nil, nil
	items, err := st.itemsTable(sel, &ip, structural)
	if st.setTable != nil {
		out.ItemAttrSetTable, out.ItemAttrSets = st.setTable, st.setIDs
		st.setTable, st.setIDs = nil, nil
	}
	if err != nil {
		out.Release()
		return nil, err
	}
	out.Items = items
	return out, nil
}

// level is one parent table of the output: resources, scopes or metrics.
// Its rows before pruning are the n rows of the input table, then the new
// rows items moved to, row n+k a copy of input row src[k].
type level struct {
	n   int
	src []int32
	// up is the parent of each row before pruning (a row of the level
	// above, before pruning); nil for resources.
	up []int32
	// had counts the items of each input row in the input, has the items
	// of each row before pruning in the output.
	had, has []int32
	out      []int32 // row before pruning -> output row, or -1: it goes
	rows     []int32 // output row -> the input row it is (or copies)
}

func (l *level) total() int { return l.n + len(l.src) }

// reset empties l, keeping its slices.
func (l *level) reset() {
	l.n = 0
	l.src, l.up, l.rows = l.src[:0], l.up[:0], l.rows[:0]
	l.had, l.has, l.out = nil, nil, l.out[:0]
}

// parents is the plan of the output's parent tables.
type parents struct {
	res, scope, met  level
	metRes           []int32  // resource (before pruning) of each metric row
	metName, metUnit []string // of the new metric rows
	// metrics: the items' metric_id and the input metrics' name and unit.
	metricID       *array.Uint32
	inName, inUnit *array.String
}

// reset empties pp, keeping its slices.
func (pp *parents) reset() {
	pp.res.reset()
	pp.scope.reset()
	pp.met.reset()
	pp.metRes = pp.metRes[:0]
	clear(pp.metName)
	clear(pp.metUnit)
	pp.metName, pp.metUnit = pp.metName[:0], pp.metUnit[:0]
	pp.metricID, pp.inName, pp.inUnit = nil, nil, nil
}

// itemParents are the kept items' resource, scope and metric rows: before
// pruning (remapItems), then in the output (renumber).
type itemParents struct{ res, scope, met []int32 }

// parentLinks reads which resource each scope is under and, for metrics,
// which scope each metric is under and which metric each point belongs
// to, checking that every link points at a row that exists: the plan and
// the tables index by them.
func (st *state) parentLinks(pp *parents) error {
	b := st.b
	pp.res.n, pp.scope.n = int(b.Resources.NumRows()), int(b.Scopes.NumRows())
	sRes, err := column[*array.Uint32](b.Scopes, schemas.ScopeResourceID, "scopes")
	if err != nil {
		return err
	}
	pp.scope.up = resize(pp.scope.up, pp.scope.n)
	for s := range pp.scope.n {
		r := sRes.Value(s)
		if int(r) >= pp.res.n {
			return fmt.Errorf("%w: scope %d refers to resource %d of %d", schemas.ErrSchema, s, r, pp.res.n)
		}
		pp.scope.up[s] = int32(r)
	}
	if st.sig != otlpwire.Metrics {
		return nil
	}
	return st.metricLinks(pp)
}

// metricLinks is parentLinks for the metrics table and the points.
func (st *state) metricLinks(pp *parents) error {
	b := st.b
	nMet := int(b.Metrics.NumRows())
	pp.met.n = nMet
	var err error
	if pp.metricID, err = column[*array.Uint32](b.Items, schemas.PtMetricID, "data_points"); err != nil {
		return err
	}
	mScope, err := column[*array.Uint32](b.Metrics, schemas.MetScopeID, "metrics")
	if err != nil {
		return err
	}
	if pp.inName, err = column[*array.String](b.Metrics, schemas.MetName, "metrics"); err != nil {
		return err
	}
	if pp.inUnit, err = column[*array.String](b.Metrics, schemas.MetUnit, "metrics"); err != nil {
		return err
	}
	pp.met.up, pp.metRes = resize(pp.met.up, nMet), resize(pp.metRes, nMet)
	for m := range nMet {
		s := mScope.Value(m)
		if int(s) >= pp.scope.n {
			return fmt.Errorf("%w: metric %d refers to scope %d of %d", schemas.ErrSchema, m, s, pp.scope.n)
		}
		pp.met.up[m], pp.metRes[m] = int32(s), pp.scope.up[s]
	}
	for i := 0; i < st.n; i++ {
		if m := pp.metricID.Value(i); int(m) >= nMet {
			return fmt.Errorf("%w: data point %d refers to metric %d of %d", schemas.ErrSchema, i, m, nMet)
		}
	}
	return nil
}

// keepsParents reports whether every item stays, under its resource, scope
// and metric, so that the parent tables are kept as they are.
func (st *state) keepsParents() bool { return !st.anyDrop && !st.parentsMoved() }

// parentsMoved reports whether some kept item moves to another resource,
// scope or metric row (a new resource, a renamed metric).
func (st *state) parentsMoved() bool {
	if len(st.newRes) > 0 {
		return true
	}
	for k := range st.patches {
		if p := &st.patches[k]; p.res >= 0 || p.what&chMetric != 0 {
			return true
		}
	}
	return false
}

// keptRows returns the item rows that are not dropped, in order.
func (st *state) keptRows() []int32 {
	sel := resize(st.sel, st.n)[:0]
	for i := 0; i < st.n; i++ {
		if !st.drop[i] {
			sel = append(sel, int32(i))
		}
	}
	st.sel = sel
	return sel
}

// patchAt returns the patch of item row i, or nil.
func (st *state) patchAt(i int32) *patch {
	if pi := st.patchOf[i]; pi >= 0 {
		return &st.patches[pi]
	}
	return nil
}

// remapItems gives each kept item its resource, scope and metric row
// before pruning. An item whose resource the rules changed moves to its
// new resource, under a copy of its scope; a point that moves scope, or
// whose metric name or unit the rules changed, moves to a copy of its
// metric (remap).
func (st *state) remapItems(pp *parents, sel []int32) itemParents {
	pp.res.src = resize(pp.res.src, len(st.newRes))
	for k := range st.newRes {
		pp.res.src[k] = int32(st.newRes[k].orig)
	}
	ip := itemParents{res: resize(st.ip.res, len(sel)), scope: resize(st.ip.scope, len(sel))}
	metrics := st.sig == otlpwire.Metrics
	if metrics {
		ip.met = resize(st.ip.met, len(sel))
	}
	st.ip = ip
	if st.scopeBy == nil {
		st.scopeBy, st.metBy = map[[2]int32]int32{}, map[metricKey]int32{}
	}
	clear(st.scopeBy)
	clear(st.metBy)
	rm := remap{pp: pp, scopeBy: st.scopeBy, metBy: st.metBy}
	for k, i := range sel {
		r, s := int32(st.resID.Value(int(i))), int32(st.scopeID.Value(int(i)))
		p := st.patchAt(i)
		res, scope := r, s
		if p != nil && p.res >= 0 {
			res = int32(pp.res.n) + p.res
			scope = rm.scopeCopy(s, res)
		}
		ip.res[k], ip.scope[k] = res, scope
		if metrics {
			ip.met[k] = rm.metric(int(i), p, s, scope, res)
		}
	}
	return ip
}

// remap is remapItems' record of the copies it made: one scope copy per
// input scope and new resource, one metric copy per input metric, scope,
// name and unit.
type remap struct {
	pp      *parents
	scopeBy map[[2]int32]int32 // {input scope, resource} -> scope row
	metBy   map[metricKey]int32
}

type metricKey struct {
	m, scope   int32
	name, unit string
}

// scopeCopy returns the copy of input scope s under new resource res.
func (rm *remap) scopeCopy(s, res int32) int32 {
	l := &rm.pp.scope
	key := [2]int32{s, res}
	ns, ok := rm.scopeBy[key]
	if !ok {
		ns = int32(l.total())
		rm.scopeBy[key] = ns
		l.src = append(l.src, s)
		l.up = append(l.up, res)
	}
	return ns
}

// metric returns the metric row of point i, whose patch is p (or nil),
// input scope s, and scope and resource before pruning scope and res.
func (rm *remap) metric(i int, p *patch, s, scope, res int32) int32 {
	pp := rm.pp
	m := int32(pp.metricID.Value(i))
	renamed := p != nil && p.what&chMetric != 0
	if scope == s && !renamed {
		return m
	}
	key := metricKey{m: m, scope: scope, name: pp.inName.Value(int(m)), unit: pp.inUnit.Value(int(m))}
	if renamed {
		key.name, key.unit = p.name, p.unit
	}
	nm, ok := rm.metBy[key]
	if !ok {
		nm = int32(pp.met.total())
		rm.metBy[key] = nm
		pp.met.src = append(pp.met.src, m)
		pp.met.up = append(pp.met.up, scope)
		pp.metRes = append(pp.metRes, res)
		pp.metName = append(pp.metName, key.name)
		pp.metUnit = append(pp.metUnit, key.unit)
	}
	return nm
}

// countItems counts the items of each parent row: in the input all items,
// in the output the kept ones under their rows before pruning (ip).
func (st *state) countItems(pp *parents, ip *itemParents) {
	st.levelCounts(pp)
	for i := 0; i < st.n; i++ {
		pp.res.had[st.resID.Value(i)]++
		pp.scope.had[st.scopeID.Value(i)]++
	}
	if pp.metricID != nil {
		for i := 0; i < st.n; i++ {
			pp.met.had[pp.metricID.Value(i)]++
		}
	}
	for k := range ip.res {
		pp.res.has[ip.res[k]]++
		pp.scope.has[ip.scope[k]]++
	}
	for _, m := range ip.met {
		pp.met.has[m]++
	}
}

// countKept is countItems when no item moves (parentsMoved is false): the
// kept items are counted under their input rows, the dropped ones taken
// off the input's counts.
func (st *state) countKept(pp *parents) {
	st.levelCounts(pp)
	res, scope := st.resID.Values(), st.scopeID.Values()
	res, scope = res[:st.n], scope[:st.n]
	var met []uint32
	if pp.metricID != nil {
		met = pp.metricID.Values()[:st.n]
	}
	rHad, sHad, mHad := pp.res.had, pp.scope.had, pp.met.had
	for i := range res {
		rHad[res[i]]++
		sHad[scope[i]]++
	}
	for i := range met {
		mHad[met[i]]++
	}
	copy(pp.res.has, rHad)
	copy(pp.scope.has, sHad)
	copy(pp.met.has, mHad)
	for i, d := range st.drop[:st.n] {
		if d {
			pp.res.has[res[i]]--
			pp.scope.has[scope[i]]--
			if met != nil {
				pp.met.has[met[i]]--
			}
		}
	}
}

// levelCounts gives the levels of pp their had and has counts, zero.
func (st *state) levelCounts(pp *parents) {
	had := resize(st.had, pp.res.n+pp.scope.n+pp.met.n)
	has := resize(st.has, pp.res.total()+pp.scope.total()+pp.met.total())
	st.had, st.has = had, has
	clear(had)
	clear(has)
	for _, l := range [...]*level{&pp.res, &pp.scope, &pp.met} {
		l.had, had = had[:l.n:l.n], had[l.n:]
		l.has, has = has[:l.total():l.total()], has[l.total():]
	}
}

// prune numbers the output rows of the parent tables. It reports whether
// they differ from the input's: rows were added or rows go.
func (pp *parents) prune() bool {
	structural := len(pp.res.src) > 0 || len(pp.scope.src) > 0 || len(pp.met.src) > 0
	structural = pp.res.prune(nil) || structural
	structural = pp.scope.prune(pp.res.out) || structural
	structural = pp.met.prune(pp.scope.out) || structural
	return structural
}

// prune sets l.out and l.rows: a row goes when its parent went (upOut is
// the out of the level above) or when it had items and has none left. A
// parent that arrived without items stays: the rules did not empty it.
func (l *level) prune(upOut []int32) (gone bool) {
	tot := l.total()
	l.out = resize(l.out, tot)
	l.rows = resize(l.rows, tot)[:0]
	for r := range tot {
		if l.up != nil && upOut[l.up[r]] < 0 || r < l.n && l.had[r] > 0 && l.has[r] == 0 {
			l.out[r] = -1
			gone = true
			continue
		}
		l.out[r] = int32(len(l.rows))
		if r < l.n {
			l.rows = append(l.rows, int32(r))
		} else {
			l.rows = append(l.rows, l.src[r-l.n])
		}
	}
	return gone
}

// renumber turns the items' parent rows before pruning into output rows.
func (ip *itemParents) renumber(pp *parents) {
	for k := range ip.res {
		ip.res[k] = pp.res.out[ip.res[k]]
		ip.scope[k] = pp.scope.out[ip.scope[k]]
	}
	for k, m := range ip.met {
		ip.met[k] = pp.met.out[m]
	}
}
