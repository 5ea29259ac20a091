package rules

import (
	"maps"
	"slices"
	"testing"
	"time"
)

func TestAggregateWithoutAndBy(t *testing.T) {
	s := mustParse(t, `rules:
  - name: without-pod
    signal: metrics
    when: name == "a"
    aggregate:
      without: [k8s.pod.name, pod.uid]
      interval: 30s
      gauge: sum
  - name: by-route
    signal: metrics
    when: name == "b"
    aggregate: {by: [http.route, service.name], summary: count_sum}
`)
	if got := len(s.Merges()); got != 3 {
		t.Fatalf("%d merge specs, want the default and 2", got)
	}
	want := MergeSpec{Rule: "without-pod", Interval: 30 * time.Second, Grace: 30 * time.Second, Gauge: "sum", Summary: "drop"}
	if got := s.Merges()[1]; got != want {
		t.Errorf("spec 1 = %+v, want %+v", got, want)
	}
	if got := s.Merges()[2]; got.Interval != DefaultMerge.Interval || got.Summary != "count_sum" || got.Gauge != "last" {
		t.Errorf("spec 2 = %+v", got)
	}

	// without removes the keys from attributes and resource alike.
	m := &MetricEnv{Name: "a", Common: Common{
		Attributes: map[string]any{"http.route": "/x", "pod.uid": "u"},
		Resource:   map[string]any{"k8s.pod.name": "p-1", "service.name": "api"}}}
	res, err := s.Apply(m)
	if err != nil || !res.Changed || res.Mark != (Mark{Merge: 2}) {
		t.Fatalf("without: %+v, %v", res, err)
	}
	if !maps.Equal(m.Attributes, map[string]any{"http.route": "/x"}) || !maps.Equal(m.Resource, map[string]any{"service.name": "api"}) {
		t.Errorf("without left %v, %v", m.Attributes, m.Resource)
	}

	// A matched aggregate rule marks the point even when it removed nothing.
	m = &MetricEnv{Name: "a", Common: Common{Attributes: map[string]any{"http.route": "/x"}}}
	if res, _ = s.Apply(m); res.Changed || res.Mark != (Mark{Merge: 2}) {
		t.Errorf("unchanged but matched: %+v", res)
	}

	// by keeps only the listed keys.
	m = &MetricEnv{Name: "b", Common: Common{
		Attributes: map[string]any{"http.route": "/x", "user.id": "7"},
		Resource:   map[string]any{"k8s.pod.name": "p-1", "service.name": "api"}}}
	if res, _ = s.Apply(m); res.Mark != (Mark{Merge: 3}) {
		t.Errorf("by: %+v", res)
	}
	if !maps.Equal(m.Attributes, map[string]any{"http.route": "/x"}) || !maps.Equal(m.Resource, map[string]any{"service.name": "api"}) {
		t.Errorf("by left %v, %v", m.Attributes, m.Resource)
	}

	// Not matched: no mark.
	m = &MetricEnv{Name: "c", Common: Common{Attributes: map[string]any{"user.id": "7"}}}
	if res, _ = s.Apply(m); res.Mark != (Mark{}) {
		t.Errorf("unmatched: %+v", res)
	}
}

// TestIdentityChangesMark pins the bug this starts from: a rule that
// changes a metric point's attributes, resource or name marks it for the
// default merge; one that changes nothing on it does not; logs and spans
// are never marked.
func TestIdentityChangesMark(t *testing.T) {
	s := mustParse(t, `rules:
  - name: no-user
    signal: metrics
    delete: ['attributes["user.id"]', 'resource["k8s.pod.name"]']
  - name: rename-metric
    signal: metrics
    when: name == "old"
    set:
      name: '"new"'
  - name: merge-by-sum
    signal: metrics
    when: name == "g"
    aggregate: {gauge: sum}
  - name: logs-too
    signal: logs
    delete: ['attributes["user.id"]']
`)
	cases := []struct {
		name string
		env  *MetricEnv
		want Mark
	}{
		{"attribute deleted", &MetricEnv{Name: "x", Common: Common{Attributes: map[string]any{"user.id": "1"}}}, Mark{Merge: 1}},
		{"resource attribute deleted", &MetricEnv{Name: "x", Common: Common{Resource: map[string]any{"k8s.pod.name": "p"}}}, Mark{Merge: 1}},
		{"nothing to delete", &MetricEnv{Name: "x", Common: Common{Attributes: map[string]any{"a": "1"}}}, Mark{}},
		{"renamed", &MetricEnv{Name: "old"}, Mark{Merge: 1}},
		// the later aggregate block says how the earlier change merges
		{"changed, then aggregate spec", &MetricEnv{Name: "g", Common: Common{Attributes: map[string]any{"user.id": "1"}}}, Mark{Merge: 2}},
	}
	for _, c := range cases {
		res, err := s.Apply(c.env)
		if err != nil || res.Mark != c.want {
			t.Errorf("%s: mark %+v (%v), want %+v", c.name, res.Mark, err, c.want)
		}
	}
	res, _ := s.Apply(&LogEnv{Common: Common{Attributes: map[string]any{"user.id": "1"}}})
	if !res.Changed || res.Mark != (Mark{}) {
		t.Errorf("log: %+v", res)
	}
}

