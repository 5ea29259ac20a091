// Package columnar applies a compiled rule set (package rules) to the Arrow
// batches of package schemas: the bridge between a worker's decoded batch
// and the batch it writes to the processed topic.
//
// For each item row of a signal that has rules, the Engine fills that
// signal's Env from the columns (reusing the Env and its maps from row to
// row), runs the rules.Evaluator with Keys{Resource: resource_id+1, Scope:
// scope_id+1} so that conditions on the resource or scope run once per
// resource or scope, and records what changed. Rows on which the rules
// must have the same outcome (equal in every part the rules read: see
// rowMemo and layout) replay the outcome of the first. When nothing
// changed the input batch itself is returned; otherwise a new batch is
// built:
//
//   - dropped rows are removed from every items column (slices of the kept
//     runs, concatenated);
//   - rewritten attributes rebuild the attributes column: untouched rows and
//     untouched entries are copied as they are (type, Raw encodings and all),
//     changed entries keep their position, new keys are appended in key order;
//   - changed fields rebuild their column (logs severity_number,
//     severity_text, body; spans name, status_message);
//   - metric name and unit live in the metrics table: a point whose name or
//     unit a rule changed moves to a new metrics row (a copy of its metric
//     with the new name and unit, one per distinct change) in the same scope;
//   - changed resource attributes move the item to a new resource row (one
//     per original resource and distinct new attribute set), with copies of
//     its scope (and metric) under it;
//   - resources, scopes and metrics that had items before and have none
//     after are removed, and row ids are renumbered. Parents that arrived
//     empty are kept.
package columnar

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// Options configure an Engine.
type Options struct {
	// Allocator allocates the Arrow memory of output batches; default
	// memory.DefaultAllocator.
	Allocator memory.Allocator
	// Logger receives, at debug level, the first rule evaluation error of
	// each batch and how many there were; default: discard.
	Logger *slog.Logger
	// AttrSetTable lets a batch whose items' attributes the rules change
	// come out with them as a table of distinct sets
	// (schemas.Batch.ItemAttrSetTable and ItemAttrSets) when at most half
	// of its items differ, rather than in a column with every item's: the
	// worker's case, which writes the batch (schemas.WriteBatch stores the
	// table as it is) and tracks its series per set, where the rules make
	// series alike (deleting an attribute unique per series). Not for a
	// caller that reads the attributes column or calls ToOTLP. With marked
	// points (ApplyMarked) too: schemas.Select keeps the table for the
	// points the worker sends to the aggregation topic.
	AttrSetTable bool
}

// Engine applies a rule set to batches. It implements the worker's
// Transform interface. It is safe for concurrent use: the per-call state
// (an Evaluator, the Envs and their maps, scratch buffers) comes from a
// sync.Pool, so a worker goroutine reuses the same state batch after batch.
type Engine struct {
	set   *rules.Set
	mem   memory.Allocator
	log   *slog.Logger
	sigs  [3]sigInfo
	pool  sync.Pool
	noLog bool
	// attrSets: Options.AttrSetTable.
	attrSets bool
}

type sigInfo struct {
	rules int
	// writesResource: some rule may edit resource attributes, so each item
	// gets its own copy of the resource map and conditions on the resource
	// are not memoised.
	writesResource bool
	// attrs, res: some rule reads or writes the item's attributes, the
	// resource attributes; else the Env gets nil maps.
	attrs, res bool
	// memo: no rule reads or writes anything of an item but its
	// attributes, resource and scope, so items with equal attributes
	// (and resource, scope when rules read them) have the same outcome:
	// the rules run once per distinct attribute row (see rowMemo).
	memo      bool
	memoScope bool
	// project: the memo keys rows by their attribute keys and the values
	// of attrVals only, the keys whose values some rule reads
	// (rules.Rule.AttributeValues), not by every value: an attribute
	// unique per series does not make every row distinct.
	project  bool
	attrVals []string
	// fields: the item fields some rule reads (rules.Rule.ReadsFields), all
	// of them low-cardinality fields the memo can key on (memoFields):
	// items that also agree on these have the same outcome.
	fields []string
}

