package schemas

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// randomSet is a set of up to 4 attributes from a small vocabulary, so that
// sets of a pool differ by one key, value, type or order.
func randomSet(r *rand.Rand) []*common.KeyValue {
	keys := []string{"a", "b", "ab", ""}
	var kvs []*common.KeyValue
	for range r.IntN(5) {
		var v *common.AnyValue
		switch r.IntN(5) {
		case 0:
			v = &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: []string{"", "x", "xy", "y"}[r.IntN(4)]}}
		case 1:
			v = &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(r.IntN(2))}}
		case 2:
			v = &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: []float64{0, 1.5, -1.5}[r.IntN(3)]}}
		case 3:
			v = &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: r.IntN(2) == 0}}
		case 4:
			v = &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: []byte("xyz")[:r.IntN(3)]}}
		}
		kvs = append(kvs, &common.KeyValue{Key: keys[r.IntN(len(keys))], Value: v})
	}
	return kvs
}

// randomSetRows returns n rows of sets drawn from a pool of k: at random,
// in runs, or in a repeated sequence (the orders attrSets guesses from).
func randomSetRows(r *rand.Rand, n, k int) [][]*common.KeyValue {
	pool := make([][]*common.KeyValue, k)
	for i := range pool {
		pool[i] = randomSet(r)
	}
	period := make([]int, 1+r.IntN(2*k))
	for i := range period {
		period[i] = r.IntN(k)
	}
	rows := make([][]*common.KeyValue, 0, n)
	for len(rows) < n {
		switch r.IntN(3) {
		case 0:
			rows = append(rows, pool[r.IntN(k)])
		case 1:
			s := pool[r.IntN(k)]
			for range 1 + r.IntN(5) {
				rows = append(rows, s)
			}
		case 2:
			for _, p := range period {
				if r.IntN(10) == 0 {
					p = r.IntN(k)
				}
				rows = append(rows, pool[p])
			}
		}
	}
	return rows[:n]
}

// TestAttrSetsRandom: attrSets finds the sets (ids and first rows) that
// mapSetsGeneric, the plain path through appendKey, finds, on columns of
// sets repeated at random, in runs and in sequences, whole and sliced.
func TestAttrSetsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 77))
	e := &encoder{mem: memory.NewGoAllocator()}
	for it := range 400 {
		n, k := 2+r.IntN(300), 1+r.IntN(40)
		rows := randomSetRows(r, n, k)
		var pts []*metrics.NumberDataPoint
		for _, s := range rows {
			pts = append(pts, &metrics.NumberDataPoint{Attributes: s})
		}
		req := &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{
			ScopeMetrics: []*metrics.ScopeMetrics{{Metrics: []*metrics.Metric{{Name: "m",
				Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}}}}}}}}}
		body, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		bl := NewBuilder(otlpwire.Metrics, memory.NewGoAllocator())
		if _, err := bl.Append(body); err != nil {
			t.Fatal(err)
		}
		b := bl.Build()
		bl.Release()
		col := b.Items.Column(PtAttributes).(*array.Map)
		from, to := 0, n
		if it%2 == 1 {
			from = r.IntN(n - 1)
			to = from + 2 + r.IntN(n-from-1)
		}
		m := array.NewSlice(col, int64(from), int64(to)).(*array.Map)
		name := fmt.Sprintf("case %d (n %d, k %d, rows %d..%d)", it, n, k, from, to)
		got, want := make([]uint64, m.Len()), make([]uint64, m.Len())
		reps, ok := e.attrSets(m, m.Len()/2, got)
		if !ok {
			t.Fatalf("%s: attrSets does not take the column", name)
		}
		reps = slices.Clone(reps)
		wantReps := e.mapSetsGeneric(m, m.Len()/2, want)
		if !slices.Equal(reps, wantReps) {
			t.Fatalf("%s: first rows %v, want %v", name, reps, wantReps)
		}
		if reps != nil && !slices.Equal(got, want) {
			t.Fatalf("%s: ids %v, want %v", name, got, want)
		}
		m.Release()
		b.Release()
	}
}

