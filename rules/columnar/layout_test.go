package columnar

import (
	"fmt"
	"math/rand/v2"
	"testing"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// layoutValue is one of a few values of every AnyValue type, so that rows
// often share a value, in a type or another.
func layoutValue(r *rand.Rand) *common.AnyValue {
	switch r.IntN(7) {
	case 0:
		return sval([]string{"a", "b", ""}[r.IntN(3)])
	case 1:
		return &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(r.IntN(3))}}
	case 2:
		return &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: float64(r.IntN(3)) / 2}}
	case 3:
		return &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: r.IntN(2) == 0}}
	case 4:
		return &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: []byte{byte(r.IntN(2))}}}
	case 5:
		return &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: &common.ArrayValue{Values: []*common.AnyValue{sval("x")}}}}
	}
	return &common.AnyValue{}
}

// TestLayoutHash: rows keyed by layout whose read values sameProjected
// finds equal hash equal (else equal rows would miss each other in the
// memo), on random rows of a few layouts whose read keys take values of
// every type; and memoByLayout gives the rows of one layout and equal
// values one entry.
func TestLayoutHash(t *testing.T) {
	set := parse(t, `rules:
  - name: read
    signal: metrics
    when: attributes["v"] == "a" || attributes["w"] == 1
    set:
      attributes["env"]: '"prod"'
`)
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 77))
		g := &metrics.Gauge{}
		for n := range 300 {
			kvs := []*common.KeyValue{{Key: "v", Value: layoutValue(r)}, str("id", fmt.Sprint(n))}
			if r.IntN(2) == 0 {
				kvs = append(kvs, &common.KeyValue{Key: "w", Value: layoutValue(r)})
			}
			g.DataPoints = append(g.DataPoints, &metrics.NumberDataPoint{Attributes: kvs, TimeUnixNano: uint64(n)})
		}
		req := &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{ScopeMetrics: []*metrics.ScopeMetrics{{
			Metrics: []*metrics.Metric{{Name: "m", Data: &metrics.Metric_Gauge{Gauge: g}}}}}}}}
		st := stepState(t, set, req)
		if !st.info.project {
			t.Fatal("the rules read two attributes' values, but the memo is not projected")
		}
		prepared(t, st)
		m := &st.memo
		c := &st.itAttrs
		lays := make([]int32, st.n)
		hs := make([]uint64, st.n)
		for i := range st.n {
			start, end := int(c.rowOff[i]), int(c.rowOff[i+1])
			lays[i] = m.layouts.of(c, start, end, st.info.attrVals)
			if lays[i] < 0 {
				t.Fatalf("row %d has no layout", i)
			}
			hs[i] = layoutHash(c, m.seed, start, m.layouts.all[lays[i]].vpos)
		}
		for a := range st.n {
			for b := range a {
				if lays[a] == lays[b] && st.sameProjected(a, b, m.layouts.all[lays[a]].vpos) && hs[a] != hs[b] {
					t.Fatalf("seed %d: rows %d and %d have equal values but hashes %x, %x", seed, a, b, hs[a], hs[b])
				}
			}
		}
		// Every row through memoByLayout: one entry per distinct key.
		m.reset()
		distinct := 0
		for i := range st.n {
			st.patchOf[i] = -1
			me, hit, ok := st.memoByLayout(i, -1, -1)
			if !ok {
				t.Fatalf("row %d not keyed by layout", i)
			}
			first := true
			for b := range i {
				if lays[b] == lays[i] && st.sameProjected(i, b, m.layouts.all[lays[i]].vpos) {
					first = false
					break
				}
			}
			if first {
				distinct++
			}
			if hit == first || (me == nil) != hit {
				t.Fatalf("seed %d row %d: hit %v, first of its key %v", seed, i, hit, first)
			}
		}
		if len(m.entries) != distinct {
			t.Fatalf("seed %d: %d entries for %d distinct keys", seed, len(m.entries), distinct)
		}
	}
}
