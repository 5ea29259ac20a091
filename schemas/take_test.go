package schemas

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
)

// takeCase is a type and JSON values of it to build arrays from, null among
// them.
type takeCase struct {
	dt   arrow.DataType
	vals []string
}

func takeCases() []takeCase {
	anyJSON := `{"type": 1, "str": "s", "int": 7, "double": 0.5, "bool": true, "bytes": "AQI="}`
	anyLong := strings.Replace(anyJSON, `"s"`, `"a longer string value"`, 1)
	nums := []string{"1", "null", "0", "7", "100"}
	return []takeCase{
		{arrow.PrimitiveTypes.Int8, []string{"1", "null", "-128", "127"}},
		{arrow.PrimitiveTypes.Int16, []string{"1", "null", "-3", "30000"}},
		{arrow.PrimitiveTypes.Int32, []string{"1", "null", "-3", "4"}},
		{arrow.PrimitiveTypes.Int64, []string{"1", "null", "-9223372036854775808", "4"}},
		{arrow.PrimitiveTypes.Uint8, []string{"1", "null", "255", "0"}},
		{arrow.PrimitiveTypes.Uint16, nums},
		{arrow.PrimitiveTypes.Uint32, []string{"1", "null", "4294967295", "0"}},
		{arrow.PrimitiveTypes.Uint64, []string{"1", "2", "null", "18446744073709551615"}},
		{arrow.PrimitiveTypes.Float32, []string{"1.5", "null", "-0", "7"}},
		{arrow.PrimitiveTypes.Float64, []string{"1.5", "null", "-0", "1e300"}},
		{arrow.FixedWidthTypes.Float16, []string{"1.5", "null", "-2", "0"}},
		{arrow.FixedWidthTypes.Date32, nums},
		{arrow.FixedWidthTypes.Timestamp_ns, nums},
		{&arrow.Decimal128Type{Precision: 20, Scale: 2}, []string{`"1.25"`, "null", `"-99999.99"`, `"0"`}},
		{arrow.FixedWidthTypes.MonthDayNanoInterval, []string{`{"months": 1, "days": 2, "nanoseconds": 3}`, "null", `{"months": -1, "days": 0, "nanoseconds": 9}`}},
		{&arrow.FixedSizeBinaryType{ByteWidth: 3}, []string{`"YWJj"`, "null", `"eHl6"`}},
		{arrow.FixedWidthTypes.Boolean, []string{"true", "false", "null", "true"}},
		{arrow.BinaryTypes.String, []string{`"a"`, `""`, "null", `"hello world"`}},
		{arrow.BinaryTypes.Binary, []string{`"YQ=="`, `""`, "null", `"aGVsbG8="`}},
		{arrow.BinaryTypes.LargeString, []string{`"a"`, `""`, "null", `"xyz"`}},
		{arrow.BinaryTypes.LargeBinary, []string{`"YQ=="`, `""`, "null", `"eHl6"`}},
		{arrow.Null, []string{"null"}},
		{arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true}),
			[]string{`{"a": 1, "b": "x"}`, "null", `{"a": null, "b": "yy"}`, `{"a": 3, "b": null}`}},
		{arrow.StructOf(arrow.Field{Name: "l", Type: arrow.ListOf(arrow.FixedWidthTypes.Boolean), Nullable: true}, arrow.Field{Name: "f", Type: &arrow.FixedSizeBinaryType{ByteWidth: 2}, Nullable: true}),
			[]string{`{"l": [true, null], "f": "AAE="}`, "null", `{"l": null, "f": null}`, `{"l": [], "f": "//8="}`}},
		{arrow.ListOf(arrow.PrimitiveTypes.Int32), []string{"[1, 2]", "[]", "null", "[null, 5, 6]"}},
		{arrow.ListOf(arrow.BinaryTypes.String), []string{`["a", "bc"]`, "[]", "null", `[null, "d"]`}},
		{arrow.ListOf(arrow.ListOf(arrow.BinaryTypes.String)), []string{`[["a"], [], null]`, "[]", "null", `[["b", "c"]]`}},
		{arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Int16), []string{"[1, 2]", "null", "[null, 4]"}},
		{arrow.FixedSizeListOf(2, arrow.BinaryTypes.String), []string{`["a", "bc"]`, "null", `[null, ""]`}},
		{arrow.MapOf(arrow.BinaryTypes.String, arrow.ListOf(arrow.PrimitiveTypes.Int64)), []string{`[{"key": "k", "value": [1]}]`, "[]", "null", `[{"key": "a", "value": null}, {"key": "b", "value": [2, 3]}]`}},
		{AnyValueType, []string{anyJSON, "null", anyLong}},
		{AttributesType, []string{`[{"key": "k", "value": ` + anyJSON + `}]`, "[]", "null",
			`[{"key": "k1", "value": ` + anyLong + `}, {"key": "k2", "value": null}]`}},
		{arrow.ListOf(arrow.StructOf(arrow.Field{Name: "x", Type: arrow.ListOf(arrow.PrimitiveTypes.Int8), Nullable: true})),
			[]string{`[{"x": [1]}, {"x": null}]`, "null", `[]`, `[{"x": [2, 3]}]`}},
	}
}