// TestStrDictRandom: strDict finds the distinct values (ids and first rows,
// or nil past the limit) that a map finds, on string columns whose values
// repeat at random, in runs and in sequences.
func TestStrDictRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 78))
	e := &encoder{}
	words := []string{"", "a", "b", "ab", "ba", "abc", "http.route", "http.request.method"}
	for it := range 2000 {
		n, k := 1+r.IntN(200), 1+r.IntN(len(words))
		pool := r.Perm(len(words))[:k]
		period := make([]int, 1+r.IntN(2*k))
		for i := range period {
			period[i] = pool[r.IntN(k)]
		}
		var vals []string
		for len(vals) < n {
			switch r.IntN(3) {
			case 0:
				vals = append(vals, words[pool[r.IntN(k)]])
			case 1:
				w := words[pool[r.IntN(k)]]
				for range 1 + r.IntN(4) {
					vals = append(vals, w)
				}
			case 2:
				for _, p := range period {
					if r.IntN(8) == 0 {
						p = pool[r.IntN(k)]
					}
					vals = append(vals, words[p])
				}
			}
		}
		vals = vals[:n]
		// Offsets that do not start at 0, as in a sliced column.
		off0 := int32(r.IntN(3))
		offs := []int32{off0}
		var data []byte
		for _, v := range vals {
			data = append(data, v...)
			offs = append(offs, offs[len(offs)-1]+int32(len(v)))
		}
		limit := 1 + r.IntN(k+1)
		got := make([]uint64, n)
		reps := slices.Clone(e.strDict(offs, data, limit, got))
		seen := map[string]uint64{}
		var wantReps []int32
		want := make([]uint64, n)
		for i, v := range vals {
			id, ok := seen[v]
			if !ok {
				id = uint64(len(wantReps))
				seen[v] = id
				wantReps = append(wantReps, int32(i))
			}
			want[i] = id
		}
		if len(wantReps) > limit {
			wantReps = nil
		}
		if !slices.Equal(reps, wantReps) {
			t.Fatalf("case %d: first rows %v, want %v (values %q, limit %d)", it, reps, wantReps, vals, limit)
		}
		if reps != nil && !slices.Equal(got, want) {
			t.Fatalf("case %d: ids %v, want %v (values %q)", it, got, want, vals)
		}
	}
}

// TestConstantRandom: constant agrees with a plain scan on slices of every
// length up to 40 that differ from their first value in at most one place.
func TestConstantRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 1))
	for range 5000 {
		v := make([]uint64, 1+r.IntN(40))
		x := r.Uint64() >> r.IntN(64)
		for i := range v {
			v[i] = x
		}
		if r.IntN(2) == 0 {
			v[r.IntN(len(v))] ^= 1 << r.IntN(64)
		}
		want := !slices.ContainsFunc(v, func(y uint64) bool { return y != v[0] })
		if got := constant(v); got != want {
			t.Fatalf("constant(%v) = %v", v, got)
		}
	}
}

// BenchmarkAttrSets: attrSets on the points' attributes of metrics-k8s
// without debug_id (the workload's rules delete it): 40 sets in 10,000 rows.
func BenchmarkAttrSets(b *testing.B) {
	var body []byte
	for _, c := range corpora() {
		if c.Name == "metrics-k8s" {
			body = c.Body
		}
	}
	body, err := otlptest.WithoutPointAttr(body, "debug_id")
	if err != nil {
		b.Fatal(err)
	}
	bl := NewBuilder(otlpwire.Metrics, memory.NewGoAllocator())
	defer bl.Release()
	if _, err := bl.Append(body); err != nil {
		b.Fatal(err)
	}
	batch := bl.Build()
	defer batch.Release()
	col := batch.Items.Column(PtAttributes).(*array.Map)
	e := &encoder{}
	ids := make([]uint64, col.Len())
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if reps, ok := e.attrSets(col, col.Len()/2, ids); !ok || reps == nil {
			b.Fatal("no sets")
		}
	}
	n := float64(b.N * col.Len())
	b.ReportMetric(b.Elapsed().Seconds()*1e9/n, "ns/row")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/n, "cpu-ns/row")
}

// TestPackRandom: pack writes the bits a bit-by-bit packer writes, for
// every width, delta or frame of reference.
func TestPackRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	for it := range 3000 {
		b := 1 + r.IntN(64)
		delta := r.IntN(2) == 0
		v := make([]uint64, 2+r.IntN(70))
		base := r.Uint64()
		for i := range v {
			x := r.Uint64() >> (64 - b)
			if delta {
				if i > 0 {
					// zigzag(v[i]-v[i-1]) must fit b bits.
					v[i] = v[i-1] + uint64(unzigzag(x))
				} else {
					v[i] = base
				}
			} else {
				v[i] = base + x
			}
		}
		var want []byte
		nbits := 0
		put := func(x uint64) {
			for k := range b {
				if nbits%8 == 0 {
					want = append(want, 0)
				}
				want[len(want)-1] |= byte(x>>k&1) << (nbits % 8)
				nbits++
			}
		}
		for i := range v {
			switch {
			case !delta:
				put(v[i] - base)
			case i > 0:
				put(zigzag(int64(v[i] - v[i-1])))
			}
		}
		got := pack([]byte{0xAA}, v, b, delta, base)
		if got[0] != 0xAA || string(got[1:]) != string(want) {
			t.Fatalf("case %d (b %d, delta %v): %x, want %x", it, b, delta, got[1:], want)
		}
	}
}

// TestAnyNonZeroRandom: anyNonZero agrees with a plain scan.
func TestAnyNonZeroRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 3))
	for range 3000 {
		v := make([]uint64, r.IntN(40))
		if len(v) > 0 && r.IntN(2) == 0 {
			v[r.IntN(len(v))] = 1 << r.IntN(64)
		}
		want := slices.ContainsFunc(v, func(x uint64) bool { return x != 0 })
		if got := anyNonZero(v); got != want {
			t.Fatalf("anyNonZero(%v) = %v", v, got)
		}
	}
}
