package rules

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// bucketSet is a set whose metrics rule sets attributes["b"] to
// bucket(attributes["v"], bounds).
func bucketSet(t testing.TB, bounds string) *Set {
	t.Helper()
	return mustParse(t, "rules:\n  - name: b\n    signal: metrics\n    set:\n      attributes[\"b\"]: bucket(attributes[\"v\"], "+bounds+")\n")
}

func TestBucket(t *testing.T) {
	tests := []struct {
		bounds string
		v      any
		want   string
	}{
		{"[1000, 10000, 100000]", int64(999), "<1000"},
		{"[1000, 10000, 100000]", int64(1000), "1000-10000"}, // lower bound inclusive
		{"[1000, 10000, 100000]", 9999.99, "1000-10000"},     // upper exclusive
		{"[1000, 10000, 100000]", int64(10000), "10000-100000"},
		{"[1000, 10000, 100000]", int64(100000), ">=100000"},
		{"[1000, 10000, 100000]", int64(math.MaxInt64), ">=100000"},
		{"[1000, 10000, 100000]", int64(-5), "<1000"},
		{"[1000, 10000, 100000]", math.Inf(1), ">=100000"},
		{"[1000, 10000, 100000]", math.Inf(-1), "<1000"},
		{"[1000, 10000, 100000]", "  42 ", "<1000"},
		{"[1000, 10000, 100000]", "1e4", "10000-100000"},
		{"[1000, 10000, 100000]", "+Inf", ">=100000"},
		{"[-10, -1.5, 0]", int64(-11), "<-10"},
		{"[-10, -1.5, 0]", int64(-10), "-10--1.5"},
		{"[-10, -1.5, 0]", -1.5, "-1.5-0"},
		{"[-10, -1.5, 0]", math.Copysign(0, -1), ">=0"}, // -0 == 0
		{"[-10, -1.5, 0]", "-0.7", "-1.5-0"},
		{"[0.5, 1000000]", 0.25, "<0.5"},
		{"[0.5, 1000000]", 7.0, "0.5-1e+06"},
		{"[0.5, 1000000]", 1e6, ">=1e+06"},
		{"[0]", int64(0), ">=0"},
		{"[0]", -1e-300, "<0"},
		{"[+1, 2 * 5]", int64(3), "1-10"}, // constants fold
	}
	for _, tt := range tests {
		s := bucketSet(t, tt.bounds)
		env := &MetricEnv{Common: Common{Attributes: map[string]any{"v": tt.v}}}
		if _, err := s.Apply(env); err != nil {
			t.Errorf("bucket(%v, %s): %v", tt.v, tt.bounds, err)
			continue
		}
		if got := env.Attributes["b"]; got != tt.want {
			t.Errorf("bucket(%v, %s) = %v, want %q", tt.v, tt.bounds, got, tt.want)
		}
	}
}

// TestBucketNotANumber: a value that is not a number fails the rule, as
// parse_float fails on it; the item is left as it was and the error
// counted.
func TestBucketNotANumber(t *testing.T) {
	s := bucketSet(t, "[1, 10]")
	for _, tt := range []struct {
		v    any
		want string
	}{
		{"abc", `bucket: "abc" is not a number`},
		{"", `bucket: "" is not a number`},
		{"NaN", "bucket: NaN is in no range"},
		{math.NaN(), "bucket: NaN is in no range"},
		{true, "bucket: want a number, got bool"},
		{[]byte("1"), "bucket: want a number, got []uint8"},
		{nil, "bucket: want a number, got nil (missing attribute?)"},
	} {
		attrs := map[string]any{"v": tt.v}
		if tt.v == nil {
			attrs = map[string]any{}
		}
		env := &MetricEnv{Common: Common{Attributes: attrs}}
		res, err := s.Apply(env)
		if err == nil || !strings.HasSuffix(err.Error(), tt.want) || res.Errors != 1 || res.Changed {
			t.Errorf("bucket(%v): %+v, %v; want the error %q", tt.v, res, err, tt.want)
		}
		if _, ok := env.Attributes["b"]; ok {
			t.Errorf("bucket(%v) set b", tt.v)
		}
	}
	if st := s.Stats()[0]; st.Errors != 7 {
		t.Errorf("errors = %d, want 7", st.Errors)
	}
}

// TestBucketField: bucket is a string, so it can set a string field, and
// each call site has its own bounds.
func TestBucketField(t *testing.T) {
	s := mustParse(t, `rules:
  - name: b
    signal: metrics
    set:
      name: concat(bucket(value, [1, 10]), "|", bucket(value, [5]))
`)
	env := &MetricEnv{Value: 7}
	if _, err := s.Apply(env); err != nil || env.Name != "1-10|>=5" {
		t.Errorf("name = %q, %v", env.Name, err)
	}
}

