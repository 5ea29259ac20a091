package rules

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// topkSet is a set whose metrics rule sets attributes["c"] to
// top_k(attributes["c"], k).
func topkSet(t testing.TB, k int) *Set {
	t.Helper()
	return mustParse(t, fmt.Sprintf("rules:\n  - name: top\n    signal: metrics\n    set:\n      attributes[\"c\"]: top_k(attributes[\"c\"], %d)\n", k))
}

// batch applies the rules to one item per value, as a batch of tenant, and
// returns what the items' "c" became.
func batch(t testing.TB, ev *Evaluator, tenant string, values ...any) []any {
	t.Helper()
	ev.BeginBatch(tenant)
	defer ev.EndBatch()
	out := make([]any, len(values))
	for i, v := range values {
		env := &MetricEnv{Common: Common{Attributes: map[string]any{"c": v}}}
		if _, err := ev.Apply(env, Keys{}); err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		out[i] = env.Attributes["c"]
	}
	return out
}

func strs(vs ...string) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

func wantBatch(t *testing.T, ev *Evaluator, tenant string, in, want []any) {
	t.Helper()
	if got := batch(t, ev, tenant, in...); !slices.Equal(got, want) {
		t.Fatalf("tenant %q: %v -> %v, want %v", tenant, in, got, want)
	}
}

// TestTopKAdmission: with no state, the first k distinct values of the
// batch are kept, for the whole batch; the others are "other".
func TestTopKAdmission(t *testing.T) {
	ev := topkSet(t, 2).NewEvaluator()
	wantBatch(t, ev, "", strs("a", "b", "c", "a", "c", "b", "d"), strs("a", "b", "other", "a", "other", "b", "other"))
	// Counts a 2, b 2, c 2, d 1: the view is a and b (of equal counts,
	// the values kept so far go first).
	wantBatch(t, ev, "", strs("d", "c", "b", "a"), strs("other", "other", "b", "a"))
}

// TestTopKFrozen: a batch decides from the state as the batches before
// left it; what it counts shows from the next batch on.
func TestTopKFrozen(t *testing.T) {
	ev := topkSet(t, 1).NewEvaluator()
	wantBatch(t, ev, "", strs("a"), strs("a"))
	many := slices.Repeat(strs("b"), 10)
	wantBatch(t, ev, "", append(many, "a"), append(slices.Repeat(strs("other"), 10), "a"))
	wantBatch(t, ev, "", strs("a", "b"), strs("other", "b")) // b 10, a 2
}

// TestTopKExactlyK: k distinct values are always kept; one more, the
// least frequent, is folded once the state knows it.
func TestTopKExactlyK(t *testing.T) {
	ev := topkSet(t, 3).NewEvaluator()
	r := rand.New(rand.NewPCG(1, 2))
	vals := strs("x", "y", "z")
	for range 20 {
		in := make([]any, 1+r.IntN(10))
		for i := range in {
			in[i] = vals[r.IntN(3)]
		}
		wantBatch(t, ev, "", in, in)
	}
	ev = topkSet(t, 3).NewEvaluator()
	wantBatch(t, ev, "", strs("w", "x", "x", "y", "y", "z", "z"), strs("w", "x", "x", "y", "y", "other", "other"))
	// Counts w 1, x 2, y 2, z 2.
	wantBatch(t, ev, "", strs("w", "x", "y", "z"), strs("other", "x", "y", "z"))
}

// TestTopKTenants: one tenant's batches change nothing for another, and
// a value frequent for one is not kept for the other.
func TestTopKTenants(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var bBatches [][]any
	for range 30 {
		in := make([]any, 1+r.IntN(8))
		for i := range in {
			in[i] = fmt.Sprint("b", min(int(r.ExpFloat64()*3), 9))
		}
		bBatches = append(bBatches, in)
	}
	alone := topkSet(t, 2).NewEvaluator()
	var want [][]any
	for _, in := range bBatches {
		want = append(want, batch(t, alone, "B", in...))
	}
	mixed := topkSet(t, 2).NewEvaluator()
	for i, in := range bBatches {
		// Tenant A floods the same call site with its own values, and
		// with B's most frequent value.
		batch(t, mixed, "A", strs("a1", "a1", "a2", "b0", "b0", "b0", "b1")...)
		if got := batch(t, mixed, "B", in...); !slices.Equal(got, want[i]) {
			t.Fatalf("batch %d of B: %v with A's batches between, %v without", i, got, want[i])
		}
	}
	// Tenant "" is a tenant like the others.
	wantBatch(t, mixed, "", strs("z", "y", "x"), strs("z", "y", "other"))
}

