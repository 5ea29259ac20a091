package rules

import (
	"time"

	"github.com/expr-lang/expr/vm"
)

// Result is what the rules did to an item.
type Result struct {
	Drop      bool  // the item is to be dropped
	DroppedBy *Rule // the rule that dropped it
	Changed   bool  // some rule changed the item
	Errors    int   // rules whose expressions failed on the item
	// Mark: for a metric point that a rule with an aggregate or limit
	// action matched, or whose identity a rule changed, how the worker
	// merges it with the other points of its series (see Mark).
	Mark Mark
}

// Keys identify the parts of an item a condition can depend on, so that an
// Evaluator evaluates a condition once per distinct resource, scope or
// attribute set instead of once per item (see Rule.DependsOn). The worker
// picks them: for example the index of the resource and scope in the Arrow
// batch, or a hash of the attribute set. Equal non-zero keys must mean
// equal contents until the Evaluator is Reset; zero means unknown, and a
// condition that depends on an unknown part is evaluated for the item.
type Keys struct {
	Resource, Scope, Attributes uint64
}

// Evaluator applies a Set to items, one at a time. It holds the state that
// makes this cheap (an expression VM, scratch space, memoised conditions,
// counters) and is not safe for concurrent use: make one per goroutine.
type Evaluator struct {
	set    *Set
	vm     vm.VM
	call   call // the rule being applied; a field so it does not escape per call
	memo   map[memoKey]memoResult
	vals   []any  // values of a set action
	buf    []byte // scratch for hashing
	counts []counts
	topk   topkBatch // top_k's batch
}

type counts struct {
	matched, dropped, changed, errors uint64
	// Time is sampled: runs counts the rule's runs, and the first of every
	// timeSample runs is timed, adding to timed and sampledNanos. Flush
	// extrapolates to all runs.
	runs, timed, sampledNanos uint64
}

// timeSample: one rule run in timeSample is timed (time.Now costs about as
// much as a simple condition).
const timeSample = 64

// maxMemo bounds the memoised conditions of an Evaluator.
const maxMemo = 1 << 16

type memoKey struct {
	rule int
	keys Keys
}

type memoResult struct {
	match bool
	err   error
}

// NewEvaluator returns an Evaluator for s.
func (s *Set) NewEvaluator() *Evaluator {
	return &Evaluator{set: s, memo: map[memoKey]memoResult{}, counts: make([]counts, len(s.all))}
}

// Apply runs the rules of env's signal on env, in order, and stops at the
// first that drops it. It does not memoise conditions and adds to the
// set's counters at once; a worker should use an Evaluator. For top_k the
// item is a batch of its own, of tenant "".
func (s *Set) Apply(env Env) (Result, error) {
	ev := s.pool.Get().(*Evaluator)
	ev.BeginBatch("")
	res, err := ev.apply(env, Keys{}, false, nil)
	ev.EndBatch()
	ev.Flush()
	s.pool.Put(ev)
	return res, err
}

// BeginBatch starts a batch of items of tenant, ending the batch before if
// one is open. A batch matters to top_k only: within a batch it decides
// from its state as the batches ended before left it, and it keeps state
// per tenant (see the rules README). Items applied outside a batch belong
// to one of tenant "" that the first top_k call opens and EndBatch or
// BeginBatch ends.
func (e *Evaluator) BeginBatch(tenant string) {
	e.topk.end()
	e.topk.begin(tenant)
}

// EndBatch ends the batch: what its items counted goes into top_k's
// state, for the batches after it. The rules' outcome on an item depends
// on nothing else of the items applied before.
func (e *Evaluator) EndBatch() { e.topk.end() }

// Apply runs the rules of env's signal on env, in order, mutating env, and
// stops at the first rule that drops it. Conditions that depend only on
// parts of the item identified by keys are memoised.
//
// A rule whose expression fails is skipped, or drops the item with
// on_error: drop; either way Result says what happened and the error of
// the first failing rule is returned, an *EvalError for logging.
func (e *Evaluator) Apply(env Env, keys Keys) (Result, error) {
	return e.apply(env, keys, true, nil)
}

// Tally is what applying the rules to one item added to an Evaluator's
// counters (matched, dropped, changed and errors per rule; not time) and
// the values its top_k calls counted in the batch.
type Tally struct {
	entries []tallyEntry
	topk    []topkObs
}

type tallyEntry struct {
	rule int
	c    counts
}

// ApplyTally is Apply that also records in t (reset first) what it added
// to the counters. A worker that knows another item will have exactly the
// same outcome (its rules read nothing that differs, see Rule.Reads and
// Rule.Writes) can then count that item with AddTally instead of applying
// the rules to it again, in the same batch (see BeginBatch).
func (e *Evaluator) ApplyTally(env Env, keys Keys, t *Tally) (Result, error) {
	t.entries = t.entries[:0]
	t.topk = t.topk[:0]
	e.topk.tally = t
	res, err := e.apply(env, keys, true, t)
	e.topk.tally = nil
	return res, err
}

// AddTally adds to the counters what t recorded, as if the item of t had
// been applied once more; t must be of the current batch.
func (e *Evaluator) AddTally(t *Tally) { e.AddTallyN(t, 1) }

// AddTallyN is n calls of AddTally in one: n more items with the outcome
// of t's (n <= 0 adds nothing). A worker can count the items that replay
// an outcome and add them once at the end of the batch.
func (e *Evaluator) AddTallyN(t *Tally, n int) {
	if n <= 0 {
		return
	}
	e.topk.replay(t.topk, uint64(n))
	for _, te := range t.entries {
		c := &e.counts[te.rule]
		c.matched += te.c.matched * uint64(n)
		c.dropped += te.c.dropped * uint64(n)
		c.changed += te.c.changed * uint64(n)
		c.errors += te.c.errors * uint64(n)
	}
}

