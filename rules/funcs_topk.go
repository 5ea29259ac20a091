package rules

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// top_k(value, k) keeps the k most frequent values of a call site and folds
// the others into "other". It is the one stateful function, built so that
// its result is the same in the reference engine (Evaluator.Apply, item by
// item) and in rules/columnar (which memoises a row's outcome and replays
// it for equal rows), and that tenants cannot see each other's values:
//
//   - State is per call site (sitePatcher gives each call its own) and per
//     tenant (Evaluator.BeginBatch). It lives with the Set: a reload starts
//     afresh. A site keeps maxTenants tenants; a new one makes it forget
//     the tenant whose last batch ended longest ago.
//   - Within a batch, decisions come from the state as the batches ended
//     before it left it (a topkView, frozen at the batch's first call):
//     a value among the view's k is kept. While the view and the values
//     admitted in the batch are fewer than k, a new value is admitted (and
//     kept for the rest of the batch): first come in row order. Anything
//     else is "other". A value's result is thus fixed by its first call in
//     the batch, so a replayed row gets what a run would give.
//   - Every call counts its value once; a row the columnar engine replays
//     counts through its Tally (topkObs), as if it had run. The counts of
//     the batch go into the site's state when it ends (EndBatch), a
//     Misra-Gries summary of max(4k, 64) counters per tenant, merged
//     (Agarwal et al., "Mergeable summaries"): counts add up, and when more
//     values than counters remain, the (m+1)-th largest count is taken off
//     every count and the values left at zero are forgotten. The view is
//     then the k largest counts (ties: the values kept so far first, then
//     by hash).
//
// Values are tracked by a 64-bit hash (xxhash; a collision of two values
// seen by one site is unlikely enough to ignore), so the state keeps no
// strings of the batches.
type topkSite struct {
	k, m       int
	maxTenants int

	mu      sync.Mutex
	clock   uint64 // batches merged, for forgetting the least recent tenant
	tenants map[string]*topkCounts
	// scratch of merge
	idx   map[uint64]int32
	cut   []uint64
	fresh []topkSlot
	order []int32
}

const (
	maxTopK = 1000
	// maxTopkCounters bounds the counters of a call site over all its
	// tenants; maxTopkTenants the tenants it keeps state for.
	maxTopkCounters = 1 << 18
	maxTopkTenants  = 1024
	// maxTopkBatchValues bounds the distinct values of a call site that a
	// batch counts; later values are decided by the view alone.
	maxTopkBatchValues = 1 << 16
)

func newTopkSite(k int) *topkSite {
	m := max(4*k, 64)
	return &topkSite{k: k, m: m, maxTenants: min(maxTopkTenants, maxTopkCounters/m),
		tenants: map[string]*topkCounts{}, idx: map[uint64]int32{}}
}

// topkCounts is the summary of one tenant at one site.
type topkCounts struct {
	ent  []topkEntry
	view *topkView
	last uint64 // clock of its last batch
}

type topkEntry struct {
	h, count uint64
	kept     bool // kept by the last batch (scratch of add and refresh)
}

// topkView is the set of kept values: hashes in ascending order.
// Immutable once published.
type topkView struct{ hs []uint64 }

func (v *topkView) has(h uint64) bool {
	if v == nil {
		return false
	}
	_, ok := slices.BinarySearch(v.hs, h)
	return ok
}

func (v *topkView) len() int {
	if v == nil {
		return 0
	}
	return len(v.hs)
}

// viewOf returns the kept values of tenant.
func (s *topkSite) viewOf(tenant string) *topkView {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenant]; t != nil {
		return t.view
	}
	return nil
}

// merge adds the counts of a batch of tenant.
func (s *topkSite) merge(tenant string, slots []topkSlot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock++
	t := s.tenants[tenant]
	if t == nil {
		if len(s.tenants) >= s.maxTenants {
			s.forgetOldest()
		}
		t = &topkCounts{}
		s.tenants[strings.Clone(tenant)] = t
	}
	t.last = s.clock
	s.add(t, slots)
	s.refresh(t)
}

func (s *topkSite) forgetOldest() {
	var (
		oldest string
		at     uint64 = math.MaxUint64
	)
	for name, t := range s.tenants {
		if t.last < at || (t.last == at && name < oldest) {
			oldest, at = name, t.last
		}
	}
	delete(s.tenants, oldest)
}

