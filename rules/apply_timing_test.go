package rules

import (
	"testing"
)

// BenchmarkApplyMetrics applies the example rules (testdata/good) to a
// metric point: one rule with set, delete and rename.
func BenchmarkApplyMetrics(b *testing.B) {
	s, err := Load("testdata/good")
	if err != nil {
		b.Fatal(err)
	}
	ev := s.NewEvaluator()
	attrs := make(map[string]any, 8)
	env := &MetricEnv{Name: "http.server.duration", Type: "histogram", Value: 12.5}
	b.ReportAllocs()
	for b.Loop() {
		clear(attrs)
		attrs["route"] = "/users/123/orders/45"
		attrs["user.id"] = "u1"
		attrs["k8s.pod.name"] = "p-1"
		attrs["http.method"] = "GET"
		env.Attributes = attrs
		if _, err := ev.Apply(env, Keys{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCondition compares a condition evaluated per item with the same
// condition memoised by attribute-set key.
func BenchmarkCondition(b *testing.B) {
	s, err := Load("testdata/good")
	if err != nil {
		b.Fatal(err)
	}
	env := &SpanEnv{Name: "GET", Common: Common{Attributes: map[string]any{"http.route": "/api/x", "http.method": "GET"}}}
	for _, bc := range []struct {
		name string
		keys Keys
	}{{"per-item", Keys{}}, {"memoised", Keys{Attributes: 42}}} {
		b.Run(bc.name, func(b *testing.B) {
			ev := s.NewEvaluator()
			b.ReportAllocs()
			for b.Loop() {
				if res, _ := ev.Apply(env, bc.keys); res.Drop {
					b.Fatal("dropped")
				}
			}
		})
	}
}