// Reset forgets memoised conditions: call it when the meaning of Keys
// changes, e.g. for each batch.
func (e *Evaluator) Reset() { clear(e.memo) }

// Flush adds the evaluator's counters to the set's Stats and zeroes them.
func (e *Evaluator) Flush() {
	for i := range e.counts {
		c := &e.counts[i]
		if *c == (counts{}) {
			continue
		}
		st := &e.set.all[i].stats
		st.matched.Add(c.matched)
		st.dropped.Add(c.dropped)
		st.changed.Add(c.changed)
		st.errors.Add(c.errors)
		if c.timed > 0 {
			st.evalNanos.Add(uint64(float64(c.sampledNanos) * float64(c.runs) / float64(c.timed)))
		}
		*c = counts{}
	}
}

// call is one rule applied to one item, as its actions see it.
type call struct {
	ev   *Evaluator
	env  Env
	rule *Rule
}

func (c *call) run(p *vm.Program) (any, error) { return c.ev.vm.Run(p, c.env) }

func (e *Evaluator) apply(env Env, keys Keys, memo bool, t *Tally) (Result, error) {
	var (
		res      Result
		firstErr error
	)
	c := env.common()
	c.ev = e
	for _, r := range e.set.bySignal[env.signal()] {
		cnt := &e.counts[r.index]
		var start time.Time
		timed := cnt.runs%timeSample == 0
		if timed {
			start = time.Now()
		}
		cnt.runs++
		before := *cnt
		out, err := e.applyRule(r, env, keys, memo)
		if err != nil {
			cnt.errors++
			res.Errors++
			if firstErr == nil {
				firstErr = err
			}
			if r.OnError == OnErrorDrop {
				out = dropped
			}
		}
		if r.mergeIdx != 0 && out != dropped {
			matched := cnt.matched > before.matched
			// An aggregate block's spec wins over the default of a
			// rule without one, whatever their order.
			if (out == changed && (r.merge != nil || res.Mark.Merge == 0)) || (matched && r.merge != nil) {
				res.Mark.Merge = r.mergeIdx
			}
			if matched && r.limitIdx != 0 {
				res.Mark.Limit = r.limitIdx
			}
		}
		switch out {
		case changed:
			cnt.changed++
			res.Changed = true
		case dropped:
			cnt.dropped++
			res.Drop, res.DroppedBy = true, r
		}
		if timed {
			cnt.timed++
			cnt.sampledNanos += uint64(time.Since(start))
		}
		if t != nil {
			d := counts{matched: cnt.matched - before.matched, dropped: cnt.dropped - before.dropped,
				changed: cnt.changed - before.changed, errors: cnt.errors - before.errors}
			if d != (counts{}) {
				t.entries = append(t.entries, tallyEntry{rule: r.index, c: d})
			}
		}
		if res.Drop {
			break
		}
	}
	e.call = call{} // do not hold on to the caller's env
	c.ev = nil
	return res, firstErr
}

// applyRule runs one rule. With an error, the outcome is what the rule did
// before failing (nothing: set evaluates all its values before assigning
// any, and the actions before it do not edit the item).
func (e *Evaluator) applyRule(r *Rule, env Env, keys Keys, memo bool) (outcome, error) {
	e.call = call{ev: e, env: env, rule: r}
	c := &e.call
	if r.when != nil {
		match, err := e.match(c, keys, memo)
		if err != nil {
			return unchanged, err
		}
		if !match {
			if r.dropUnmatched {
				return dropped, nil
			}
			return unchanged, nil
		}
	}
	e.counts[r.index].matched++
	result := unchanged
	for _, a := range r.actions {
		out, err := a.apply(c)
		if err != nil {
			return result, err
		}
		if out > result {
			result = out
		}
		if out == dropped {
			break
		}
	}
	return result, nil
}

func (e *Evaluator) match(c *call, keys Keys, memo bool) (bool, error) {
	r := c.rule
	k, ok := memoKeyFor(r, keys)
	if memo && ok {
		if m, hit := e.memo[k]; hit {
			return m.match, m.err
		}
	}
	v, err := c.run(r.when)
	var match bool
	if err != nil {
		err = &EvalError{Rule: r, Key: "when", Err: err}
	} else {
		match, _ = v.(bool) // AsBool: a bool or an error
	}
	if memo && ok {
		if len(e.memo) >= maxMemo {
			clear(e.memo) // the worker never calls Reset; stay bounded
		}
		e.memo[k] = memoResult{match, err}
	}
	return match, err
}

// memoKeyFor returns the key r's condition can be memoised under, and
// false if it depends on the item itself or on a part keys do not name.
func memoKeyFor(r *Rule, keys Keys) (memoKey, bool) {
	d := r.deps
	k := memoKey{rule: r.index}
	if d.Item {
		return k, false
	}
	if d.Attributes {
		if keys.Attributes == 0 {
			return k, false
		}
		k.keys.Attributes = keys.Attributes
	}
	if d.Resource {
		if keys.Resource == 0 {
			return k, false
		}
		k.keys.Resource = keys.Resource
	}
	if d.Scope {
		if keys.Scope == 0 {
			return k, false
		}
		k.keys.Scope = keys.Scope
	}
	return k, true
}
