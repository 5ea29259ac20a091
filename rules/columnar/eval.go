package columnar

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// kv is one entry of a rewritten attribute map: either entry orig of the
// input column, copied as is, or key and a value a rule produced.
type kv struct {
	orig int32 // entry index in the input map column, or -1
	key  string
	val  any
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
	orig           int
	kvStart, kvEnd int32
	kvs            []kv // owned copy (st.kvs is reused)
}

// mapCols reads a map<string, AnyValue> column.
type mapCols struct {
	m    *array.Map
	keys *array.String
	vals anyCols
	// Raw views of the entry columns, indexed by entry (as keys.Value):
	// the entries of a row are contiguous, so the keys (string values) of
	// a row are one byte range keyData[keyOff[start]-keyOff[0]:keyOff[end]-keyOff[0]].
	keyOff  []int32
	keyData []byte
	typs    []uint8
	strOff  []int32
	strData []byte
	anyTrue bool // some bool value is true
}

func newMapCols(a arrow.Array) (mapCols, error) {
	m, ok := a.(*array.Map)
	if !ok {
		return mapCols{}, fmt.Errorf("%w: attributes column is %s", schemas.ErrSchema, a.DataType())
	}
	k, ok := m.Keys().(*array.String)
	if !ok {
		return mapCols{}, fmt.Errorf("%w: attributes keys are %s", schemas.ErrSchema, m.Keys().DataType())
	}
	v, err := newAnyCols(m.Items())
	if err != nil {
		return mapCols{}, err
	}
	c := mapCols{m: m, keys: k, vals: v}
	if n := v.Bool.Len(); n > 0 {
		if bm := v.Bool.Data().Buffers()[1]; bm != nil {
			c.anyTrue = bitutil.CountSetBits(bm.Bytes(), v.Bool.Data().Offset(), n) > 0
		}
	}
	if k.Len() > 0 && v.Type.Len() == k.Len() && v.Str.Len() == k.Len() {
		c.keyOff, c.keyData = k.ValueOffsets(), k.ValueBytes()
		c.typs = v.Type.Uint8Values()
		c.strOff, c.strData = v.Str.ValueOffsets(), v.Str.ValueBytes()
	}
	return c, nil
}

// state is the per-call state of Engine.Apply, reused across batches.
type state struct {
	e    *Engine
	ev   *rules.Evaluator
	b    *schemas.Batch
	sig  otlpwire.Signal
	info sigInfo

	menv rules.MetricEnv
	lenv rules.LogEnv
	senv rules.SpanEnv

	attrs    map[string]any // the item's attributes, cleared per row
	resCOW   map[string]any // the item's resource copy when rules write resource
	origVals []any          // values of the item's attributes as read
	hasDup   bool

	resMaps []map[string]any // per resource row, read-only, built lazily
	resDone []bool
	scopes  []rules.Scope

	arena []byte // hex ids of this batch (strings alias it)
	box   boxer
	memo  rowMemo
	// fieldKeys append the fields of sigInfo.fields of a row to a memo key.
	fieldKeys []func(b []byte, i int) []byte
	raw       rawAttrs
	tally     rules.Tally

	// outcome
	n        int
	drop     []bool
	anyDrop  bool
	patchOf  []int32
	patches  []patch
	kvs      []kv
	newRes   []newResource
	newResBy map[string]int32
	sigBuf   []byte
	errCount int
	firstErr error

	memoOut []int32 // per memo entry, the output row of its attributes (attrColumn)

	// input columns
	resAttrs mapCols
	itAttrs  mapCols
	resID    *array.Uint32
	scopeID  *array.Uint32
}

func newState(e *Engine) *state {
	return &state{e: e, ev: e.set.NewEvaluator(), attrs: map[string]any{}, resCOW: map[string]any{}, newResBy: map[string]int32{}}
}

func (st *state) begin(b *schemas.Batch, sig otlpwire.Signal, info sigInfo) {
	st.b, st.sig, st.info = b, sig, info
	st.ev.Reset()
	st.arena = st.arena[:0]
	st.n = int(b.Items.NumRows())
	st.drop = resize(st.drop, st.n)
	clear(st.drop)
	st.patchOf = resize(st.patchOf, st.n)
	st.anyDrop = false
	st.patches = st.patches[:0]
	st.kvs = st.kvs[:0]
	st.newRes = st.newRes[:0]
	clear(st.newResBy)
	st.errCount, st.firstErr = 0, nil
	if info.memo {
		st.memo.reset()
	}
}

