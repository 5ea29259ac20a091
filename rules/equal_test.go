package rules

import (
	"math"
	"testing"
)

func TestSameValue(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		a, b any
		want bool
	}{
		{"NaN vs NaN", nan, nan, true},
		{"NaN vs other NaN bits", nan, math.Float64frombits(0x7ff8000000000001), true},
		{"NaN vs 0", nan, 0.0, false},
		{"0 vs NaN", 0.0, nan, false},
		{"nil vs nil", nil, nil, true},
		{"nil vs empty string", nil, "", false},
		{"empty string vs nil", "", nil, false},
		{"nil vs nil bytes", nil, []byte(nil), false},
		{"int64 1 vs float64 1", int64(1), float64(1), false},
		{"float64 1 vs int64 1", float64(1), int64(1), false},
		{"int vs int64", 1, int64(1), false},
		{"-0 vs +0", math.Copysign(0, -1), 0.0, true},
		{"+0 vs -0", 0.0, math.Copysign(0, -1), true},
		{"float64 equal", 1.5, 1.5, true},
		{"float64 differ", 1.5, 2.5, false},
		{"int64 equal", int64(7), int64(7), true},
		{"int64 differ", int64(7), int64(8), false},
		{"strings equal", "a", "a", true},
		{"strings differ", "a", "b", false},
		{"string vs bytes", "a", []byte("a"), false},
		{"bytes vs string", []byte("a"), "a", false},
		{"bytes equal", []byte{1, 2}, []byte{1, 2}, true},
		{"bytes differ", []byte{1, 2}, []byte{1, 3}, false},
		{"nil bytes vs empty bytes", []byte(nil), []byte{}, true},
		{"bool equal", true, true, true},
		{"bool differ", true, false, false},
		{"bool vs string", true, "true", false},
		{"arrays equal", []any{"a", int64(1)}, []any{"a", int64(1)}, true},
		{"arrays differ", []any{"a", int64(1)}, []any{"a", int64(2)}, false},
		{"array vs int elements", []any{int64(1)}, []any{1}, false},
		{"array with NaN", []any{nan}, []any{nan}, false},
		{"maps equal", map[string]any{"k": "v"}, map[string]any{"k": "v"}, true},
		{"maps differ", map[string]any{"k": "v"}, map[string]any{"k": "w"}, false},
		{"map vs nil", map[string]any{}, nil, false},
	}
	for _, tt := range tests {
		if got := SameValue(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: SameValue(%#v, %#v) = %v, want %v", tt.name, tt.a, tt.b, got, tt.want)
		}
	}
}

// TestSetSameValue: a set that assigns an attribute the value it already
// has does not change the item, whatever the value's type; one that
// changes the type does.
func TestSetSameValue(t *testing.T) {
	s := mustParse(t, `rules:
  - name: copy
    signal: logs
    set:
      attributes["to"]: attributes["from"]
`)
	nan := math.NaN()
	tests := []struct {
		name     string
		from, to any
		changed  bool
	}{
		{"string", "a", "a", false},
		{"int64", int64(3), int64(3), false},
		{"NaN", nan, nan, false},
		{"bytes", []byte{1, 2}, []byte{1, 2}, false},
		{"array", []any{"a"}, []any{"a"}, false},
		{"map", map[string]any{"k": "v"}, map[string]any{"k": "v"}, false},
		{"other string", "a", "b", true},
		{"int64 to float64", int64(1), float64(1), true},
		{"float64 to int64", float64(1), int64(1), true},
		{"other bytes", []byte{1, 2}, []byte{1}, true},
	}
	for _, tt := range tests {
		env := &LogEnv{Common: Common{Attributes: map[string]any{"from": tt.from, "to": tt.to}}}
		res, err := s.Apply(env)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.Changed != tt.changed {
			t.Errorf("%s: Changed = %v, want %v", tt.name, res.Changed, tt.changed)
		}
		if !SameValue(env.Attributes["to"], tt.from) {
			t.Errorf("%s: to = %#v, want %#v", tt.name, env.Attributes["to"], tt.from)
		}
	}
}