// TestTopKValues: values of any attribute type but arrays and maps, each
// type apart; the kept value is returned as it is.
func TestTopKValues(t *testing.T) {
	ev := topkSet(t, 6).NewEvaluator()
	// Six values fill the places: 0, after -0, is kept as the same value.
	in := []any{int64(1), "1", true, 2.5, []byte("1"), math.Copysign(0, -1), 0.0, int64(2)}
	got := batch(t, ev, "", in...)
	want := []any{int64(1), "1", true, 2.5, []byte("1"), 0.0, 0.0, "other"}
	for i := range in {
		if !SameValue(got[i], want[i]) {
			t.Errorf("%v (%T) -> %v (%T), want %v", in[i], in[i], got[i], got[i], want[i])
		}
	}
	s := topkSet(t, 4)
	for _, tt := range []struct {
		v    any
		want string
	}{
		{nil, "top_k: want a value, got nil (missing attribute?)"},
		{[]any{"a"}, "top_k: want a string, number, bool or bytes, got []interface {}"},
		{map[string]any{}, "top_k: want a string, number, bool or bytes, got map[string]interface {}"},
	} {
		env := &MetricEnv{Common: Common{Attributes: map[string]any{"c": tt.v}}}
		if tt.v == nil {
			env.Attributes = nil
		}
		res, err := s.Apply(env)
		if err == nil || !strings.HasSuffix(err.Error(), tt.want) || res.Errors != 1 {
			t.Errorf("top_k(%v): %+v, %v; want the error %q", tt.v, res, err, tt.want)
		}
	}
}

// TestTopKSetApply: Set.Apply makes each item a batch of its own.
func TestTopKSetApply(t *testing.T) {
	s := topkSet(t, 1)
	var got []any
	for _, c := range strs("a", "b", "b", "b", "a") {
		env := &MetricEnv{Common: Common{Attributes: map[string]any{"c": c}}}
		if _, err := s.Apply(env); err != nil {
			t.Fatal(err)
		}
		got = append(got, env.Attributes["c"])
	}
	// b ties with a after its first item (a stays), overtakes it after
	// its second.
	if want := strs("a", "other", "other", "b", "other"); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	env := &MetricEnv{Common: Common{Attributes: map[string]any{"c": "b"}}}
	if s.Apply(env); env.Attributes["c"] != "b" {
		t.Errorf("after b 3, a 2: b -> %v", env.Attributes["c"])
	}
	env = &MetricEnv{Common: Common{Attributes: map[string]any{"c": "a"}}}
	if s.Apply(env); env.Attributes["c"] != "other" {
		t.Errorf("after b 4, a 2: a -> %v", env.Attributes["c"])
	}
}

// TestTopKSites: each call has its own state, and a reload (a new set)
// starts afresh.
func TestTopKSites(t *testing.T) {
	src := `rules:
  - name: two
    signal: metrics
    set:
      attributes["x"]: top_k(attributes["c"], 1)
      attributes["y"]: top_k(attributes["d"], 1)
`
	s := mustParse(t, src)
	env := &MetricEnv{Common: Common{Attributes: map[string]any{"c": "a", "d": "b"}}}
	if s.Apply(env); env.Attributes["x"] != "a" || env.Attributes["y"] != "b" {
		t.Errorf("got %v", env.Attributes)
	}
	ev := s.NewEvaluator()
	ev.BeginBatch("")
	for range 3 {
		ev.Apply(&MetricEnv{Common: Common{Attributes: map[string]any{"c": "z", "d": "b"}}}, Keys{})
	}
	ev.EndBatch()
	env = &MetricEnv{Common: Common{Attributes: map[string]any{"c": "z", "d": "b"}}}
	if s.Apply(env); env.Attributes["x"] != "z" || env.Attributes["y"] != "b" {
		t.Errorf("got %v", env.Attributes)
	}
	s2 := mustParse(t, src)
	env = &MetricEnv{Common: Common{Attributes: map[string]any{"c": "q", "d": "q"}}}
	if s2.Apply(env); env.Attributes["x"] != "q" || env.Attributes["y"] != "q" {
		t.Errorf("reloaded: got %v", env.Attributes)
	}
}

