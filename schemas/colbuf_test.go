package schemas

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestBatchColumns: the batch columns build the arrays an Arrow builder
// builds from the same values, values under nulls and the bits of -0 and
// NaN included, whether the values run (all equal) or not, and start each
// batch afresh.
func TestBatchColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	negZero, nan := math.Float64bits(math.Copysign(0, -1)), math.Float64bits(math.NaN())|1
	cases := [][]uint64{
		nil, {0}, {0, 0, 0}, {7, 7}, {0, 0, negZero}, {negZero, 0}, {nan, nan, 1}, {5, 0, 0, 5},
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
	}
	valid := [][]bool{nil, {true}, {false}, {true, false}, {false, true}, {false, false, true, true, false, true, true, true, false}}
	c := newRunCol[uint64](mem, arrow.PrimitiveTypes.Float64)
	o := newOptCol[uint64](mem, arrow.PrimitiveTypes.Float64)
	bc := newBinCol(mem, arrow.BinaryTypes.Binary)
	for _, vals := range cases {
		for _, vpat := range valid {
			want := array.NewFloat64Builder(mem)
			wantOpt := array.NewFloat64Builder(mem)
			wantBin := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
			for i, v := range vals {
				c.add(v)
				ok := len(vpat) == 0 || vpat[i%len(vpat)]
				o.add(v, ok)
				want.Append(math.Float64frombits(v))
				wantOpt.AppendValues([]float64{math.Float64frombits(v)}, []bool{ok})
				var by []byte
				if v%3 == 1 {
					by = []byte{byte(v), 1}
				}
				bc.add(by)
				wantBin.Append(by)
			}
			z := NewZeros(len(vals)) // the columns' zero buffers share one
			for _, pair := range [][2]arrow.Array{{c.newArray(z), want.NewArray()}, {o.newArray(z), wantOpt.NewArray()}, {bc.newArray(z), wantBin.NewArray()}} {
				got, exp := pair[0], pair[1]
				f, isFloat := got.(*array.Float64)
				if got.Len() != exp.Len() || got.NullN() != exp.NullN() || !isFloat && !array.Equal(got, exp) {
					t.Errorf("values %v valid %v: got %v, want %v", vals, vpat, got, exp)
				}
				for i := range got.Len() {
					if got.IsValid(i) != exp.IsValid(i) {
						t.Errorf("values %v valid %v: row %d validity differs", vals, vpat, i)
					}
				}
				if isFloat {
					for i, x := range f.Float64Values() {
						if y := exp.(*array.Float64).Float64Values()[i]; math.Float64bits(x) != math.Float64bits(y) {
							t.Errorf("values %v valid %v: row %d has bits %x, want %x", vals, vpat, i, math.Float64bits(x), math.Float64bits(y))
						}
					}
				}
				got.Release()
				exp.Release()
			}
			z.Release()
			want.Release()
			wantOpt.Release()
			wantBin.Release()
		}
	}
}

// TestListColumn: a listCol builds the list array a ListBuilder builds from
// the same rows, whatever rows have values (none, the first, the last, runs
// of empty rows, a row started twice), batch after batch, batches without
// values included (which share one empty values array).
func TestListColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	typ := arrow.ListOf(arrow.PrimitiveTypes.Uint64)
	rb := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{{Name: "l", Type: typ}}, nil))
	defer rb.Release()
	var rows int
	c := newListCol(mem, rb.Field(0), &rows)
	defer c.release()
	vb := c.vb.(*array.Uint64Builder)
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		want := array.NewListBuilder(mem, arrow.PrimitiveTypes.Uint64)
		wv := want.ValueBuilder().(*array.Uint64Builder)
		rows = 0
		n, dense := r.IntN(40), r.IntN(4)
		for range n {
			want.Append(true)
			for range r.IntN(3) { // appends of values to the row
				if r.IntN(4) >= dense {
					continue
				}
				c.start(rows)
				for range r.IntN(3) {
					x := r.Uint64()
					vb.Append(x)
					wv.Append(x)
				}
			}
			rows++
		}
		z := NewZeros(rows)
		got, exp := c.newArray(z), want.NewArray()
		z.Release()
		if got.Len() != exp.Len() || got.NullN() != 0 || !array.Equal(got, exp) {
			t.Fatalf("got %v, want %v", got, exp)
		}
		got.Release()
		exp.Release()
		want.Release()
	}
}

// TestColumnFill: filling a column to n rows builds what adding zeros (under
// nulls) to it would, whatever was added before, batch after batch.
func TestColumnFill(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := newRunCol[uint64](mem, arrow.PrimitiveTypes.Uint64)
	o := newOptCol[uint64](mem, arrow.PrimitiveTypes.Uint64)
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		want := array.NewUint64Builder(mem)
		wantOpt := array.NewUint64Builder(mem)
		for range r.IntN(6) {
			if r.IntN(2) == 0 {
				n := c.n + r.IntN(5)
				c.fill(n)
				o.fill(n)
				for want.Len() < n {
					want.Append(0)
					wantOpt.AppendValues([]uint64{0}, []bool{false})
				}
				continue
			}
			for range r.IntN(4) {
				x, ok := uint64(r.IntN(3)), r.IntN(3) > 0
				c.add(x)
				o.add(x, ok)
				want.Append(x)
				wantOpt.AppendValues([]uint64{x}, []bool{ok})
			}
		}
		z := NewZeros(c.n)
		for _, pair := range [][2]arrow.Array{{c.newArray(z), want.NewArray()}, {o.newArray(z), wantOpt.NewArray()}} {
			got, exp := pair[0], pair[1]
			if got.Len() != exp.Len() || got.NullN() != exp.NullN() || !array.Equal(got, exp) {
				t.Fatalf("got %v, want %v", got, exp)
			}
			// values under nulls too
			g, e := got.(*array.Uint64).Uint64Values(), exp.(*array.Uint64).Uint64Values()
			for i := range g {
				if g[i] != e[i] {
					t.Fatalf("row %d: got %d, want %d", i, g[i], e[i])
				}
			}
			got.Release()
			exp.Release()
		}
		z.Release()
		want.Release()
		wantOpt.Release()
	}
}