// TestFuncLoadErrors: the literal arguments of bucket and top_k are
// checked when the rules load, at their line and column.
func TestFuncLoadErrors(t *testing.T) {
	tests := []struct{ value, want string }{
		{`bucket(attributes["v"], [1000, 100, 5])`, `6:48: rule "a": set attributes["x"]: bucket: the bounds must ascend: 100 after 1000`},
		{`bucket(attributes["v"], [1, 1])`, `6:48: rule "a": set attributes["x"]: bucket: the bounds must ascend: 1 after 1`},
		{`bucket(attributes["v"], [])`, `6:48: rule "a": set attributes["x"]: bucket: no bounds: the bounds must be a literal array of ascending numbers, e.g. [10, 100, 1000]`},
		{`bucket(attributes["v"], [1, "2"])`, `6:48: rule "a": set attributes["x"]: bucket: bound 2 is string, not a number: the bounds must be a literal array of ascending numbers, e.g. [10, 100, 1000]`},
		{`bucket(attributes["v"], [1, value])`, `6:48: rule "a": set attributes["x"]: bucket: the bounds must be a literal array of ascending numbers, e.g. [10, 100, 1000]`},
		{`bucket(attributes["v"], attributes["bounds"])`, `6:58: rule "a": set attributes["x"]: bucket: the bounds must be a literal array of ascending numbers, e.g. [10, 100, 1000]`},
		{`bucket(attributes["v"])`, `6:24: rule "a": set attributes["x"]: bucket takes two arguments, a value and the bounds: bucket(x, [10, 100, 1000])`},
		{`bucket(attributes["v"], [1], 0)`, `6:24: rule "a": set attributes["x"]: bucket takes two arguments, a value and the bounds: bucket(x, [10, 100, 1000])`},
		{`top_k(attributes["c"], 0)`, `6:47: rule "a": set attributes["x"]: top_k: k must be from 1 to 1000, not 0`},
		{`top_k(attributes["c"], 1001)`, `6:47: rule "a": set attributes["x"]: top_k: k must be from 1 to 1000, not 1001`},
		{`top_k(attributes["c"], -3)`, `6:47: rule "a": set attributes["x"]: top_k: k must be from 1 to 1000, not -3`},
		{`top_k(attributes["c"], 2.5)`, `6:47: rule "a": set attributes["x"]: top_k: k must be an integer literal from 1 to 1000, so its state is sized when the rules load`},
		{`top_k(attributes["c"], attributes["k"])`, `6:57: rule "a": set attributes["x"]: top_k: k must be an integer literal from 1 to 1000, so its state is sized when the rules load`},
		{`top_k(attributes["c"])`, `6:24: rule "a": set attributes["x"]: top_k takes two arguments, a value and k: top_k(x, 20)`},
		{`top_k(attributes["c"], 2, 3)`, `6:24: rule "a": set attributes["x"]: top_k takes two arguments, a value and k: top_k(x, 20)`},
		{`topk(attributes["c"], 2)`, `6:24: rule "a": set attributes["x"]: unknown function topk (did you mean top_k?)`},
		{`bukket(attributes["c"], [1])`, `6:24: rule "a": set attributes["x"]: unknown function bukket (did you mean bucket?)`},
	}
	for _, tt := range tests {
		src := "rules:\n  - name: a\n    signal: metrics\n    when: value > 0\n    set:\n      attributes[\"x\"]: " + tt.value + "\n"
		_, err := Parse(map[string][]byte{"f.yaml": []byte(src)})
		if err == nil || err.Error() != "f.yaml:"+tt.want {
			t.Errorf("%s:\n got %v\nwant f.yaml:%s", tt.value, err, tt.want)
		}
	}
	// In a literal block, the position is the bound's own line.
	src := "rules:\n  - name: a\n    signal: metrics\n    when: |\n      value > 0 &&\n        bucket(value, [5, 1]) == \"<5\"\n    drop: true\n"
	_, err := Parse(map[string][]byte{"f.yaml": []byte(src)})
	if want := `f.yaml:6:23: rule "a": when: bucket: the bounds must ascend: 1 after 5`; err == nil || err.Error() != want {
		t.Errorf("block:\n got %v\nwant %s", err, want)
	}
	// Every problem is reported, not the first only.
	src = "rules:\n  - name: a\n    signal: metrics\n    set:\n      attributes[\"x\"]: top_k(attributes[\"c\"], 0)\n      attributes[\"y\"]: bucket(value, [2, 1])\n"
	_, err = Parse(map[string][]byte{"f.yaml": []byte(src)})
	if err == nil || len(err.(Errors)) != 2 {
		t.Errorf("want 2 errors, got %v", err)
	}
}

// BenchmarkBucket: label looks the range up; call is the function as
// expr calls it, with a numeric string to parse; rule is a rule whose set
// calls it, applied by an Evaluator.
func BenchmarkBucket(b *testing.B) {
	s := bucketSet(b, "[1, 10, 100, 1000, 10000, 100000]")
	fs := compiledFuncs(b, `bucket(attributes["v"], [1, 10, 100, 1000, 10000, 100000])`)
	b.Run("label", func(b *testing.B) {
		bk := fs.buckets[0]
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_ = bk.label(float64(i % 200000))
		}
	})
	b.Run("call", func(b *testing.B) {
		args := []any{"5000", nil, 0}
		b.ReportAllocs()
		for b.Loop() {
			if v, err := fs.bucket(args...); err != nil || v != "1000-10000" {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("rule", func(b *testing.B) {
		ev := s.NewEvaluator()
		env := &MetricEnv{Common: Common{Attributes: map[string]any{"v": int64(5000)}}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ev.Apply(env, Keys{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// compiledFuncs compiles a metrics expression and returns the functions
// it was compiled with, its call sites prepared.
func compiledFuncs(t testing.TB, src string) *functions {
	t.Helper()
	c := newCompiler()
	if _, _, _, errs := c.compile(otlpwire.Metrics, src, reflect.Interface); len(errs) > 0 {
		t.Fatal(errs)
	}
	return c.funcs
}
