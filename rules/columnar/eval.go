package columnar

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// kv is one entry of a rewritten attribute map: either entry orig of the
// input column, copied as is, or key and a value a rule produced (val,
// and enc its AnyValue fields, encoded once for every row the patch is
// written to: see edit.go).
type kv struct {
	orig int32 // entry index in the input map column, or -1
	key  string
	val  any
	enc  encoded
}

// patch is what the rules changed on one kept item.
type patch struct {
	kvStart, kvEnd int32 // st.kvs of the new attributes, when attrs
	// memo is 1 + the rowMemo entry of a patch shared by the rows with
	// the same outcome, else 0. Its kv.orig are entries of the row the
	// memo entry was computed on; see patchBase.
	memo       int32
	res        int32 // index in st.newRes, or -1
	what       uint16
	name, unit string // metrics name, unit; spans name
	text       string // logs severity_text; spans status_message
	sevNum     int
	body       any
	// segStart, segEnd: the kvs as attrSegs in st.psegs; entries: their
	// number of entries (compilePatches).
	segStart, segEnd, entries int32
}

const (
	chAttrs uint16 = 1 << iota
	chMetric
	chName
	chText
	chSevNum
	chBody
)

// newResource is a resource row a rule's edits created: a copy of orig with
// other attributes.
type newResource struct {
	orig int
	kvs  []kv // owned copy (st.kvs is reused)
}

// rowEval is what evaluate's steps share about the batch: the signal's
// Env, and the functions that fill its fields from an item row and record
// which of them the rules changed (metricFields, logFields, spanFields).
type rowEval struct {
	env           rules.Env
	common        *rules.Common
	fill          func(i int) error
	diff          func(i int, p *patch)
	nRes, nScopes int
}

// evaluate runs the rules on every item row and records the outcome in st
// (drop, patchOf, patches, kvs, newRes) for build. Per row: the memo, when
// the rules allow it, replays the outcome of an equal row (memoRow); else
// the Env is filled (fillEnv, rowEval.fill), the rules run (applyRules) and
// what they did is recorded (dropRow, recordPatch).
func (st *state) evaluate() error {
	var re rowEval
	if err := st.prepare(&re); err != nil {
		return err
	}
	defer st.addReplays()
	memo := st.info.memo
	for i := 0; i < st.n; i++ {
		st.patchOf[i] = -1
		r, s := int(st.resID.Value(i)), int(st.scopeID.Value(i))
		if r >= re.nRes || s >= re.nScopes {
			return fmt.Errorf("%w: item %d refers to resource %d of %d, scope %d of %d", schemas.ErrSchema, i, r, re.nRes, s, re.nScopes)
		}
		var me *memoEntry
		if memo && !st.memo.off {
			var sm *setMemo
			if st.inSets != nil && len(st.fieldKeys) == 0 {
				// A row of an input set met before under the same
				// resource and scope, where the rules read them (each
				// request's resources are rows of their own), has that
				// row's outcome.
				mr, ms := int32(r), int32(s)
				if !st.info.res {
					mr = -1
				}
				if !st.info.memoScope {
					ms = -1
				}
				sm = &st.setMemo[st.inSets[i]]
				if sm.entry > 0 && sm.r == mr && sm.s == ms {
					if st.memo.probing {
						st.probeRow(i) // as memoRow would
					}
					st.memo.hits++
					st.replay(i, &st.memo.entries[sm.entry-1])
					continue
				}
			}
			var hit bool
			me, hit = st.memoRow(i, r, s)
			if sm != nil && !st.memo.off && st.memo.last >= 0 {
				*sm = setMemo{entry: st.memo.last + 1, r: st.memo.entries[st.memo.last].r, s: st.memo.entries[st.memo.last].s}
			}
			if hit {
				continue
			}
		}
		keys, res := st.fillEnv(re.common, i, r, s)
		if err := re.fill(i); err != nil {
			return err
		}
		out := st.applyRules(re.env, keys, me)
		if out.Drop {
			st.dropRow(i, me)
			continue
		}
		if out.Mark != (rules.Mark{}) {
			st.markRow(i, out.Mark, me)
		}
		if out.Changed {
			st.recordPatch(&re, i, r, res, me)
		}
	}
	return nil
}