// add merges the batch's counts into t's summary (see topkSite).
func (s *topkSite) add(t *topkCounts, slots []topkSlot) {
	clear(s.idx)
	for i, e := range t.ent {
		s.idx[e.h] = int32(i)
	}
	for i := range t.ent {
		t.ent[i].kept = false
	}
	fresh := s.fresh[:0]
	for _, sl := range slots {
		if i, ok := s.idx[sl.h]; ok {
			t.ent[i].count += sl.n
			t.ent[i].kept = sl.kept
		} else {
			fresh = append(fresh, sl)
		}
	}
	s.fresh = fresh
	var cut uint64
	if len(t.ent)+len(fresh) > s.m {
		cs := s.cut[:0]
		for _, e := range t.ent {
			cs = append(cs, e.count)
		}
		for _, sl := range fresh {
			cs = append(cs, sl.n)
		}
		s.cut = cs
		cut = kthLargest(cs, s.m+1)
	}
	kept := t.ent[:0]
	for _, e := range t.ent {
		if e.count > cut {
			e.count -= cut
			kept = append(kept, e)
		}
	}
	for _, sl := range fresh {
		if sl.n > cut {
			kept = append(kept, topkEntry{h: sl.h, count: sl.n - cut, kept: sl.kept})
		}
	}
	t.ent = kept
}

// refresh sets t's view to its k largest counts, keeping the old view
// when they are the same values. Of equal counts, the values kept so far
// (in the view, or admitted by the last batch) go first, so that the kept
// values do not change while no count says they should.
func (s *topkSite) refresh(t *topkCounts) {
	order := s.order[:0]
	for i := range t.ent {
		t.ent[i].kept = t.ent[i].kept || t.view.has(t.ent[i].h)
		order = append(order, int32(i))
	}
	slices.SortFunc(order, func(a, b int32) int {
		ea, eb := &t.ent[a], &t.ent[b]
		switch {
		case ea.count != eb.count:
			if ea.count > eb.count {
				return -1
			}
			return 1
		case ea.kept != eb.kept:
			if ea.kept {
				return -1
			}
			return 1
		case ea.h < eb.h:
			return -1
		case ea.h > eb.h:
			return 1
		}
		return 0
	})
	s.order = order
	n := min(s.k, len(order))
	same := n == t.view.len()
	for _, i := range order[:n] {
		same = same && t.view.has(t.ent[i].h)
	}
	if same {
		return
	}
	hs := make([]uint64, n)
	for j, i := range order[:n] {
		hs[j] = t.ent[i].h
	}
	slices.Sort(hs)
	t.view = &topkView{hs: hs}
}

// kthLargest returns the k-th largest (from 1) of a, reordering a.
func kthLargest(a []uint64, k int) uint64 {
	lo, hi, target := 0, len(a)-1, k-1
	for lo < hi {
		p := a[lo+(hi-lo)/2]
		// Three-way partition, descending: > p, == p, < p.
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch {
			case a[i] > p:
				a[lt], a[i] = a[i], a[lt]
				lt++
				i++
			case a[i] < p:
				a[gt], a[i] = a[i], a[gt]
				gt--
			default:
				i++
			}
		}
		switch {
		case target < lt:
			hi = lt - 1
		case target > gt:
			lo = gt + 1
		default:
			return p
		}
	}
	return a[target]
}

// topkBatch is an Evaluator's side of top_k: the batch it is in and, per
// call site the batch used, the frozen view, the values seen and their
// counts.
type topkBatch struct {
	open   bool
	tenant string
	sites  []topkLocal // by call site
	used   []int32     // call sites used in the batch
	tally  *Tally      // of ApplyTally, to record the calls in
}

type topkLocal struct {
	site     *topkSite // nil: not used in the batch
	view     *topkView
	idx      map[uint64]int32 // hash -> slots
	slots    []topkSlot       // distinct values in order of first call
	admitted int
}

type topkSlot struct {
	h, n uint64
	kept bool
}

// topkObs is one top_k call recorded in a Tally: a count for slot of
// call site site.
type topkObs struct{ site, slot int32 }

func (b *topkBatch) begin(tenant string) {
	b.open, b.tenant = true, tenant
}

// end merges the batch's counts into the call sites' state.
func (b *topkBatch) end() {
	for _, id := range b.used {
		l := &b.sites[id]
		l.site.merge(b.tenant, l.slots)
		l.site, l.view, l.admitted = nil, nil, 0
		clear(l.idx)
		l.slots = l.slots[:0]
	}
	b.used = b.used[:0]
	b.open, b.tenant = false, ""
}