// TestTopKCondition: a condition calling top_k is not memoised by Keys:
// every item counts.
func TestTopKCondition(t *testing.T) {
	s := mustParse(t, `rules:
  - name: main-service
    signal: metrics
    when: top_k(resource["service.name"], 1) == "other"
    drop: true
`)
	if d := s.All()[0].DependsOn(); !d.Item || !d.Resource {
		t.Errorf("DependsOn = %+v", d)
	}
	ev := s.NewEvaluator()
	ev.BeginBatch("")
	for _, svc := range []string{"a", "b", "b", "b"} {
		env := &MetricEnv{Common: Common{Resource: map[string]any{"service.name": svc}}}
		ev.Apply(env, Keys{Resource: 1}) // one key: a memo would count b once
	}
	ev.EndBatch()
	env := &MetricEnv{Common: Common{Resource: map[string]any{"service.name": "b"}}}
	if res, _ := ev.Apply(env, Keys{Resource: 1}); res.Drop {
		t.Error("b was counted once")
	}
}

// TestTopKHidden: what top_k is handed is not a name of the language.
func TestTopKHidden(t *testing.T) {
	_, err := Parse(map[string][]byte{"f.yaml": []byte("rules:\n  - {name: a, signal: metrics, when: ev == nil, drop: true}\n")})
	if err == nil || !strings.Contains(err.Error(), "unknown name ev") {
		t.Errorf("ev: %v", err)
	}
}

// TestTopKConcurrent: evaluators of several goroutines share a call
// site's state (run with -race).
func TestTopKConcurrent(t *testing.T) {
	s := topkSet(t, 3)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := s.NewEvaluator()
			for i := range 200 {
				batch(t, ev, fmt.Sprint("t", g%3), fmt.Sprint("v", i%7), fmt.Sprint("v", i%5), "v0")
				env := &MetricEnv{Common: Common{Attributes: map[string]any{"c": "v0"}}}
				s.Apply(env)
			}
		}()
	}
	wg.Wait()
	// v0 is the most frequent of every tenant.
	ev := s.NewEvaluator()
	for _, tenant := range []string{"t0", "t1", "t2"} {
		wantBatch(t, ev, tenant, strs("v0"), strs("v0"))
	}
}

// TestTopKForgetsOldestTenant: beyond its tenants, a site forgets the
// tenant whose last batch ended longest ago.
func TestTopKForgetsOldestTenant(t *testing.T) {
	if got := newTopkSite(20).maxTenants; got != maxTopkTenants {
		t.Errorf("k 20: %d tenants", got)
	}
	if got := newTopkSite(1000).maxTenants; got != 65 {
		t.Errorf("k 1000: %d tenants", got)
	}
	s := newTopkSite(1)
	s.maxTenants = 3
	for _, tenant := range []string{"a", "b", "c", "a", "d"} {
		s.merge(tenant, []topkSlot{{h: 1, n: 1}})
	}
	if s.viewOf("b") != nil || s.viewOf("a") == nil || s.viewOf("c") == nil || s.viewOf("d") == nil {
		t.Errorf("tenants left: %v", slices.Sorted(func(yield func(string) bool) {
			for k := range s.tenants {
				yield(k)
			}
		}))
	}
	// Through the function: 1024 other tenants push the first out.
	ev := topkSet(t, 1).NewEvaluator()
	batch(t, ev, "first", "x")
	wantBatch(t, ev, "first", strs("y", "x"), strs("other", "x"))
	for i := range maxTopkTenants {
		batch(t, ev, fmt.Sprint(i), "z")
	}
	wantBatch(t, ev, "first", strs("y", "x"), strs("y", "other")) // afresh: first come
}

// TestTopKMerge: the summary keeps at most m counters; when more values
// come, the (m+1)-th largest count is taken off every count, and the
// values left at zero are forgotten.
func TestTopKMerge(t *testing.T) {
	s := newTopkSite(1) // m = 64
	var slots []topkSlot
	for h := range uint64(64) {
		slots = append(slots, topkSlot{h: h, n: h + 2}) // counts 2 to 65
	}
	s.merge("", slots)
	if n := len(s.tenants[""].ent); n != 64 {
		t.Fatalf("%d counters", n)
	}
	s.merge("", []topkSlot{{h: 1000, n: 100}, {h: 63, n: 1}, {h: 1001, n: 1}})
	// 66 values: 1000 at 100, 63 at 66, 62 to 0 at 64 to 2, 1001 at 1:
	// the 65th largest is 2.
	got := map[uint64]uint64{}
	for _, e := range s.tenants[""].ent {
		got[e.h] = e.count
	}
	_, has0 := got[0]
	_, has1001 := got[1001]
	if len(got) != 64 || got[1000] != 98 || got[63] != 64 || got[1] != 1 || has0 || has1001 {
		t.Errorf("counters %v; want 64 of them, 1000: 98, 63: 64, 1: 1, not 0 nor 1001", got)
	}
	if v := s.viewOf(""); !v.has(1000) || v.len() != 1 {
		t.Errorf("view %v", v.hs)
	}
}