// prepare reads the batch's columns that evaluate's loop uses.
func (st *state) prepare(re *rowEval) error {
	if err := st.parentInputs(re); err != nil {
		return err
	}
	if err := st.signalEnv(re); err != nil {
		return err
	}
	return st.itemInputs()
}

// parentInputs reads the resource attributes (decoded per resource row
// when an item first needs them, see resource) and the scopes.
func (st *state) parentInputs(re *rowEval) error {
	b := st.b
	var err error
	re.nRes, re.nScopes = int(b.Resources.NumRows()), int(b.Scopes.NumRows())
	if st.resAttrs, err = mapColsOf(b.Resources, schemas.ResAttributes, "resources"); err != nil {
		return err
	}
	st.resMaps = resize(st.resMaps, re.nRes)
	st.resDone = resize(st.resDone, re.nRes)
	clear(st.resDone)
	sName, err := column[*array.String](b.Scopes, schemas.ScopeName, "scopes")
	if err != nil {
		return err
	}
	sVersion, err := column[*array.String](b.Scopes, schemas.ScopeVersion, "scopes")
	if err != nil {
		return err
	}
	st.scopes = resize(st.scopes, re.nScopes)
	for s := range re.nScopes {
		st.scopes[s] = rules.Scope{Name: sName.Value(s), Version: sVersion.Value(s)}
	}
	return nil
}

// signalEnv sets re to the Env of st's signal and its field functions.
func (st *state) signalEnv(re *rowEval) error {
	var err error
	it := st.b.Items
	switch st.sig {
	case otlpwire.Metrics:
		re.env, re.common = &st.menv, &st.menv.Common
		re.fill, re.diff, err = st.metricFields(it)
	case otlpwire.Logs:
		re.env, re.common = &st.lenv, &st.lenv.Common
		re.fill, re.diff, err = st.logFields(it)
	default:
		re.env, re.common = &st.senv, &st.senv.Common
		re.fill, re.diff, err = st.spanFields(it)
	}
	return err
}

// itemInputs reads the items' resource and scope ids and attributes, and
// the fields the memo keys on.
func (st *state) itemInputs() error {
	it := st.b.Items
	var err error
	// Items start with resource_id, scope_id in every items schema.
	if st.resID, err = column[*array.Uint32](it, 0, "items"); err != nil {
		return err
	}
	if st.scopeID, err = column[*array.Uint32](it, 1, "items"); err != nil {
		return err
	}
	if st.itAttrs, err = mapColsOf(it, attrColumnOf(st.sig), "items"); err != nil {
		return err
	}
	if st.info.memo {
		return st.memoFieldKeys(it)
	}
	return nil
}

// fillEnv sets the attributes, resource and scope of item row i (resource
// r, scope s) in c. It returns the Keys the Evaluator may memoise
// conditions under, and the resource map as read, for recordPatch to diff.
func (st *state) fillEnv(c *rules.Common, i, r, s int) (rules.Keys, map[string]any) {
	if st.info.attrs {
		st.fillAttrs(i)
		c.Attributes = st.attrs
	} else {
		c.Attributes = nil
	}
	var res map[string]any
	if st.info.res {
		res = st.resource(r)
	}
	keys := rules.Keys{Resource: uint64(r) + 1, Scope: uint64(s) + 1}
	if st.info.writesResource {
		// The rules edit the item's own copy, so a condition on the
		// resource may not be memoised per resource row.
		clear(st.resCOW)
		for k, v := range res {
			st.resCOW[k] = v
		}
		c.Resource = st.resCOW
		keys.Resource = 0
	} else {
		c.Resource = res
	}
	c.Scope = st.scopes[s]
	return keys, res
}