func TestLimitMarks(t *testing.T) {
	s := mustParse(t, `rules:
  - name: cap
    signal: metrics
    when: name startsWith "http."
    limit:
      max_series: 10000
  - name: dropped
    signal: metrics
    when: name == "http.debug"
    drop: true
`)
	if got := s.Limits(); len(got) != 1 || got[0] != (LimitSpec{Rule: "cap", MaxSeries: 10000, Merge: DefaultMerge}) {
		t.Fatalf("limits = %+v", got)
	}
	if res, _ := s.Apply(&MetricEnv{Name: "http.requests"}); res.Mark != (Mark{Limit: 1}) {
		t.Errorf("limited: %+v", res)
	}
	if res, _ := s.Apply(&MetricEnv{Name: "db.calls"}); res.Mark != (Mark{}) {
		t.Errorf("not matched: %+v", res)
	}
	if res, _ := s.Apply(&MetricEnv{Name: "http.debug"}); !res.Drop {
		t.Errorf("dropped: %+v", res)
	}
}

func TestAggregateErrors(t *testing.T) {
	head := "rules:\n  - name: a\n    signal: metrics\n"
	tests := []struct{ name, src, want string }{
		{"logs", "rules:\n  - name: a\n    signal: logs\n    aggregate: {without: [x]}\n",
			`f.yaml:4:5: rule "a": aggregate: only metrics are aggregated, not logs`},
		{"both", head + "    aggregate: {without: [x], by: [y]}\n",
			`f.yaml:4:16: rule "a": aggregate: give without or by, not both`},
		{"interval", head + "    aggregate:\n      without: [x]\n      interval: 30\n",
			`f.yaml:6:17: rule "a": aggregate.interval: want a duration such as 30s or 1m, not "30"`},
		{"interval range", head + "    aggregate: {interval: 10ms}\n",
			`f.yaml:4:27: rule "a": aggregate.interval: 10ms is out of range (1s to 24h0m0s)`},
		{"gauge", head + "    aggregate:\n      gauge: median\n",
			`f.yaml:5:14: rule "a": aggregate.gauge: unknown value "median" (valid: last, sum, min, max, avg, count)`},
		{"summary", head + "    aggregate:\n      summary: quantiles\n",
			`f.yaml:5:16: rule "a": aggregate.summary: unknown value "quantiles" (valid: drop, count_sum)`},
		{"unknown key", head + "    aggregate:\n      withut: [x]\n",
			`f.yaml:5:7: rule "a": aggregate: unknown key "withut" (valid: without, by, interval, grace, gauge, summary)`},
		{"keys", head + "    aggregate:\n      without: k8s.pod.name\n",
			`f.yaml:5:16: rule "a": aggregate.without: want a list of keys, e.g. [k8s.pod.name, service.instance.id]`},
		{"limit logs", "rules:\n  - name: a\n    signal: traces\n    limit: {max_series: 5}\n",
			`f.yaml:4:5: rule "a": limit: only metrics series are limited, not traces`},
		{"limit zero", head + "    limit:\n      max_series: 0\n",
			`f.yaml:5:19: rule "a": limit.max_series: want a whole number from 1 to 10000000, not "0"`},
		{"limit empty", head + "    limit: {}\n",
			`f.yaml:4:12: rule "a": limit: max_series is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"f.yaml": []byte(tt.src)})
			if err == nil || err.Error() != tt.want {
				t.Errorf("err =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

// A file's merge block says how the points its rules collapse merge; the
// rules of other files keep the default, and an aggregate block still wins.
func TestFileMergeBlock(t *testing.T) {
	s, err := Parse(map[string][]byte{
		"a.yaml": []byte(`merge:
  interval: 5s
  gauge: sum
rules:
  - name: no-pod
    signal: metrics
    delete: ['resource["k8s.pod.name"]']
  - name: by-route
    signal: metrics
    when: name == "g"
    aggregate: {interval: 10s}
  - name: logs-untouched
    signal: logs
    delete: ['attributes["user.id"]']
  - name: cap
    signal: metrics
    limit: {max_series: 5}
`),
		"b.yaml": []byte(`rules:
  - name: no-user
    signal: metrics
    delete: ['attributes["user.id"]']
`),
	})
	if err != nil {
		t.Fatal(err)
	}
	fileSpec := MergeSpec{Interval: 5 * time.Second, Grace: 5 * time.Second, Gauge: "sum", Summary: "drop"}
	aggSpec := MergeSpec{Rule: "by-route", Interval: 10 * time.Second, Grace: 10 * time.Second, Gauge: "last", Summary: "drop"}
	if got, want := s.Merges(), []MergeSpec{DefaultMerge, fileSpec, aggSpec}; !slices.Equal(got, want) {
		t.Fatalf("merges\n%+v\nwant\n%+v", got, want)
	}
	// the points a limit counts merge as the limit rule's file says
	if got := s.Limits(); len(got) != 1 || got[0] != (LimitSpec{Rule: "cap", MaxSeries: 5, Merge: fileSpec}) {
		t.Fatalf("limits = %+v", got)
	}
	for _, c := range []struct {
		name string
		env  *MetricEnv
		want Mark
	}{
		{"file a's rule", &MetricEnv{Name: "x", Common: Common{Resource: map[string]any{"k8s.pod.name": "p"}}}, Mark{Merge: 2, Limit: 1}},
		{"file b's rule", &MetricEnv{Name: "x", Common: Common{Attributes: map[string]any{"user.id": "u"}}}, Mark{Merge: 1, Limit: 1}},
		{"aggregate wins", &MetricEnv{Name: "g", Common: Common{Resource: map[string]any{"k8s.pod.name": "p"}}}, Mark{Merge: 3, Limit: 1}},
		{"only the limit", &MetricEnv{Name: "x"}, Mark{Limit: 1}},
	} {
		if res, err := s.Apply(c.env); err != nil || res.Mark != c.want {
			t.Errorf("%s: mark %+v (%v), want %+v", c.name, res.Mark, err, c.want)
		}
	}
}

// merge: none: the points a file's rules change are written as they come,
// unless a rule of the file has an aggregate or a limit action; other
// files' rules still merge.
func TestFileMergeNone(t *testing.T) {
	s, err := Parse(map[string][]byte{
		"a.yaml": []byte(`merge: none
rules:
  - name: no-debug-id
    signal: metrics
    delete: ['attributes["debug_id"]']
  - name: env
    signal: metrics
    set:
      attributes["env"]: '"production"'
  - name: by-route
    signal: metrics
    when: name == "g"
    aggregate: {interval: 10s}
  - name: cap
    signal: metrics
    when: name == "c"
    limit: {max_series: 5}
`),
		"b.yaml": []byte(`rules:
  - name: no-user
    signal: metrics
    delete: ['attributes["user.id"]']
`),
	})
	if err != nil {
		t.Fatal(err)
	}
	aggSpec := MergeSpec{Rule: "by-route", Interval: 10 * time.Second, Grace: 10 * time.Second, Gauge: "last", Summary: "drop"}
	if got, want := s.Merges(), []MergeSpec{DefaultMerge, aggSpec}; !slices.Equal(got, want) {
		t.Fatalf("merges\n%+v\nwant\n%+v", got, want)
	}
	if got := s.Limits(); len(got) != 1 || got[0] != (LimitSpec{Rule: "cap", MaxSeries: 5, Merge: DefaultMerge}) {
		t.Fatalf("limits = %+v", got)
	}
	for _, c := range []struct {
		name string
		env  *MetricEnv
		want Mark
	}{
		{"deleted and set, written as they come", &MetricEnv{Name: "x", Common: Common{Attributes: map[string]any{"debug_id": "d"}}}, Mark{}},
		{"another file's rule merges", &MetricEnv{Name: "x", Common: Common{Attributes: map[string]any{"user.id": "u"}}}, Mark{Merge: 1}},
		{"aggregate merges", &MetricEnv{Name: "g", Common: Common{Attributes: map[string]any{"debug_id": "d"}}}, Mark{Merge: 2}},
		{"the limit counts it (its points merge as DefaultMerge)", &MetricEnv{Name: "c"}, Mark{Limit: 1}},
	} {
		res, err := s.Apply(c.env)
		if err != nil || res.Mark != c.want {
			t.Errorf("%s: mark %+v (%v), want %+v", c.name, res.Mark, err, c.want)
		}
		if !res.Changed {
			t.Errorf("%s: not changed", c.name)
		}
	}
}

func TestFileMergeErrors(t *testing.T) {
	rules := "rules:\n  - name: a\n    signal: metrics\n    delete: ['attributes[\"x\"]']\n"
	for _, tt := range []struct{ name, src, want string }{
		{"not a mapping", "merge: 30s\n" + rules, `f.yaml:1:8: merge: want a mapping, e.g. {interval: 30s, gauge: sum}, or none`},
		{"not none", "merge: nothing\n" + rules, `f.yaml:1:8: merge: want a mapping, e.g. {interval: 30s, gauge: sum}, or none`},
		{"unknown key", "merge: {without: [x]}\n" + rules, `f.yaml:1:9: merge: unknown key "without" (valid: interval, grace, gauge, summary)`},
		{"interval", "merge: {interval: 0s}\n" + rules, `f.yaml:1:19: merge.interval: 0s is out of range (1s to 24h0m0s)`},
		{"gauge", "merge:\n  gauge: p99\n" + rules, `f.yaml:2:10: merge.gauge: unknown value "p99" (valid: last, sum, min, max, avg, count)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"f.yaml": []byte(tt.src)})
			if err == nil || err.Error() != tt.want {
				t.Errorf("err =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}
