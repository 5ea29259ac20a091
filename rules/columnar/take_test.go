package columnar

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/schemas"
)

// TestTake compares take (buffer copies) with slices of the kept runs
// concatenated, for every column type the schemas use and more, with
// nulls, on inputs that are themselves slices (non-zero offsets).
func TestTake(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	anyJSON := `{"type": 1, "str": "s", "int": 0, "double": 0, "bool": false, "bytes": ""}`
	cases := []struct {
		dt   arrow.DataType
		vals []string // JSON values; null included
	}{
		{arrow.PrimitiveTypes.Int32, []string{"1", "null", "-3", "4"}},
		{arrow.PrimitiveTypes.Uint64, []string{"1", "2", "null", "18446744073709551615"}},
		{arrow.PrimitiveTypes.Float64, []string{"1.5", "null", "-0", "7"}},
		{arrow.PrimitiveTypes.Uint8, []string{"1", "null", "255", "0"}},
		{arrow.FixedWidthTypes.Boolean, []string{"true", "false", "null", "true"}},
		{arrow.BinaryTypes.String, []string{`"a"`, `""`, "null", `"hello world"`}},
		{arrow.BinaryTypes.Binary, []string{`"YQ=="`, `""`, "null", `"aGVsbG8="`}},
		{arrow.BinaryTypes.LargeString, []string{`"a"`, `""`, "null", `"xyz"`}},
		{&arrow.FixedSizeBinaryType{ByteWidth: 3}, []string{`"YWJj"`, "null", `"eHl6"`}},
		{arrow.Null, []string{"null"}},
		{arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true}),
			[]string{`{"a": 1, "b": "x"}`, "null", `{"a": null, "b": "yy"}`, `{"a": 3, "b": null}`}},
		{arrow.ListOf(arrow.PrimitiveTypes.Int32), []string{"[1, 2]", "[]", "null", "[null, 5, 6]"}},
		{arrow.ListOf(arrow.BinaryTypes.String), []string{`["a", "bc"]`, "[]", "null", `[null, "d"]`}},
		{arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Int16), []string{"[1, 2]", "null", "[null, 4]"}},
		{schemas.AnyValueType, []string{anyJSON, "null", strings.Replace(anyJSON, `"s"`, `"longer"`, 1)}},
		{schemas.AttributesType, []string{`[{"key": "k", "value": ` + anyJSON + `}]`, "[]", "null",
			`[{"key": "k1", "value": ` + anyJSON + `}, {"key": "k2", "value": null}]`}},
		{arrow.ListOf(arrow.StructOf(arrow.Field{Name: "x", Type: arrow.ListOf(arrow.PrimitiveTypes.Int8), Nullable: true})),
			[]string{`[{"x": [1]}, {"x": null}]`, "null", `[]`, `[{"x": [2, 3]}]`}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		if !takeable(c.dt) {
			t.Errorf("%s: not takeable", c.dt)
			continue
		}
		for iter := range 50 {
			n := 1 + r.IntN(60)
			js := make([]string, n)
			for i := range js {
				js[i] = c.vals[r.IntN(len(c.vals))]
				if iter%5 == 0 && js[i] == "null" { // some inputs without nulls
					js[i] = c.vals[0]
				}
			}
			full, _, err := array.FromJSON(mem, c.dt, strings.NewReader("["+strings.Join(js, ",")+"]"))
			if err != nil {
				t.Fatalf("%s: %v", c.dt, err)
			}
			lo := r.IntN(n)
			a := array.NewSlice(full, int64(lo), int64(n))
			var idx []int32
			for i := range a.Len() {
				if r.IntN(3) != 0 {
					idx = append(idx, int32(i))
				}
			}
			rs := runs(nil, idx)
			got, err := take(mem, a, rs, nil)
			if err != nil {
				t.Fatal(err)
			}
			parts := make([]arrow.Array, 0, len(rs)+1)
			for _, run := range rs {
				parts = append(parts, array.NewSlice(a, int64(run[0]), int64(run[1])))
			}
			if len(parts) == 0 {
				parts = append(parts, array.NewSlice(a, 0, 0))
			}
			want, err := array.Concatenate(parts, mem)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := got.(interface{ ValidateFull() error }); ok && v.ValidateFull() != nil {
				t.Errorf("%s: invalid: %v", c.dt, v.ValidateFull())
			}
			if !array.Equal(got, want) || got.NullN() != want.NullN() {
				t.Errorf("%s: runs %v of %v:\n got %v\nwant %v", c.dt, rs, a, got, want)
			}
			for _, p := range parts {
				p.Release()
			}
			got.Release()
			want.Release()
			a.Release()
			full.Release()
		}
	}
}

func TestTakeable(t *testing.T) {
	for _, s := range []*arrow.Schema{schemas.LogRecordsSchema, schemas.SpansSchema, schemas.DataPointsSchema, schemas.ResourcesSchema, schemas.ScopesSchema, schemas.MetricsSchema} {
		for _, f := range s.Fields() {
			if !takeable(f.Type) {
				t.Errorf("%s: column %s (%s) not takeable", s.Metadata(), f.Name, f.Type)
			}
		}
	}
	if takeable(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}) {
		t.Error("dictionary takeable")
	}
}