// takeSelection is a name and runs of rows of an array of n rows.
type takeSelection struct {
	name string
	rs   [][2]int
}

// selections are the shapes callers pass: none, all rows, each row, rows
// backwards, a filter's sorted runs, short runs in any order that overlap
// and repeat (some empty), a few long runs, and the dictionary expansion's
// indexes with repeats.
func selections(r *rand.Rand, n int) []takeSelection {
	each := func(rev bool) [][2]int {
		rs := make([][2]int, n)
		for i := range rs {
			j := i
			if rev {
				j = n - 1 - i
			}
			rs[i] = [2]int{j, j + 1}
		}
		return rs
	}
	var sorted, scattered, idx [][2]int
	for lo := 0; lo < n; {
		hi := min(n, lo+1+r.IntN(5))
		if r.IntN(3) != 0 {
			sorted = append(sorted, [2]int{lo, hi})
		}
		lo = hi
	}
	for range r.IntN(n + 1) {
		lo := r.IntN(n + 1)
		scattered = append(scattered, [2]int{lo, lo + r.IntN(min(n-lo, 9)+1)})
	}
	var long [][2]int
	for range min(n, 4) {
		lo := r.IntN(n)
		long = append(long, [2]int{lo, lo + r.IntN(min(n-lo, 300)+1)})
	}
	var runs32 [][2]int32
	for range r.IntN(3*n + 1) {
		runs32 = appendRow(runs32, int32(r.IntN(n)))
	}
	for _, x := range runs32 {
		idx = append(idx, [2]int{int(x[0]), int(x[1])})
	}
	s := []takeSelection{
		{"none", nil},
		{"all", [][2]int{{0, n}}},
		{"each", each(false)},
		{"backwards", each(true)},
		{"filter", sorted},
		{"scattered", scattered},
		{"long runs", long},
		{"indexes", idx},
		{"empty runs", [][2]int{{0, 0}, {n, n}, {n / 2, n / 2}}},
	}
	if n > 0 {
		row := r.IntN(n)
		s = append(s, takeSelection{"one row repeated", [][2]int{{row, row + 1}, {row, row + 1}, {row, row + 1}}})
	}
	return s
}

// fromJSON builds an array of rows js.
func fromJSON(t *testing.T, mem memory.Allocator, dt arrow.DataType, js []string) arrow.Array {
	t.Helper()
	a, _, err := array.FromJSON(mem, dt, strings.NewReader("["+strings.Join(js, ",")+"]"))
	if err != nil {
		t.Fatalf("%s: %v", dt, err)
	}
	return a
}

// offsetChildren returns d with every child, at every depth, replaced by
// an equal one with a non-zero offset (the second half of the child
// concatenated with itself): arrays read or sliced by arrow come so.
func offsetChildren(t *testing.T, mem memory.Allocator, d arrow.ArrayData) arrow.ArrayData {
	t.Helper()
	children := make([]arrow.ArrayData, len(d.Children()))
	for k, c := range d.Children() {
		ca := array.MakeFromData(c)
		twice, err := array.Concatenate([]arrow.Array{ca, ca}, mem)
		if err != nil {
			t.Fatal(err)
		}
		half := array.NewSliceData(twice.Data(), int64(c.Len()), int64(2*c.Len()))
		children[k] = offsetChildren(t, mem, half)
		half.Release()
		twice.Release()
		ca.Release()
	}
	out := array.NewData(d.DataType(), d.Len(), d.Buffers(), children, d.NullN(), d.Offset())
	for _, c := range children {
		c.Release()
	}
	return out
}