// New returns an Engine applying set.
func New(set *rules.Set, opts Options) *Engine {
	e := &Engine{set: set, mem: opts.Allocator, log: opts.Logger, attrSets: opts.AttrSetTable}
	if e.mem == nil {
		e.mem = memory.DefaultAllocator
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
		e.noLog = true
	}
	for _, sig := range []otlpwire.Signal{otlpwire.Metrics, otlpwire.Logs, otlpwire.Traces} {
		info := &e.sigs[sig]
		info.memo = true
		attrAll := false
		for _, r := range set.Rules(sig) {
			keys, all := r.AttributeValues()
			attrAll = attrAll || all
			for _, k := range keys {
				if !slices.Contains(info.attrVals, k) {
					info.attrVals = append(info.attrVals, k)
				}
			}
			info.rules++
			rd, wr := r.Reads(), r.Writes()
			info.writesResource = info.writesResource || wr.Resource
			info.attrs = info.attrs || rd.Attributes || wr.Attributes
			info.res = info.res || rd.Resource || wr.Resource
			info.memoScope = info.memoScope || rd.Scope
			info.memo = info.memo && !wr.Item
			if rd.Item {
				fs, ok := r.ReadsFields()
				for _, f := range fs {
					if !slices.Contains(memoFields[sig], f) {
						ok = false
					}
					if !slices.Contains(info.fields, f) {
						info.fields = append(info.fields, f)
					}
				}
				info.memo = info.memo && ok
			}
		}
		if !info.memo {
			info.fields = nil
		}
		slices.Sort(info.fields)
		info.project = info.memo && info.attrs && !attrAll
		if !info.project {
			info.attrVals = nil
		}
		slices.Sort(info.attrVals)
	}
	e.pool.New = func() any { return newState(e) }
	return e
}

// Version is the rule set's version.
func (e *Engine) Version() string { return e.set.Version() }

// Apply runs the rules of b's signal on every item of b. It returns b itself
// when no item was dropped or changed, else a new batch; b is not modified
// and the caller keeps its reference to b either way. Rule evaluation errors
// are not errors of Apply (the rules' on_error decides, and rules.Set.Stats
// counts them); Apply fails only on a batch that does not have the schemas
// layout.
func (e *Engine) Apply(b *schemas.Batch) (*schemas.Batch, error) {
	out, _, err := e.apply(b, nil, false)
	return out, err
}

// Marked is a point of ApplyMarked's output that the rules marked (see
// rules.Mark): its series may have been collapsed with others.
type Marked struct {
	Row  int32 // row in the output batch
	Orig int32 // row in the input batch
	Mark rules.Mark
}

// ApplyMarked is Apply that also appends to dst the marked points of the
// output, in row order: the points whose series a rule changed or that an
// aggregate or limit action matched. Only metrics are marked.
func (e *Engine) ApplyMarked(b *schemas.Batch, dst []Marked) (*schemas.Batch, []Marked, error) {
	return e.apply(b, dst, true)
}

// apply is ApplyMarked; without marked, the marks are not appended.
func (e *Engine) apply(b *schemas.Batch, dst []Marked, marked bool) (*schemas.Batch, []Marked, error) {
	sig := b.Signal
	if !sig.Valid() {
		return nil, dst, fmt.Errorf("%w: signal %v", schemas.ErrSchema, b.Signal)
	}
	info := e.sigs[sig]
	if info.rules == 0 || b.Items == nil || b.Items.NumRows() == 0 {
		return b, dst, nil
	}
	st := e.pool.Get().(*state)
	defer e.pool.Put(st)
	defer st.ev.Flush()
	st.begin(b, sig, info)
	defer st.end()
	st.wantSets = false
	if err := st.evaluate(); err != nil {
		return nil, dst, err
	}
	if st.errCount > 0 && !e.noLog {
		e.log.Debug("rule evaluation errors", "errors", st.errCount, "first", st.firstErr, "version", e.set.Version())
	}
	if marked && st.anyMark {
		dst = st.appendMarked(dst)
	}
	if !st.anyDrop && len(st.patches) == 0 {
		return b, dst, nil
	}
	st.wantSets = e.attrSets
	out, err := st.build()
	return out, dst, err
}

// appendMarked appends the marked rows, numbered as in the output (the
// kept rows, in order).
func (st *state) appendMarked(dst []Marked) []Marked {
	var row int32
	for i := 0; i < st.n; i++ {
		if st.drop[i] {
			continue
		}
		if m := st.marks[i]; m != (rules.Mark{}) {
			dst = append(dst, Marked{Row: row, Orig: int32(i), Mark: m})
		}
		row++
	}
	return dst
}
