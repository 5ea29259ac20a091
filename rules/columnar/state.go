package columnar

import (
	"encoding/hex"
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

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
	// marks: per item row, the rules' Mark (metrics only); anyMark: some
	// kept row has one.
	marks   []rules.Mark
	anyMark bool

	segs  []attrSeg // attrColumn's plan
	psegs []attrSeg // the patches' segments (compilePatches)
	idx   []int32   // attrColumn's entries: input entry, or -1-k for st.kvs[k]

	// build's plan, kept from batch to batch for its slices
	pp       parents
	ip       itemParents
	sel      []int32
	had, has []int32
	runs     [][2]int
	// wantSets: the output may hold the items' attributes as a table of
	// sets (Options.AttrSetTable, nothing marked); sets is its scratch.
	wantSets bool
	sets     setScratch
	// inSets: the input batch's attribute sets (schemas.Batch.ItemAttrSets)
	// when it has them; per set, setMemo is 1 + the memo entry of its
	// last row (with that row's resource and scope) and setCombo 1 + its
	// combo in attrSetTable.
	inSets   []uint32
	setMemo  []setMemo
	setCombo []int32
	setTable arrow.Array // made by itemsTable for build
	setIDs   []uint32
	scopeBy  map[[2]int32]int32
	metBy    map[metricKey]int32

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
	st.ev.BeginBatch(b.Tenant) // top_k keeps state per tenant, decides per batch
	st.arena = st.arena[:0]
	st.n = int(b.Items.NumRows())
	st.drop = resize(st.drop, st.n)
	clear(st.drop)
	st.patchOf = resize(st.patchOf, st.n)
	st.anyDrop = false
	st.anyMark = false
	if sig == otlpwire.Metrics {
		st.marks = resize(st.marks, st.n)
		clear(st.marks)
	}
	st.useInputSets(b)
	st.patches = st.patches[:0]
	st.kvs = st.kvs[:0]
	st.newRes = st.newRes[:0]
	clear(st.newResBy)
	st.errCount, st.firstErr = 0, nil
	if info.memo {
		st.memo.reset()
		st.memo.beginProbe(info.project && info.attrs)
	}
}

// end drops references to the batch so that the pooled state does not keep
// its memory alive.
func (st *state) end() {
	st.ev.EndBatch()
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
	st.pp.reset()
	clear(st.metBy) // its keys hold the rules' names
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

func mapColsOf(rec arrow.RecordBatch, i int, what string) (mapCols, error) {
	if rec == nil || i >= int(rec.NumCols()) {
		return mapCols{}, fmt.Errorf("%w: %s has no column %d", schemas.ErrSchema, what, i)
	}
	return newMapCols(rec.Column(i))
}

// attrColumnOf is the items column of the attributes of sig.
func attrColumnOf(sig otlpwire.Signal) int {
	switch sig {
	case otlpwire.Metrics:
		return schemas.PtAttributes
	case otlpwire.Logs:
		return schemas.LogAttributes
	}
	return schemas.SpanAttributes
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