// input is an array of rows js on mem, sliced to rows lo..hi-1; with deep,
// its children have offsets too.
func input(t *testing.T, mem memory.Allocator, dt arrow.DataType, js []string, lo, hi int, deep bool) arrow.ArrayData {
	t.Helper()
	full := fromJSON(t, mem, dt, js)
	defer full.Release()
	d := full.Data()
	if deep {
		d = offsetChildren(t, mem, d)
		defer d.Release()
	}
	return array.NewSliceData(d, int64(lo), int64(hi))
}

// checkTake takes sel from in on mem, as int or int32 runs, and compares
// the result with want. With release, in is released first, and what it
// freed allocated again: on a poisoned pool, a result that still used a
// buffer of in shows.
func checkTake[I rowIndex](t *testing.T, mem memory.Allocator, in arrow.ArrayData, sel takeSelection, want arrow.Array, release bool, what string) {
	t.Helper()
	rs := make([][2]I, len(sel.rs))
	for k, r := range sel.rs {
		rs[k] = [2]I{I(r[0]), I(r[1])}
	}
	gd := Take(mem, in, rs, nil)
	if !release {
		// Again with zeros, for the columns of one table: the same rows.
		z := NewZeros(in.Len())
		zd := Take(mem, in, rs, z)
		z.Release()
		checkTaken(t, mem, in, sel, rs, zd, want, false, what+", with zeros")
	}
	checkTaken(t, mem, in, sel, rs, gd, want, release, what)
}

// checkTaken compares gd, taken by rs from in, with want (see checkTake).
func checkTaken[I rowIndex](t *testing.T, mem memory.Allocator, in arrow.ArrayData, sel takeSelection, rs [][2]I, gd arrow.ArrayData, want arrow.Array, release bool, what string) {
	t.Helper()
	if release {
		in.Release()
		for range 4 {
			mem.Free(mem.Allocate(64 << 10))
		}
	}
	got := array.MakeFromData(gd)
	gd.Release()
	defer got.Release()
	what = fmt.Sprintf("%s, %s (%T)", what, sel.name, rs)
	if v, ok := got.(interface{ ValidateFull() error }); ok {
		if err := v.ValidateFull(); err != nil {
			t.Errorf("%s: invalid result: %v", what, err)
		}
	}
	if !array.Equal(got, want) || got.NullN() != want.NullN() {
		inStr := "(released)"
		if !release {
			a := array.MakeFromData(in)
			inStr = fmt.Sprint(a)
			a.Release()
		}
		t.Errorf("%s:\n  in %s\nruns %s\n got %s (%d nulls)\nwant %s (%d nulls)", what, short(inStr), short(sel.rs), short(got), got.NullN(), short(want), want.NullN())
	}
}

// short prints v, cut to a screenful.
func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// TestTake compares Take with arrays built from the rows it should select,
// for every type it supports, with and without nulls, on sliced inputs
// (and inputs whose children are slices too), for every shape of
// selection, with rows as int and as int32.
func TestTake(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range takeCases() {
		if !Takeable(c.dt) {
			t.Errorf("%s: not Takeable", c.dt)
			continue
		}
		for iter := range 24 {
			n := r.IntN(40)
			if iter%6 == 5 { // runs of more than a word of bits
				n = 100 + r.IntN(300)
			}
			js := make([]string, n)
			// One value for all rows at iterations 7, 15 and 23: null, zero
			// (or empty) where the type has such a value, another.
			same := [3]string{"null", c.vals[0], c.vals[r.IntN(len(c.vals))]}[iter/8]
			for _, v := range c.vals {
				if iter/8 == 1 && (v == "0" || v == `""` || v == "[]" || v == `"0"`) {
					same = v
				}
			}
			for i := range js {
				js[i] = c.vals[r.IntN(len(c.vals))]
				if iter%4 == 0 && js[i] == "null" && c.dt.ID() != arrow.NULL { // inputs without nulls
					js[i] = c.vals[0]
				}
				if iter%8 == 7 { // one value: all null, all zero or empty, or neither
					js[i] = same
				}
			}
			lo := 0
			if iter%3 != 0 && n > 0 {
				lo = r.IntN(n)
			}
			hi := lo + r.IntN(n-lo+1)
			deep := iter%2 == 1
			in := input(t, mem, c.dt, js, lo, hi, deep)
			for _, sel := range selections(r, hi-lo) {
				var rows []string
				for _, run := range sel.rs {
					rows = append(rows, js[lo+run[0]:lo+run[1]]...)
				}
				want := fromJSON(t, mem, c.dt, rows)
				what := fmt.Sprintf("%s, rows %d..%d of %d (deep offsets %v)", c.dt, lo, hi, n, deep)
				checkTake[int](t, mem, in, sel, want, false, what)
				checkTake[int32](t, mem, in, sel, want, false, what)
				want.Release()
			}
			in.Release()
		}
	}
}