// end drops references to the batch so that the pooled state does not keep
// its memory alive.
func (st *state) end() {
	st.b = nil
	st.box.drop()
	clear(st.attrs)
	clear(st.resCOW)
	clear(st.origVals)
	clear(st.resMaps)
	clear(st.scopes)
	clear(st.kvs[:cap(st.kvs)])
	clear(st.patches[:cap(st.patches)])
	st.newRes = st.newRes[:0]
	clear(st.newResBy)
	st.menv, st.lenv, st.senv = rules.MetricEnv{}, rules.LogEnv{}, rules.SpanEnv{}
	st.firstErr = nil
	st.resAttrs, st.itAttrs = mapCols{}, mapCols{}
	st.resID, st.scopeID = nil, nil
	st.memo.reset()
	clear(st.fieldKeys)
	st.fieldKeys = st.fieldKeys[:0]
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func column[T arrow.Array](rec arrow.RecordBatch, i int, what string) (T, error) {
	var zero T
	if rec == nil || i >= int(rec.NumCols()) {
		return zero, fmt.Errorf("%w: %s has no column %d", schemas.ErrSchema, what, i)
	}
	a, ok := rec.Column(i).(T)
	if !ok {
		return zero, fmt.Errorf("%w: %s column %d is %s", schemas.ErrSchema, what, i, rec.Column(i).DataType())
	}
	return a, nil
}

// hexString returns id as lowercase hex, a string in the batch's arena.
func (st *state) hexString(id []byte) string {
	if len(id) == 0 {
		return ""
	}
	start := len(st.arena)
	st.arena = hex.AppendEncode(st.arena, id)
	return unsafe.String(&st.arena[start], len(st.arena)-start)
}

// resource returns the resource attributes of row r, decoded once.
func (st *state) resource(r int) map[string]any {
	if st.resDone[r] {
		return st.resMaps[r]
	}
	st.resDone[r] = true
	if st.resAttrs.m.IsNull(r) {
		st.resMaps[r] = nil
		return nil
	}
	start, end := st.resAttrs.m.ValueOffsets(r)
	m := make(map[string]any, end-start)
	for j := int(start); j < int(end); j++ {
		m[st.resAttrs.keys.Value(j)] = st.resAttrs.vals.value(j, &st.box)
	}
	st.resMaps[r] = m
	return m
}

// fillAttrs loads the attributes of item row i into st.attrs.
func (st *state) fillAttrs(i int) {
	m := st.attrs
	clear(m)
	st.origVals = st.origVals[:0]
	start, end := st.itAttrs.m.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		v := st.itAttrs.vals.value(j, &st.box)
		st.origVals = append(st.origVals, v)
		m[st.itAttrs.keys.Value(j)] = v
	}
	st.hasDup = len(m) != int(end-start)
}

// attrsChanged reports whether the rules changed the attributes of row i.
func (st *state) attrsChanged(i int) bool {
	if st.hasDup || len(st.attrs) != len(st.origVals) {
		return true
	}
	start, _ := st.itAttrs.m.ValueOffsets(i)
	for k, ov := range st.origVals {
		v, ok := st.attrs[st.itAttrs.keys.Value(int(start)+k)]
		if !ok || !rules.SameValue(v, ov) {
			return true
		}
	}
	return false
}