// keep decides whether the value of hash h is kept at call site id (s),
// and counts it.
func (b *topkBatch) keep(s *topkSite, id int, h uint64) bool {
	if !b.open {
		b.begin("")
	}
	if id >= len(b.sites) {
		b.sites = append(b.sites, make([]topkLocal, id+1-len(b.sites))...)
	}
	l := &b.sites[id]
	if l.site == nil {
		l.site, l.view = s, s.viewOf(b.tenant)
		if l.idx == nil {
			l.idx = map[uint64]int32{}
		}
		b.used = append(b.used, int32(id))
	}
	if i, ok := l.idx[h]; ok {
		l.slots[i].n++
		b.record(id, i)
		return l.slots[i].kept
	}
	kept := l.view.has(h)
	if len(l.slots) >= maxTopkBatchValues {
		// Not counted. Admission ended long before: k is far below the
		// cap, and every value before was admitted or in the view.
		return kept
	}
	if !kept && l.view.len()+l.admitted < s.k {
		kept = true
		l.admitted++
	}
	i := int32(len(l.slots))
	l.idx[h] = i
	l.slots = append(l.slots, topkSlot{h: h, n: 1, kept: kept})
	b.record(id, i)
	return kept
}

func (b *topkBatch) record(id int, slot int32) {
	if b.tally != nil {
		b.tally.topk = append(b.tally.topk, topkObs{site: int32(id), slot: slot})
	}
}

// replay counts the calls recorded in a Tally n times more.
func (b *topkBatch) replay(obs []topkObs, n uint64) {
	for _, o := range obs {
		if int(o.site) >= len(b.sites) {
			continue
		}
		l := &b.sites[o.site]
		if l.site != nil && int(o.slot) < len(l.slots) {
			l.slots[o.slot].n += n
		}
	}
}

func (f *functions) topkFunc() expr.Option {
	return expr.Function("top_k", f.topK, new(func(...any) any)) // arguments checked by checkTopK
}

// topK is called as top_k(value, k, site, $env).
func (f *functions) topK(args ...any) (any, error) {
	site, _ := args[2].(int)
	if site < 0 || site >= len(f.topks) || f.topks[site] == nil {
		// Not reached: every call site is checked at load.
		return nil, fmt.Errorf("top_k: call site %d was not prepared at load", site)
	}
	h, err := topkHash(args[0])
	if err != nil {
		return nil, err
	}
	env, _ := args[3].(Env)
	if env == nil || env.common().ev == nil {
		return nil, fmt.Errorf("top_k: not run by an Evaluator")
	}
	if env.common().ev.topk.keep(f.topks[site], site, h) {
		return args[0], nil
	}
	return "other", nil
}

// Salts of the hashes of values other than strings, so that a value does
// not share the hash of the string of its bytes.
const (
	saltInt   = 0x9e3779b97f4a7c15
	saltFloat = 0xc2b2ae3d27d4eb4f
	saltBool  = 0x165667b19e3779f9
	saltBytes = 0x27d4eb2f165667c5
)

// topkHash identifies a value of top_k: strings, integers, floats, bools
// and bytes, each type apart (1 and "1" differ).
func topkHash(v any) (uint64, error) {
	var b [8]byte
	switch x := v.(type) {
	case string:
		return xxhash.Sum64String(x), nil
	case int:
		binary.LittleEndian.PutUint64(b[:], uint64(x))
		return xxhash.Sum64(b[:]) ^ saltInt, nil
	case int64:
		binary.LittleEndian.PutUint64(b[:], uint64(x))
		return xxhash.Sum64(b[:]) ^ saltInt, nil
	case float64:
		switch {
		case x == 0:
			x = 0 // -0 is 0
		case math.IsNaN(x):
			x = math.NaN()
		}
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
		return xxhash.Sum64(b[:]) ^ saltFloat, nil
	case bool:
		if x {
			b[0] = 1
		}
		return xxhash.Sum64(b[:1]) ^ saltBool, nil
	case []byte:
		return xxhash.Sum64(x) ^ saltBytes, nil
	case nil:
		return 0, fmt.Errorf("top_k: want a value, got nil (missing attribute?)")
	}
	return 0, fmt.Errorf("top_k: want a string, number, bool or bytes, got %T", v)
}

// checkTopK checks k of a top_k call when the rules load and prepares its
// call site.
func (w *walker) checkTopK(n *ast.CallNode) {
	site, ok := siteOf(n, 4, len(w.c.funcs.topks))
	if !ok {
		w.errorAt(n, "top_k takes two arguments, a value and k: top_k(x, 20)")
		return
	}
	k, ok := n.Arguments[1].(*ast.IntegerNode)
	if !ok {
		w.errorAt(n.Arguments[1], fmt.Sprintf("top_k: k must be an integer literal from 1 to %d, so its state is sized when the rules load", maxTopK))
		return
	}
	if k.Value < 1 || k.Value > maxTopK {
		w.errorAt(n.Arguments[1], fmt.Sprintf("top_k: k must be from 1 to %d, not %d", maxTopK, k.Value))
		return
	}
	w.c.funcs.topks[site] = newTopkSite(k.Value)
	w.stateful = true
}
