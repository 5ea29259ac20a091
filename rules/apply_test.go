package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

func mustParse(t testing.TB, src string) *Set {
	t.Helper()
	s, err := Parse(map[string][]byte{"r.yaml": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExampleRules(t *testing.T) {
	s, err := Load("testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	// drop-health-checks
	res, err := s.Apply(&SpanEnv{Common: Common{Attributes: map[string]any{"http.route": "/readyz"}}})
	if err != nil || !res.Drop || res.DroppedBy.Name != "drop-health-checks" {
		t.Errorf("health check: %+v, %v", res, err)
	}
	// hash-emails
	span := &SpanEnv{Common: Common{Attributes: map[string]any{"http.route": "/x", "user.email": "a@b.c"}}}
	res, err = s.Apply(span)
	if err != nil || res.Drop || !res.Changed {
		t.Errorf("hash: %+v, %v", res, err)
	}
	if got, want := span.Attributes["user.email"], sha256Hex("a@b.c"); got != want {
		t.Errorf("user.email = %v, want %v", got, want)
	}
	// drop-debug-logs
	for sev, drop := range map[int]bool{5: true, 9: false, 17: false} {
		res, _ := s.Apply(&LogEnv{SeverityNumber: sev})
		if res.Drop != drop {
			t.Errorf("severity %d: drop = %v", sev, res.Drop)
		}
	}
	// tidy-routes
	m := &MetricEnv{Name: "http.server.duration", Common: Common{Attributes: map[string]any{
		"route": "/users/123/orders/45", "user.id": "u1", "k8s.pod.name": "p-1", "keep": "me"}}}
	res, err = s.Apply(m)
	if err != nil || res.Drop || !res.Changed {
		t.Errorf("tidy: %+v, %v", res, err)
	}
	want := map[string]any{"route": "/users/{id}/orders/{id}", "pod": "p-1", "keep": "me"}
	if !maps.Equal(m.Attributes, want) {
		t.Errorf("attributes = %v, want %v", m.Attributes, want)
	}
}

func TestActionsPerSignal(t *testing.T) {
	envs := map[string]func() Env{
		"metrics": func() Env {
			return &MetricEnv{Name: "m", Unit: "s", Type: "sum", Value: 3, Common: testCommon()}
		},
		"logs": func() Env {
			return &LogEnv{Body: "hello", SeverityNumber: 9, SeverityText: "INFO", TraceID: "0af7651916cd43dd8448eb211c80319c", Common: testCommon()}
		},
		"traces": func() Env {
			return &SpanEnv{Name: "GET", Kind: "server", StatusCode: "ok", DurationMs: 12, TraceID: "0af7651916cd43dd8448eb211c80319c", Common: testCommon()}
		},
	}
	for sig, newEnv := range envs {
		t.Run(sig, func(t *testing.T) {
			run := func(body string) (Env, Result, error) {
				s := mustParse(t, "rules:\n  - name: r\n    signal: "+sig+"\n"+body)
				env := newEnv()
				res, err := s.Apply(env)
				return env, res, err
			}
			if _, res, _ := run("    when: attributes[\"a\"] == \"1\"\n    drop: true\n"); !res.Drop {
				t.Error("drop: not dropped")
			}
			if _, res, _ := run("    when: attributes[\"a\"] == \"2\"\n    drop: true\n"); res.Drop {
				t.Error("drop: dropped a non-matching item")
			}
			if _, res, _ := run("    when: attributes[\"a\"] == \"1\"\n    keep: true\n"); res.Drop {
				t.Error("keep: dropped a matching item")
			}
			if _, res, _ := run("    when: attributes[\"a\"] == \"2\"\n    keep: true\n"); !res.Drop {
				t.Error("keep: kept a non-matching item")
			}
			env, res, err := run("    set:\n      attributes[\"n\"]: len(attributes) + 1\n      resource[\"r\"]: concat(resource[\"service.name\"], \"-\", 7)\n      attributes[\"a\"]: nil\n")
			c := env.common()
			if err != nil || !res.Changed || c.Attributes["n"] != int64(4) || c.Resource["r"] != "svc-7" || c.Attributes["a"] != nil {
				t.Errorf("set: %+v %v %v %v", res, err, c.Attributes, c.Resource)
			}
			if _, ok := c.Attributes["a"]; ok {
				t.Error("set to nil did not remove the attribute")
			}
			env, _, _ = run("    delete: ['attributes[\"a\"]', 'resource[\"service.name\"]', 'attributes[\"absent\"]']\n")
			c = env.common()
			if _, ok := c.Attributes["a"]; ok || len(c.Resource) != 1 {
				t.Errorf("delete: %v %v", c.Attributes, c.Resource)
			}
			env, _, _ = run("    keep_keys:\n      attributes: [a, b]\n")
			c = env.common()
			if !maps.Equal(c.Attributes, map[string]any{"a": "1", "b": int64(2)}) || len(c.Resource) != 2 {
				t.Errorf("keep_keys: %v %v", c.Attributes, c.Resource)
			}
			env, _, _ = run("    keep_keys: {resource: []}\n")
			if c = env.common(); len(c.Resource) != 0 || len(c.Attributes) != 3 {
				t.Errorf("keep_keys resource: %v %v", c.Attributes, c.Resource)
			}
			env, res, _ = run("    rename:\n      attributes[\"a\"]: attributes[\"alpha\"]\n      resource[\"host\"]: attributes[\"host\"]\n      attributes[\"absent\"]: attributes[\"x\"]\n")
			c = env.common()
			if !res.Changed || c.Attributes["alpha"] != "1" || c.Attributes["host"] != "h1" || len(c.Attributes) != 4 || len(c.Resource) != 1 {
				t.Errorf("rename: %v %v", c.Attributes, c.Resource)
			}
			if _, ok := c.Attributes["x"]; ok {
				t.Error("rename created a target from an absent source")
			}
		})
	}
}

func testCommon() Common {
	return Common{
		Attributes: map[string]any{"a": "1", "b": int64(2), "c": true},
		Resource:   map[string]any{"service.name": "svc", "host": "h1"},
		Scope:      Scope{Name: "lib", Version: "1.0"},
	}
}

func TestSetFields(t *testing.T) {
	s := mustParse(t, `rules:
  - name: logs
    signal: logs
    set:
      body: upper(body)
      severity_text: '"WARN"'
      severity_number: severity_number + 4
  - name: metrics
    signal: metrics
    set:
      name: concat("app.", name)
      unit: '"ms"'
  - name: spans
    signal: traces
    set:
      name: lower(name) + " " + kind
      status_message: truncate(status_message, 3)
`)
	l := &LogEnv{Body: "hi", SeverityNumber: 9}
	s.Apply(l)
	if l.Body != "HI" || l.SeverityText != "WARN" || l.SeverityNumber != 13 {
		t.Errorf("log = %+v", l)
	}
	m := &MetricEnv{Name: "x", Unit: "s"}
	s.Apply(m)
	if m.Name != "app.x" || m.Unit != "ms" {
		t.Errorf("metric = %+v", m)
	}
	sp := &SpanEnv{Name: "GET", Kind: "server", StatusMessage: "héllo"}
	s.Apply(sp)
	if sp.Name != "get server" || sp.StatusMessage != "hél" {
		t.Errorf("span = %+v", sp)
	}
}

func TestSetIsSimultaneous(t *testing.T) {
	s := mustParse(t, `rules:
  - name: swap
    signal: logs
    set:
      attributes["a"]: attributes["b"]
      attributes["b"]: attributes["a"]
`)
	env := &LogEnv{Common: Common{Attributes: map[string]any{"a": "A", "b": "B"}}}
	s.Apply(env)
	if env.Attributes["a"] != "B" || env.Attributes["b"] != "A" {
		t.Errorf("attributes = %v", env.Attributes)
	}
}

func TestOnError(t *testing.T) {
	for _, tt := range []struct {
		onError string
		drop    bool
	}{{"", false}, {"    on_error: skip\n", false}, {"    on_error: drop\n", true}} {
		s := mustParse(t, `rules:
  - name: inc
    signal: metrics
`+tt.onError+`    set:
      attributes["y"]: '"set"'
      attributes["x"]: attributes["x"] + 1
  - name: later
    signal: metrics
    set:
      attributes["later"]: true
`)
		env := &MetricEnv{Common: Common{Attributes: map[string]any{"a": "b"}}}
		res, err := s.Apply(env)
		var ee *EvalError
		if !errors.As(err, &ee) || ee.Rule.Name != "inc" || res.Errors != 1 {
			t.Fatalf("on_error %q: err = %v, res = %+v", tt.onError, err, res)
		}
		if want := `rule "inc": set attributes["x"]: invalid operation: <nil> + int`; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
		if res.Drop != tt.drop {
			t.Errorf("on_error %q: drop = %v", tt.onError, res.Drop)
		}
		if _, ok := env.Attributes["y"]; ok {
			t.Errorf("on_error %q: a failed rule changed the item: %v", tt.onError, env.Attributes)
		}
		if _, ok := env.Attributes["later"]; ok == tt.drop {
			t.Errorf("on_error %q: later rule ran = %v", tt.onError, ok)
		}
		// The value present: no error.
		env = &MetricEnv{Common: Common{Attributes: map[string]any{"x": int64(1)}}}
		if res, err := s.Apply(env); err != nil || res.Drop || env.Attributes["x"] != int64(2) {
			t.Errorf("with x: %+v %v %v", res, err, env.Attributes)
		}
	}
}

func TestWhenError(t *testing.T) {
	s := mustParse(t, `rules:
  - name: w
    signal: logs
    when: attributes["n"] > 3
    on_error: drop
    keep: true
`)
	res, err := s.Apply(&LogEnv{Common: Common{Attributes: map[string]any{"n": "str"}}})
	if err == nil || !res.Drop {
		t.Errorf("%+v %v", res, err)
	}
}

func TestSampleByTraceID(t *testing.T) {
	s := mustParse(t, `rules:
  - name: s10
    signal: traces
    sample: 0.1
  - name: s50
    signal: logs
    sample: 0.5
`)
	other := mustParse(t, "rules:\n  - name: other-set\n    signal: traces\n    sample: 0.1\n")
	kept := 0
	const n = 10000
	for i := range n {
		id := fmt.Sprintf("%016x%016x", i*7919, i)
		res1, _ := s.Apply(&SpanEnv{TraceID: id})
		// Another worker with its own set decides the same way.
		res2, _ := other.Apply(&SpanEnv{TraceID: id, Name: "another span"})
		if res1.Drop != res2.Drop {
			t.Fatalf("trace %s: decisions differ", id)
		}
		if !res1.Drop {
			kept++
			// A log of a kept trace is kept by the 50% rule too: same hash, larger fraction.
			if res, _ := s.Apply(&LogEnv{TraceID: id}); res.Drop {
				t.Fatalf("log of kept trace %s dropped", id)
			}
		}
	}
	if kept < n*8/100 || kept > n*12/100 {
		t.Errorf("kept %d of %d, want about 10%%", kept, n)
	}
}

func TestSampleMetricsBySeries(t *testing.T) {
	s := mustParse(t, "rules:\n  - name: s\n    signal: metrics\n    sample: 0.5\n")
	decide := func(attrs map[string]any) bool {
		res, _ := s.Apply(&MetricEnv{Name: "m", Value: 1, Common: Common{Attributes: attrs, Resource: map[string]any{"r": "1"}}})
		return res.Drop
	}
	kept := 0
	for i := range 1000 {
		a := map[string]any{"i": int64(i), "x": "y", "z": true}
		first := decide(a)
		for range 5 {
			if decide(maps.Clone(a)) != first {
				t.Fatalf("series %d: decisions differ", i)
			}
		}
		if !first {
			kept++
		}
	}
	if kept < 400 || kept > 600 {
		t.Errorf("kept %d of 1000", kept)
	}
	for _, f := range []string{"0", "1"} {
		s := mustParse(t, "rules:\n  - name: s\n    signal: logs\n    sample: "+f+"\n")
		res, _ := s.Apply(&LogEnv{})
		if res.Drop != (f == "0") {
			t.Errorf("sample %s: drop = %v", f, res.Drop)
		}
	}
}

func TestFunctions(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`sha256("")`, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{`replace_regex("a1b22", "[0-9]+", "#")`, "a#b#"},
		{`replace_regex("user=bob", "user=(\\w+)", "u:$1")`, "u:bob"},
		{`match_regex("GET /x", "^(GET|HEAD) ") ? "y" : "n"`, "y"},
		{`upper("a") + lower("B") + trim(" c ")`, "Abc"},
		{`truncate("abcdef", 3) + truncate("ab", 3)`, "abcab"},
		{`string(parse_int(" 42 ") + 1)`, "43"},
		{`string(parse_float("1.5") * 2)`, "3"},
		{`concat("a", 1, 2.5, true, nil, "z")`, "a12.5truez"},
		{`"x" matches "^x$" ? "m" : "-"`, "m"},
	}
	for _, tt := range tests {
		s, err := Parse(map[string][]byte{"f.yaml": []byte("rules:\n  - name: f\n    signal: logs\n    set:\n      body: '" + tt.expr + "'\n")})
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		env := &LogEnv{}
		if _, err := s.Apply(env); err != nil || env.Body != tt.want {
			t.Errorf("%s = %v (%v), want %s", tt.expr, env.Body, err, tt.want)
		}
	}
	s := mustParse(t, "rules:\n  - name: f\n    signal: logs\n    set:\n      body: parse_int(body)\n")
	if _, err := s.Apply(&LogEnv{Body: "x"}); err == nil || err.Error() != `rule "f": set body: parse_int: "x" is not an integer` {
		t.Errorf("parse_int error = %v", err)
	}
}

func TestMemoisedConditions(t *testing.T) {
	s := mustParse(t, `rules:
  - name: by-resource
    signal: traces
    when: resource["env"] == "dev"
    drop: true
  - name: by-attributes
    signal: traces
    when: attributes["route"] == "/healthz"
    drop: true
  - name: per-span
    signal: traces
    when: duration_ms > 1000
    drop: true
`)
	ev := s.NewEvaluator()
	dev := map[string]any{"env": "dev"}
	prod := map[string]any{"env": "prod"}
	// With the same resource key, the first answer is reused even if the
	// map (wrongly) changes: proof that it is not evaluated again.
	res, _ := ev.Apply(&SpanEnv{Common: Common{Resource: dev}}, Keys{Resource: 1})
	if !res.Drop {
		t.Fatal("dev not dropped")
	}
	res, _ = ev.Apply(&SpanEnv{Common: Common{Resource: prod}}, Keys{Resource: 1})
	if !res.Drop {
		t.Error("memoised condition was evaluated again")
	}
	res, _ = ev.Apply(&SpanEnv{Common: Common{Resource: prod}}, Keys{Resource: 2})
	if res.Drop {
		t.Error("resource 2 dropped")
	}
	// Unknown key (0): evaluated per item.
	if res, _ := ev.Apply(&SpanEnv{Common: Common{Resource: prod}}, Keys{}); res.Drop {
		t.Error("key 0 was memoised")
	}
	ev.Reset()
	if res, _ := ev.Apply(&SpanEnv{Common: Common{Resource: prod}}, Keys{Resource: 1}); res.Drop {
		t.Error("Reset did not forget")
	}
	// Attributes keyed; per-span never memoised.
	health := map[string]any{"route": "/healthz"}
	if res, _ := ev.Apply(&SpanEnv{Common: Common{Attributes: health, Resource: prod}}, Keys{Resource: 1, Attributes: 7}); res.DroppedBy == nil || res.DroppedBy.Name != "by-attributes" {
		t.Errorf("attributes: %+v", res)
	}
	for _, d := range []float64{10, 2000, 10} {
		res, _ := ev.Apply(&SpanEnv{DurationMs: d, Common: Common{Resource: prod}}, Keys{Resource: 1, Attributes: 8})
		if res.Drop != (d > 1000) {
			t.Errorf("duration %v: drop = %v", d, res.Drop)
		}
	}
}

func TestStats(t *testing.T) {
	s := mustParse(t, `rules:
  - name: drop-a
    signal: logs
    when: attributes["a"] == 1
    drop: true
  - name: inc
    signal: logs
    set:
      attributes["b"]: attributes["b"] + 1
`)
	ev := s.NewEvaluator()
	for _, attrs := range []map[string]any{{"a": 1}, {"a": 2, "b": 1}, {"a": 3}} {
		ev.Apply(&LogEnv{Common: Common{Attributes: attrs}}, Keys{})
	}
	if st := s.Stats(); st[0].Matched != 0 {
		t.Errorf("counted before Flush: %+v", st[0])
	}
	ev.Flush()
	st := s.Stats()
	got := fmt.Sprintf("%d/%d/%d/%d %d/%d/%d/%d", st[0].Matched, st[0].Dropped, st[0].Changed, st[0].Errors,
		st[1].Matched, st[1].Dropped, st[1].Changed, st[1].Errors)
	if want := "1/1/0/0 2/0/1/1"; got != want {
		t.Errorf("matched/dropped/changed/errors = %s, want %s", got, want)
	}
	if st[0].Rule != "drop-a" || st[0].Signal != otlpwire.Logs || st[0].File != "r.yaml" || st[1].EvalNanos == 0 {
		t.Errorf("stats = %+v", st)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAddTallyN: an item applied with ApplyTally and added n more times
// with AddTallyN counts as n+1 applied items, in the rules' counters and
// for top_k; n <= 0 adds nothing.
func TestAddTallyN(t *testing.T) {
	const src = `rules:
  - name: top
    signal: logs
    set:
      attributes["c"]: top_k(attributes["c"], 1)
  - name: inc
    signal: logs
    set:
      attributes["b"]: attributes["b"] + 1
`
	env := func(c string) *LogEnv { return &LogEnv{Common: Common{Attributes: map[string]any{"c": c}}} }
	tallied, applied := mustParse(t, src), mustParse(t, src)
	ev, ref := tallied.NewEvaluator(), applied.NewEvaluator()
	// Batch 1: "y" comes first and is admitted, on 2 items; "x" is on 3
	// (one applied, 2 added) and "z" on 1 (the tally added 0 and -1 times).
	ev.BeginBatch("")
	ev.Apply(env("y"), Keys{})
	ev.Apply(env("y"), Keys{})
	var tx, tz Tally
	ev.ApplyTally(env("x"), Keys{}, &tx)
	ev.AddTallyN(&tx, 2)
	ev.ApplyTally(env("z"), Keys{}, &tz)
	ev.AddTallyN(&tz, 0)
	ev.AddTallyN(&tz, -1)
	ev.EndBatch()
	ref.BeginBatch("")
	for _, c := range []string{"y", "y", "x", "x", "x", "z"} {
		ref.Apply(env(c), Keys{})
	}
	ref.EndBatch()
	ev.Flush()
	ref.Flush()
	stats := func(s *Set) string {
		var b strings.Builder
		for _, st := range s.Stats() {
			fmt.Fprintf(&b, "%s %d/%d/%d/%d ", st.Rule, st.Matched, st.Dropped, st.Changed, st.Errors)
		}
		return b.String()
	}
	if got, want := stats(tallied), stats(applied); got != want || !strings.Contains(want, "top 6/0/4/0 inc 6/0/0/6") {
		t.Errorf("matched/dropped/changed/errors:\n got %s\nwant %s", got, want)
	}
	// Batch 2: "x", counted 3 times, is the one value kept (at 2, it
	// would tie with "y", which was kept before).
	for _, e := range []*Evaluator{ev, ref} {
		e.BeginBatch("")
		var got []any
		for _, c := range []string{"y", "x"} {
			en := env(c)
			e.Apply(en, Keys{})
			got = append(got, en.Attributes["c"])
		}
		e.EndBatch()
		if fmt.Sprint(got) != "[other x]" {
			t.Errorf("batch 2: %v, want [other x]", got)
		}
	}
}