// TestTakePoisoned is TestTake on a poisoned pool with the input released
// before the result is read, on arrays large enough that their buffers
// come from the pool: a result that kept a buffer of its input would read
// the poison. Inputs are copies of one array per type; the expected rows
// are slices of it concatenated.
func TestTakePoisoned(t *testing.T) {
	pool := arrowpool.NewPoisoned()
	r := rand.New(rand.NewPCG(5, 6))
	for k, c := range takeCases() {
		n := 3000 + r.IntN(100)
		js := make([]string, n)
		for i := range js {
			js[i] = c.vals[r.IntN(len(c.vals))]
		}
		lo, deep := 1+r.IntN(50), k%2 == 0
		ref := input(t, memory.DefaultAllocator, c.dt, js, lo, n, deep)
		refArr := array.MakeFromData(ref)
		for _, sel := range selections(r, n-lo) {
			parts := []arrow.Array{array.NewSlice(refArr, 0, 0)}
			for _, run := range sel.rs {
				parts = append(parts, array.NewSlice(refArr, int64(run[0]), int64(run[1])))
			}
			want, err := array.Concatenate(parts, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				p.Release()
			}
			what := fmt.Sprintf("%s, rows %d..%d (deep offsets %v), poisoned", c.dt, lo, n, deep)
			checkTake[int](t, pool, poolCopy(t, pool, refArr, deep), sel, want, true, what)
			checkTake[int32](t, pool, poolCopy(t, pool, refArr, deep), sel, want, true, what)
			want.Release()
		}
		refArr.Release()
		ref.Release()
	}
	if pool.Live() != 0 {
		t.Errorf("%d bytes still allocated", pool.Live())
	}
}

// poolCopy copies a into buffers of pool, leaving a row before it, so that
// the copy has an offset; with deep, its children have offsets too.
func poolCopy(t *testing.T, pool memory.Allocator, a arrow.Array, deep bool) arrow.ArrayData {
	t.Helper()
	head := array.NewSlice(a, 0, 1)
	defer head.Release()
	c, err := array.Concatenate([]arrow.Array{head, a}, pool)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	d := c.Data()
	if deep {
		d = offsetChildren(t, pool, d)
		defer d.Release()
	}
	return array.NewSliceData(d, 1, int64(c.Len()))
}

func TestTakeable(t *testing.T) {
	for _, s := range []*arrow.Schema{LogRecordsSchema, SpansSchema, DataPointsSchema, ResourcesSchema, ScopesSchema, MetricsSchema} {
		for _, f := range s.Fields() {
			if !Takeable(f.Type) {
				t.Errorf("%s: column %s (%s) not takeable", s.Metadata(), f.Name, f.Type)
			}
		}
	}
	for _, dt := range []arrow.DataType{
		&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String},
		arrow.SparseUnionOf([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int32}}, []arrow.UnionTypeCode{0}),
		arrow.DenseUnionOf([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int32}}, []arrow.UnionTypeCode{0}),
		arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String),
		&takeTestExt{arrow.ExtensionBase{Storage: arrow.PrimitiveTypes.Int32}},
		arrow.LargeListOf(arrow.PrimitiveTypes.Int32),
		arrow.ListViewOf(arrow.PrimitiveTypes.Int32),
		arrow.BinaryTypes.StringView,
		arrow.StructOf(arrow.Field{Name: "d", Type: arrow.FixedWidthTypes.Date32}, arrow.Field{Name: "s", Type: arrow.BinaryTypes.StringView}),
		arrow.ListOf(arrow.BinaryTypes.StringView),
		arrow.FixedSizeListOf(2, arrow.BinaryTypes.StringView),
	} {
		if Takeable(dt) {
			t.Errorf("%s takeable", dt)
		}
	}
}