// appendKVs appends to st.kvs the entries of m as a rewrite of entries
// [start, end) of c whose decoded values are orig: entries still present
// keep their position (copied as they are when their value did not change),
// then new keys follow in key order.
func (st *state) appendKVs(m map[string]any, c *mapCols, start, end int, dups bool, orig func(k int) any) {
	first := len(st.kvs)
	for j := start; j < end; j++ {
		key := c.keys.Value(j)
		dup := false
		for _, prev := range st.kvs[first:] {
			if !dups {
				break
			}
			if prev.key == key {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		v, ok := m[key]
		if !ok {
			continue
		}
		if rules.SameValue(v, orig(j-start)) {
			st.kvs = append(st.kvs, kv{orig: int32(j), key: key})
		} else {
			st.kvs = append(st.kvs, kv{orig: -1, key: key, val: v})
		}
	}
	known := len(st.kvs)
	if len(m) > known-first {
		for k, v := range m {
			found := false
			for _, e := range st.kvs[first:known] {
				if e.key == k {
					found = true
					break
				}
			}
			if !found {
				st.kvs = append(st.kvs, kv{orig: -1, key: k, val: v})
			}
		}
		slices.SortFunc(st.kvs[known:], func(a, b kv) int {
			if a.key < b.key {
				return -1
			}
			if a.key > b.key {
				return 1
			}
			return 0
		})
	}
}

func (st *state) evaluate() error {
	b := st.b
	var err error
	nRes := int(b.Resources.NumRows())
	nScopes := int(b.Scopes.NumRows())
	if st.resAttrs, err = mapColsOf(b.Resources, schemas.ResAttributes, "resources"); err != nil {
		return err
	}
	st.resMaps = resize(st.resMaps, nRes)
	st.resDone = resize(st.resDone, nRes)
	clear(st.resDone)
	sName, err := column[*array.String](b.Scopes, schemas.ScopeName, "scopes")
	if err != nil {
		return err
	}
	sVersion, err := column[*array.String](b.Scopes, schemas.ScopeVersion, "scopes")
	if err != nil {
		return err
	}
	st.scopes = resize(st.scopes, nScopes)
	for s := range nScopes {
		st.scopes[s] = rules.Scope{Name: sName.Value(s), Version: sVersion.Value(s)}
	}
	var (
		env    rules.Env
		common *rules.Common
		fill   func(i int) error
		diff   func(i int, p *patch)
	)
	it := b.Items
	switch st.sig {
	case otlpwire.Metrics:
		env, common = &st.menv, &st.menv.Common
		fill, diff, err = st.metricFields(it)
	case otlpwire.Logs:
		env, common = &st.lenv, &st.lenv.Common
		fill, diff, err = st.logFields(it)
	default:
		env, common = &st.senv, &st.senv.Common
		fill, diff, err = st.spanFields(it)
	}
	if err != nil {
		return err
	}
	// Items start with resource_id, scope_id in every items schema.
	if st.resID, err = column[*array.Uint32](it, 0, "items"); err != nil {
		return err
	}
	if st.scopeID, err = column[*array.Uint32](it, 1, "items"); err != nil {
		return err
	}
	attrCol := map[otlpwire.Signal]int{otlpwire.Metrics: schemas.PtAttributes, otlpwire.Logs: schemas.LogAttributes, otlpwire.Traces: schemas.SpanAttributes}[st.sig]
	if st.itAttrs, err = mapColsOf(it, attrCol, "items"); err != nil {
		return err
	}
	cow := st.info.writesResource
	memo := st.info.memo
	if memo {
		if err := st.memoFieldKeys(it); err != nil {
			return err
		}
	}
	for i := 0; i < st.n; i++ {
		st.patchOf[i] = -1
		r, s := int(st.resID.Value(i)), int(st.scopeID.Value(i))
		if r >= nRes || s >= nScopes {
			return fmt.Errorf("%w: item %d refers to resource %d of %d, scope %d of %d", schemas.ErrSchema, i, r, nRes, s, nScopes)
		}
		var (
			me *memoEntry
			h  uint64
		)
		if memo && !st.memo.off {
			mr, ms := -1, -1
			if st.info.res {
				mr = r
			}
			if st.info.memoScope {
				ms = s
			}
			h = st.memoKey(i, mr, ms)
			if e := st.memoLookup(h, i, mr, ms); e >= 0 {
				st.memo.hits++
				st.replay(i, &st.memo.entries[e])
				continue
			}
			if len(st.memo.entries) >= memoGiveUp && st.memo.hits*memoMinHitRate < len(st.memo.entries) {
				st.memo.off = true
			} else {
				me = st.memoAdd(h, i, mr, ms)
			}
		}
		if st.info.attrs {
			st.fillAttrs(i)
			common.Attributes = st.attrs
		} else {
			common.Attributes = nil
		}
		var res map[string]any
		if st.info.res {
			res = st.resource(r)
		}
		keys := rules.Keys{Resource: uint64(r) + 1, Scope: uint64(s) + 1}
		if cow {
			clear(st.resCOW)
			for k, v := range res {
				st.resCOW[k] = v
			}
			common.Resource = st.resCOW
			keys.Resource = 0
		} else {
			common.Resource = res
		}
		common.Scope = st.scopes[s]
		if err := fill(i); err != nil {
			return err
		}
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
		if out.Drop {
			st.drop[i] = true
			st.anyDrop = true
			if me != nil {
				me.drop = true
			}
			continue
		}
		if !out.Changed {
			continue
		}
		p := patch{res: -1}
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
		if cow && st.resourceChanged(res) {
			p.res = st.newResource(r, res)
		}
		diff(i, &p)
		if p.what != 0 || p.res >= 0 {
			st.patchOf[i] = int32(len(st.patches))
			st.patches = append(st.patches, p)
			if me != nil {
				me.hasPatch, me.patch = true, int32(len(st.patches)-1)
			}
		}
	}
	return nil
}

// replay gives row i the outcome memoised in me.
func (st *state) replay(i int, me *memoEntry) {
	st.ev.AddTally(&me.tally)
	if me.err {
		st.errCount++
	}
	if me.drop {
		st.drop[i] = true
		st.anyDrop = true
		return
	}
	if !me.hasPatch {
		return
	}
	st.patchOf[i] = me.patch
}

// patchBase is what to add to the kv.orig of patch p to get entries of
// item row i (p shared by rows with equal attributes, see rowMemo).
func (st *state) patchBase(i int, p *patch) int32 {
	if p.memo == 0 {
		return 0
	}
	row := int(st.memo.entries[p.memo-1].row)
	c := st.itAttrs.m
	if row == i || c.IsNull(i) || c.IsNull(row) {
		return 0
	}
	a, _ := c.ValueOffsets(i)
	b, _ := c.ValueOffsets(row)
	return int32(a - b)
}

func mapColsOf(rec arrow.RecordBatch, i int, what string) (mapCols, error) {
	if rec == nil || i >= int(rec.NumCols()) {
		return mapCols{}, fmt.Errorf("%w: %s has no column %d", schemas.ErrSchema, what, i)
	}
	return newMapCols(rec.Column(i))
}

func (st *state) resourceChanged(orig map[string]any) bool {
	m := st.resCOW
	if len(m) != len(orig) {
		return true
	}
	for k, v := range m {
		o, ok := orig[k]
		if !ok || !rules.SameValue(v, o) {
			return true
		}
	}
	return false
}

// newResource returns the index in st.newRes of resource row r with the
// attributes of st.resCOW, adding it if it is new.
func (st *state) newResource(r int, orig map[string]any) int32 {
	first := len(st.kvs)
	start, end := 0, 0
	if !st.resAttrs.m.IsNull(r) {
		s, e := st.resAttrs.m.ValueOffsets(r)
		start, end = int(s), int(e)
	}
	st.appendKVs(st.resCOW, &st.resAttrs, start, end, true, func(k int) any { return st.resAttrs.vals.value(start+k, &st.box) })
	kvs := st.kvs[first:]
	b := strconv.AppendInt(st.sigBuf[:0], int64(r), 10)
	for _, e := range kvs {
		b = append(b, 0)
		if e.orig >= 0 {
			b = strconv.AppendInt(append(b, 'o'), int64(e.orig), 10)
			continue
		}
		b = append(append(b, e.key...), 0)
		b = appendSig(b, e.val)
	}
	st.sigBuf = b
	if idx, ok := st.newResBy[string(b)]; ok {
		st.kvs = st.kvs[:first]
		return idx
	}
	idx := int32(len(st.newRes))
	st.newResBy[string(b)] = idx
	st.newRes = append(st.newRes, newResource{orig: r, kvs: slices.Clone(kvs)})
	st.kvs = st.kvs[:first]
	return idx
}

// metricFields reads the metric fields of points: name, unit, type from
// the metrics table, value from the point.
func (st *state) metricFields(it arrow.RecordBatch) (func(int) error, func(int, *patch), error) {
	mt := st.b.Metrics
	metricID, err := column[*array.Uint32](it, schemas.PtMetricID, "data_points")
	if err != nil {
		return nil, nil, err
	}
	name, err := column[*array.String](mt, schemas.MetName, "metrics")
	if err != nil {
		return nil, nil, err
	}
	unit, err := column[*array.String](mt, schemas.MetUnit, "metrics")
	if err != nil {
		return nil, nil, err
	}
	typ, err := column[*array.Uint8](mt, schemas.MetType, "metrics")
	if err != nil {
		return nil, nil, err
	}
	dv, err := column[*array.Float64](it, schemas.PtDoubleValue, "data_points")
	if err != nil {
		return nil, nil, err
	}
	iv, err := column[*array.Int64](it, schemas.PtIntValue, "data_points")
	if err != nil {
		return nil, nil, err
	}
	sum, err := column[*array.Float64](it, schemas.PtSum, "data_points")
	if err != nil {
		return nil, nil, err
	}
	nm := int(mt.NumRows())
	env := &st.menv
	fill := func(i int) error {
		m := int(metricID.Value(i))
		if m >= nm {
			return fmt.Errorf("%w: data point %d refers to metric %d of %d", schemas.ErrSchema, i, m, nm)
		}
		env.Name, env.Unit, env.Type = name.Value(m), unit.Value(m), metricType(typ.Value(m))
		switch {
		case dv.IsValid(i):
			env.Value = dv.Value(i)
		case iv.IsValid(i):
			env.Value = float64(iv.Value(i))
		case sum.IsValid(i):
			env.Value = sum.Value(i)
		default:
			env.Value = 0
		}
		return nil
	}
	diff := func(i int, p *patch) {
		m := int(metricID.Value(i))
		if env.Name != name.Value(m) || env.Unit != unit.Value(m) {
			p.what |= chMetric
			p.name, p.unit = env.Name, env.Unit
		}
	}
	return fill, diff, nil
}

func (st *state) logFields(it arrow.RecordBatch) (func(int) error, func(int, *patch), error) {
	sev, err := column[*array.Int32](it, schemas.LogSeverityNumber, "log_records")
	if err != nil {
		return nil, nil, err
	}
	sevText, err := column[*array.String](it, schemas.LogSeverityText, "log_records")
	if err != nil {
		return nil, nil, err
	}
	if int(it.NumCols()) <= schemas.LogBody {
		return nil, nil, fmt.Errorf("%w: log_records has no body", schemas.ErrSchema)
	}
	body, err := newAnyCols(it.Column(schemas.LogBody))
	if err != nil {
		return nil, nil, err
	}
	traceID, err := column[*array.Binary](it, schemas.LogTraceID, "log_records")
	if err != nil {
		return nil, nil, err
	}
	spanID, err := column[*array.Binary](it, schemas.LogSpanID, "log_records")
	if err != nil {
		return nil, nil, err
	}
	env := &st.lenv
	var origBody any
	fill := func(i int) error {
		origBody = body.value(i, &st.box)
		env.Body = origBody
		env.SeverityNumber = int(sev.Value(i))
		env.SeverityText = sevText.Value(i)
		env.TraceID = st.hexString(traceID.Value(i))
		env.SpanID = st.hexString(spanID.Value(i))
		return nil
	}
	diff := func(i int, p *patch) {
		if !rules.SameValue(env.Body, origBody) {
			p.what |= chBody
			p.body = env.Body
		}
		if env.SeverityNumber != int(sev.Value(i)) {
			p.what |= chSevNum
			p.sevNum = env.SeverityNumber
		}
		if env.SeverityText != sevText.Value(i) {
			p.what |= chText
			p.text = env.SeverityText
		}
	}
	return fill, diff, nil
}

func (st *state) spanFields(it arrow.RecordBatch) (func(int) error, func(int, *patch), error) {
	name, err := column[*array.String](it, schemas.SpanName, "spans")
	if err != nil {
		return nil, nil, err
	}
	kind, err := column[*array.Int32](it, schemas.SpanKind, "spans")
	if err != nil {
		return nil, nil, err
	}
	status, err := column[*array.Int32](it, schemas.SpanStatusCode, "spans")
	if err != nil {
		return nil, nil, err
	}
	msg, err := column[*array.String](it, schemas.SpanStatusMessage, "spans")
	if err != nil {
		return nil, nil, err
	}
	start, err := column[*array.Uint64](it, schemas.SpanStartTimeUnixNano, "spans")
	if err != nil {
		return nil, nil, err
	}
	end, err := column[*array.Uint64](it, schemas.SpanEndTimeUnixNano, "spans")
	if err != nil {
		return nil, nil, err
	}
	traceID, err := column[*array.Binary](it, schemas.SpanTraceID, "spans")
	if err != nil {
		return nil, nil, err
	}
	spanID, err := column[*array.Binary](it, schemas.SpanSpanID, "spans")
	if err != nil {
		return nil, nil, err
	}
	parent, err := column[*array.Binary](it, schemas.SpanParentSpanID, "spans")
	if err != nil {
		return nil, nil, err
	}
	env := &st.senv
	fill := func(i int) error {
		env.Name = name.Value(i)
		env.Kind = spanKind(kind.Value(i))
		env.StatusCode = statusCode(status, i)
		env.StatusMessage = msg.Value(i)
		env.DurationMs = durationMs(start.Value(i), end.Value(i))
		env.TraceID = st.hexString(traceID.Value(i))
		env.SpanID = st.hexString(spanID.Value(i))
		env.ParentSpanID = st.hexString(parent.Value(i))
		return nil
	}
	diff := func(i int, p *patch) {
		if env.Name != name.Value(i) {
			p.what |= chName
			p.name = env.Name
		}
		if env.StatusMessage != msg.Value(i) {
			p.what |= chText
			p.text = env.StatusMessage
		}
	}
	return fill, diff, nil
}

// durationMs is end - start in milliseconds; negative when a span ends
// before it starts.
func durationMs(start, end uint64) float64 { return float64(int64(end-start)) / 1e6 }