// applyRules runs the rules on the filled env. When the row's outcome is
// memoised (me), the rule counters are also added to me's tally, for the
// rows that replay it.
func (st *state) applyRules(env rules.Env, keys rules.Keys, me *memoEntry) rules.Result {
	var (
		out rules.Result
		err error
	)
	if me != nil {
		out, err = st.ev.ApplyTally(env, keys, &me.tally)
	} else {
		out, err = st.ev.Apply(env, keys)
	}
	if err != nil {
		st.errCount++
		if st.firstErr == nil {
			st.firstErr = err
		}
		if me != nil {
			me.err = true
		}
	}
	return out
}

// dropRow records that item row i is dropped.
func (st *state) dropRow(i int, me *memoEntry) {
	st.drop[i] = true
	st.anyDrop = true
	if me != nil {
		me.drop = true
	}
}

// markRow records the Mark of item row i (a metric point).
func (st *state) markRow(i int, m rules.Mark, me *memoEntry) {
	st.marks[i] = m
	st.anyMark = true
	if me != nil {
		me.mark = m
	}
}

// recordPatch records what the rules changed on item row i (resource r,
// whose map as read is res): the attributes as kvs, a new resource, the
// signal's fields. Changes that compare the same as the input (a value
// set to what it was) are not changes; a row left with none gets no patch.
func (st *state) recordPatch(re *rowEval, i, r int, res map[string]any, me *memoEntry) {
	// The patch is built in place at the end of st.patches and taken back
	// when the row turned out unchanged: p passed to re.diff (a function
	// value) would otherwise escape, a heap allocation per row.
	st.patches = append(st.patches, patch{res: -1})
	p := &st.patches[len(st.patches)-1]
	if me != nil {
		p.memo = int32(len(st.memo.entries)) // me is the last entry
	}
	if st.info.attrs && st.attrsChanged(i) {
		p.what |= chAttrs
		p.kvStart = int32(len(st.kvs))
		start, end := st.itAttrs.m.ValueOffsets(i)
		st.appendKVs(st.attrs, &st.itAttrs, int(start), int(end), st.hasDup, func(k int) any { return st.origVals[k] })
		p.kvEnd = int32(len(st.kvs))
	}
	if st.info.writesResource && st.resourceChanged(res) {
		p.res = st.newResource(r, res)
	}
	re.diff(i, p)
	if p.what == 0 && p.res < 0 {
		st.patches = st.patches[:len(st.patches)-1]
		return
	}
	st.patchOf[i] = int32(len(st.patches) - 1)
	if me != nil {
		me.hasPatch, me.patch = true, int32(len(st.patches)-1)
	}
}

// replay gives row i the outcome memoised in me. It is kept small enough
// to be inlined: replaying is most rows' path in repetitive batches. The
// rows' counts are added per entry at the end (addReplays).
func (st *state) replay(i int, me *memoEntry) {
	me.replays++
	if me.drop {
		st.drop[i] = true
		st.anyDrop = true
		return
	}
	if me.mark != (rules.Mark{}) {
		st.marks[i] = me.mark
		st.anyMark = true
	}
	if !me.hasPatch {
		return
	}
	st.patchOf[i] = me.patch
}

// addReplays adds to the Evaluator's counters, and to the batch's errors,
// the rows that replayed each memo entry.
func (st *state) addReplays() {
	for k := range st.memo.entries {
		me := &st.memo.entries[k]
		if me.replays == 0 {
			continue
		}
		st.ev.AddTallyN(&me.tally, int(me.replays))
		if me.err {
			st.errCount += int(me.replays)
		}
	}
}

// patchBase is what to add to the kv.orig of patch p to get entries of
// item row i (p shared by rows with equal attributes, see rowMemo).
func (st *state) patchBase(i int, p *patch) int32 {
	if p.memo == 0 {
		return 0
	}
	row := int(st.memo.entries[p.memo-1].row)
	c := &st.itAttrs
	if row == i || c.m.IsNull(i) || c.m.IsNull(row) {
		return 0
	}
	return c.rowOff[i] - c.rowOff[row]
}