// takeTestExt is an extension type, which Take does not support.
type takeTestExt struct{ arrow.ExtensionBase }

func (*takeTestExt) ArrayType() reflect.Type { return reflect.TypeOf(array.ExtensionArrayBase{}) }
func (*takeTestExt) ExtensionName() string   { return "take-test" }
func (*takeTestExt) Serialize() string       { return "" }
func (e *takeTestExt) ExtensionEquals(o arrow.ExtensionType) bool {
	return o.ExtensionName() == e.ExtensionName()
}
func (e *takeTestExt) Deserialize(arrow.DataType, string) (arrow.ExtensionType, error) {
	return e, nil
}

// TestRunsIn: runs built over the ids they replace, as the column codec
// does, are the runs built in a slice of their own.
func TestRunsIn(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		v := make([]uint64, r.IntN(50))
		for i := range v {
			if i > 0 && r.IntN(2) == 0 {
				v[i] = v[i-1] + 1
			} else {
				v[i] = uint64(r.IntN(20))
			}
		}
		var want [][2]int32
		for _, x := range v {
			want = appendRow(want, int32(x))
		}
		got := runsIn(v)
		for _, x := range v {
			got = appendRow(got, int32(x))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("ids %v: runs %v, want %v", v, got, want)
		}
	}
}

// BenchmarkTake is Take on its callers' shapes, on the worker's pool:
// ReadBatch's expansion of a dictionary-coded attributes column (the ids of
// the corpus, whose consecutive rows merge into runs, and the same ids
// shuffled: a run per row), and the rule engine's cut of every column of
// the items table by a filter that keeps about two rows in three.
func BenchmarkTake(b *testing.B) {
	mem := arrowpool.New()
	for _, c := range corpora() {
		bld := NewBuilder(c.Signal, memory.NewGoAllocator())
		if _, err := bld.Append(c.Body); err != nil {
			b.Fatal(err)
		}
		batch := bld.Build()
		bld.Release()
		items := batch.Items
		n := int(items.NumRows())
		dist, ids := attributeSets(items.Column(items.Schema().FieldIndices("attributes")[0]))
		r := rand.New(rand.NewPCG(9, 10))
		shuffled := append([]int32(nil), ids...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, s := range []struct {
			name string
			ids  []int32
		}{{"expand", ids}, {"expand-shuffled", shuffled}} {
			var rs [][2]int32
			for _, i := range s.ids {
				rs = appendRow(rs, i)
			}
			b.Run(s.name+"/"+c.Name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					Take(mem, dist.Data(), rs, nil).Release()
				}
				b.ReportMetric(float64(b.N)*float64(len(s.ids))/b.Elapsed().Seconds(), "rows/s")
			})
		}
		var rs [][2]int
		for lo := 0; lo < n; {
			hi := min(n, lo+1+r.IntN(8))
			if r.IntN(3) != 0 {
				rs = append(rs, [2]int{lo, hi})
			}
			lo = hi
		}
		b.Run("filter/"+c.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, col := range items.Columns() {
					Take(mem, col.Data(), rs, nil).Release()
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "rows/s")
		})
		dist.Release()
		batch.Release()
	}
}

// attributeSets returns the distinct rows of an attributes column, in the
// order of their first rows, and each row's id among them: the table and
// ids that WriteBatch writes for it.
func attributeSets(col arrow.Array) (arrow.Array, []int32) {
	sets := make(map[string]int32)
	var reps [][2]int32
	ids := make([]int32, col.Len())
	var k []byte
	for i := range col.Len() {
		k = appendKey(k[:0], col, i)
		id, ok := sets[string(k)]
		if !ok {
			id = int32(len(sets))
			sets[string(k)] = id
			reps = appendRow(reps, int32(i))
		}
		ids[i] = id
	}
	d := Take(memory.NewGoAllocator(), col.Data(), reps, nil)
	defer d.Release()
	return array.MakeFromData(d), ids
}