// TestTopKHeavyHitter: one value in every batch stays on top under a
// tail of new values far beyond the counters.
func TestTopKHeavyHitter(t *testing.T) {
	ev := topkSet(t, 2).NewEvaluator()
	r := rand.New(rand.NewPCG(5, 6))
	for b := range 50 {
		var in []any
		for i := range 300 {
			switch {
			case r.IntN(10) == 0:
				in = append(in, "heavy")
			case r.IntN(20) == 0:
				in = append(in, "second")
			default:
				in = append(in, fmt.Sprint("tail-", b, "-", i))
			}
		}
		batch(t, ev, "", in...)
	}
	wantBatch(t, ev, "", strs("tail-x", "heavy", "second", "tail-0-1"), strs("other", "heavy", "second", "other"))
}

// TestTopKBatchCap: in a batch, a site counts its first
// maxTopkBatchValues distinct values only; later ones are decided by the
// view alone.
func TestTopKBatchCap(t *testing.T) {
	if testing.Short() {
		t.Skip("many values")
	}
	ev := topkSet(t, 1).NewEvaluator()
	batch(t, ev, "", "keep")
	in := []any{"keep"}
	for i := range maxTopkBatchValues + 10 {
		in = append(in, fmt.Sprint(i))
	}
	in = append(in, "keep")
	got := batch(t, ev, "", in...)
	if got[0] != "keep" || got[len(got)-1] != "keep" || got[len(got)-2] != "other" {
		t.Errorf("got %v ... %v", got[:2], got[len(got)-3:])
	}
	st := &topkBatch{}
	s := newTopkSite(1)
	for i := range maxTopkBatchValues + 10 {
		st.keep(s, 0, uint64(i))
	}
	if n := len(st.sites[0].slots); n != maxTopkBatchValues {
		t.Errorf("%d values counted", n)
	}
}

func TestKthLargest(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 500 {
		a := make([]uint64, 1+r.IntN(40))
		for i := range a {
			a[i] = uint64(r.IntN(8))
		}
		k := 1 + r.IntN(len(a))
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		slices.Reverse(sorted)
		if got := kthLargest(a, k); got != sorted[k-1] {
			t.Fatalf("%d-th largest of %v = %d, want %d", k, sorted, got, sorted[k-1])
		}
	}
}

// BenchmarkTopK: call is the function as expr calls it, on a value the
// batch has seen (kept, and not); new counts a value new to the batch
// (the batch ends every 1000 values); rule applies a rule calling it;
// batch is a batch of 1000 distinct values, its end included, k 20.
func BenchmarkTopK(b *testing.B) {
	s := topkSet(b, 20)
	fs := compiledFuncs(b, `top_k(attributes["c"], 20)`)
	ev := &Evaluator{} // its topkBatch only
	env := &MetricEnv{}
	env.ev = ev
	vals := make([]any, 1000)
	for i := range vals {
		vals[i] = fmt.Sprint("customer-", i)
	}
	for range 3 { // a state with a view: customer-0 .. 19 most frequent
		ev.BeginBatch("")
		for i, v := range vals {
			for range 1 + 1000/(i+1) {
				fs.topK(v, 20, 0, env)
			}
		}
		ev.EndBatch()
	}
	for _, bc := range []struct {
		name string
		v    any
	}{{"call/kept", vals[3]}, {"call/other", vals[500]}} {
		b.Run(bc.name, func(b *testing.B) {
			ev.BeginBatch("")
			args := []any{bc.v, 20, 0, env}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fs.topK(args...); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			ev.EndBatch()
		})
	}
	b.Run("call/new", func(b *testing.B) {
		ev.BeginBatch("")
		args := []any{nil, 20, 0, env}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%len(vals) == 0 {
				ev.BeginBatch("")
			}
			args[0] = vals[i%len(vals)]
			if _, err := fs.topK(args...); err != nil {
				b.Fatal(err)
			}
		}
		ev.EndBatch()
	})
	b.Run("rule", func(b *testing.B) {
		rev := s.NewEvaluator()
		rev.BeginBatch("")
		attrs := map[string]any{}
		renv := &MetricEnv{Common: Common{Attributes: attrs}}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			attrs["c"] = vals[i%50]
			if _, err := rev.Apply(renv, Keys{}); err != nil {
				b.Fatal(err)
			}
		}
		rev.EndBatch()
	})
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev.BeginBatch("")
			for _, v := range vals {
				fs.topK(v, 20, 0, env)
			}
			ev.EndBatch()
		}
	})
}
