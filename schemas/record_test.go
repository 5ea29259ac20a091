package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// TestRecordRoundTripRandom: batches of several random requests survive
// WriteBatch/ReadBatch column by column (array equality, which also covers the
// values under nulls that ToOTLP ignores) and come back with the in-memory
// schemas.
func TestRecordRoundTripRandom(t *testing.T) {
	iters := 200
	if testing.Short() {
		iters = 30
	}
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			g := otlptest.NewGen(1000+uint64(sig), otlptest.GenOptions{})
			for i := range iters {
				var reqs [][]byte
				for range 1 + g.Rand().IntN(4) {
					reqs = append(reqs, g.Request(sig))
				}
				batch, got := writeRead(t, sig, mem, reqs...)
				want := batch.schemas()
				for k, rec := range batch.tables() {
					g := got.tables()[k]
					if !g.Schema().Equal(want[k]) {
						t.Fatalf("iteration %d table %d: schema %s", i, k, g.Schema())
					}
					for c := range rec.Columns() {
						if !sameRows(rec.Column(c), g.Column(c)) {
							t.Fatalf("iteration %d table %d column %s differs:\n%v\n%v", i, k, rec.Schema().Field(c).Name, rec.Column(c), g.Column(c))
						}
						if err := validateFull(g.Column(c)); err != nil {
							t.Fatalf("iteration %d table %d column %d: %v", i, k, c, err)
						}
					}
				}
				batch.Release()
				got.Release()
			}
		})
	}
}

// TestRecordSliced: WriteBatch of a batch whose records are slices (offsets != 0)
// writes the slice.
func TestRecordSliced(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		g := otlptest.NewGen(77+uint64(sig), otlptest.GenOptions{})
		b := NewBuilder(sig, nil)
		for range 4 {
			if _, err := b.Append(g.Request(sig)); err != nil {
				t.Fatal(err)
			}
		}
		batch := b.Build()
		b.Release()
		n := batch.Items.NumRows()
		sl := &Batch{Signal: sig, Resources: batch.Resources, Scopes: batch.Scopes, Metrics: batch.Metrics, Items: batch.Items.NewSlice(n/3, n-n/4)}
		var buf bytes.Buffer
		if err := WriteBatch(&buf, sl); err != nil {
			t.Fatal(err)
		}
		got, err := ReadBatch(buf.Bytes(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for c := range sl.Items.Columns() {
			if !sameRows(sl.Items.Column(c), got.Items.Column(c)) {
				t.Fatalf("%v: column %d differs", sig, c)
			}
		}
		sl.Items.Release()
		got.Release()
		batch.Release()
	}
}

func TestReadBatchRejects(t *testing.T) {
	body := otlptest.NewGen(5, otlptest.GenOptions{}).Request(otlpwire.Metrics)
	b := NewBuilder(otlpwire.Metrics, nil)
	defer b.Release()
	if _, err := b.Append(body); err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	var buf bytes.Buffer
	if err := WriteBatch(&buf, batch); err != nil {
		t.Fatal(err)
	}
	v := buf.Bytes()
	for _, bad := range [][]byte{nil, v[:9], v[:len(v)-1], append(append([]byte{}, v[:9]...), 7), append(append([]byte{}, v...), 0)} {
		if _, err := ReadBatch(bad, nil); !errors.Is(err, ErrSchema) {
			t.Errorf("ReadBatch(%d bytes) = %v, want ErrSchema", len(bad), err)
		}
	}
	// a frame that decompresses but holds garbage
	garbage := zenc().EncodeAll([]byte{5, 0, 1, 2, 3, 200, 7}, []byte(recordMagic+Version+"\x00\x02"))
	if _, err := ReadBatch(garbage, nil); !errors.Is(err, ErrSchema) {
		t.Errorf("garbage: %v", err)
	}
}

// recordSeeds are processed values of every signal (one with templated log
// bodies) and their uncompressed payloads.
func recordSeeds(tb testing.TB) (values, payloads [][]byte, sigs []otlpwire.Signal) {
	add := func(sig otlpwire.Signal, body []byte) {
		b := NewBuilder(sig, nil)
		defer b.Release()
		if _, err := b.Append(body); err != nil {
			tb.Fatal(err)
		}
		batch := b.Build()
		defer batch.Release()
		var buf bytes.Buffer
		if err := WriteBatch(&buf, batch); err != nil {
			tb.Fatal(err)
		}
		raw, err := zdec().DecodeAll(buf.Bytes()[len(recordMagic)+len(Version)+2:], nil)
		if err != nil {
			tb.Fatal(err)
		}
		values, payloads, sigs = append(values, buf.Bytes()), append(payloads, raw), append(sigs, sig)
		// and the same uncompressed (format 4)
		v4, err := AppendBatchRaw(nil, batch)
		if err != nil {
			tb.Fatal(err)
		}
		values = append(values, v4)
	}
	for _, sig := range otlpwire.Signals {
		add(sig, otlptest.NewGen(9+uint64(sig), otlptest.GenOptions{}).Request(sig))
	}
	add(otlpwire.Logs, templatedLogs(40))
	return values, payloads, sigs
}

// TestAppendBatchRaw: format 4 is WriteBatch's envelope and its frame's
// content, and reads as the same batch, whole and by set.
func TestAppendBatchRaw(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		for _, body := range [][]byte{otlptest.NewGen(21+uint64(sig), otlptest.GenOptions{}).Request(sig), otlptest.Request(sig, otlptest.Shape{Resources: 2, Items: 3, Points: 4})} {
			b := NewBuilder(sig, nil)
			if _, err := b.Append(body); err != nil {
				t.Fatal(err)
			}
			batch := b.Build()
			b.Release()
			var w bytes.Buffer
			if err := WriteBatch(&w, batch); err != nil {
				t.Fatal(err)
			}
			h := len(recordMagic) + len(Version) + 1
			payload, err := zdec().DecodeAll(w.Bytes()[h+1:], nil)
			if err != nil {
				t.Fatal(err)
			}
			v4, err := AppendBatchRaw([]byte("x"), batch)
			batch.Release()
			if err != nil {
				t.Fatal(err)
			}
			want := append(append(append([]byte("x"), w.Bytes()[:h]...), recordFormatRaw), payload...)
			if !bytes.Equal(v4, want) {
				t.Fatalf("%s: format 4 is not the envelope and the payload (%d bytes, want %d)", sig, len(v4), len(want))
			}
			for _, read := range []func([]byte, memory.Allocator) (*Batch, error){ReadBatch, ReadBatchSets} {
				got, err := read(v4[1:], nil)
				if err != nil {
					t.Fatalf("%s: %v", sig, err)
				}
				var again bytes.Buffer
				err = WriteBatch(&again, got)
				got.Release()
				if err != nil || !bytes.Equal(again.Bytes(), w.Bytes()) {
					t.Fatalf("%s: format 4 read back writes another record (%v)", sig, err)
				}
			}
		}
	}
}

// checkDecoded: a batch that decoded has valid columns and ToOTLP does not
// panic on it (it may reject ids out of range).
func checkDecoded(t *testing.T, b *Batch, err error) {
	if err != nil {
		if !errors.Is(err, ErrSchema) {
			t.Fatalf("error kind: %v", err)
		}
		return
	}
	defer b.Release()
	for _, r := range b.tables() {
		for _, c := range r.Columns() {
			if err := validateFull(c); err != nil {
				t.Fatalf("invalid column: %v", err)
			}
		}
	}
	if tb := b.ItemAttrSetTable; tb != nil {
		if err := validateFull(tb); err != nil {
			t.Fatalf("invalid set table: %v", err)
		}
		for i, s := range b.ItemAttrSets {
			if int(s) >= tb.Len() {
				t.Fatalf("item %d: set %d of a table of %d", i, s, tb.Len())
			}
		}
		if _, err := ToOTLP(b, nil); err == nil {
			t.Fatal("ToOTLP wrote a batch read by set")
		}
		return
	}
	_, _ = ToOTLP(b, nil)
}

// FuzzReadBatch: ReadBatch of any bytes errors or returns a batch that ToOTLP
// can write; it never panics.
func FuzzReadBatch(f *testing.F) {
	values, _, _ := recordSeeds(f)
	for _, v := range values {
		f.Add(v)
	}
	old := maxDecodeElems
	maxDecodeElems = 1 << 20
	defer func() { maxDecodeElems = old }()
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadBatch(data, nil)
		checkDecoded(t, b, err)
	})
}

// FuzzDecodeTables is FuzzReadBatch after decompression: mutations reach the
// column codec directly instead of mostly breaking the zstd frame. A batch
// read by set is written (WriteBatch) as the same batch read in full.
func FuzzDecodeTables(f *testing.F) {
	_, payloads, sigs := recordSeeds(f)
	for i, p := range payloads {
		f.Add(uint8(sigs[i]), p)
		f.Add(uint8(sigs[i])|0x80, p) // read by set
	}
	old := maxDecodeElems
	maxDecodeElems = 1 << 20
	defer func() { maxDecodeElems = old }()
	f.Fuzz(func(t *testing.T, sig uint8, raw []byte) {
		// The high bit reads by set (ReadBatchSets).
		s := otlpwire.Signal(sig & 0x7f % 3)
		b, err := decodeTables(&Batch{Signal: s}, raw, memory.DefaultAllocator, recordFormat, sig&0x80 != 0)
		if err == nil && b.ItemAttrSetTable != nil {
			// Written as the batch read in full is.
			full, err := decodeTables(&Batch{Signal: s}, raw, memory.DefaultAllocator, recordFormat, false)
			if err == nil {
				var bySet, whole bytes.Buffer
				err1, err2 := WriteBatch(&bySet, b), WriteBatch(&whole, full)
				full.Release()
				if (err1 == nil) != (err2 == nil) || !bytes.Equal(bySet.Bytes(), whole.Bytes()) {
					t.Fatalf("WriteBatch by set: %d bytes (%v), in full: %d bytes (%v)", bySet.Len(), err1, whole.Len(), err2)
				}
			}
		}
		checkDecoded(t, b, err)
	})
}

// TestColumnSizes reports, for the benchmark corpora, the zstd size of each
// column as encoded alone (go test -run ColumnSizes -v). It is a measuring
// tool; it asserts nothing but that encoding works.
func TestColumnSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("measuring tool")
	}
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	for _, c := range corpora() {
		b := NewBuilder(c.Signal, nil)
		if _, err := b.Append(c.Body); err != nil {
			t.Fatal(err)
		}
		batch := b.Build()
		b.Release()
		type row struct {
			name     string
			raw, zst int
		}
		var rows []row
		total := 0
		for k, rec := range batch.tables() {
			for i, col := range rec.Columns() {
				e := &encoder{mem: memory.DefaultAllocator}
				if err := e.col(col); err != nil {
					t.Fatal(err)
				}
				z := len(enc.EncodeAll(e.out, nil))
				total += z
				rows = append(rows, row{fmt.Sprintf("%d.%s", k, rec.Schema().Field(i).Name), len(e.out), z})
			}
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].zst > rows[j].zst })
		t.Logf("%s: %d items, sum of per-column zstd %d B (%.3f B/item)", c.Name, c.Items, total, float64(total)/float64(c.Items))
		for _, r := range rows[:min(10, len(rows))] {
			t.Logf("  %-36s encoded %8d B  zstd %8d B  %.3f B/item", r.name, r.raw, r.zst, float64(r.zst)/float64(c.Items))
		}
		batch.Release()
	}
}

// sameRows: same length and every row bit for bit equal (NaN payloads
// included; array.Equal has NaN != NaN).
func sameRows(a, b arrow.Array) bool {
	if a.Len() != b.Len() || !arrow.TypeEqual(a.DataType(), b.DataType()) {
		return false
	}
	var ka, kb []byte
	for i := range a.Len() {
		ka, kb = appendKey(ka[:0], a, i), appendKey(kb[:0], b, i)
		if !bytes.Equal(ka, kb) {
			return false
		}
	}
	return true
}

// validateFull runs ValidateFull where the array type has it.
func validateFull(a arrow.Array) error {
	if v, ok := a.(interface{ ValidateFull() error }); ok {
		return v.ValidateFull()
	}
	return nil
}

// writeRead builds a batch of reqs, writes it as a record and reads it
// back: the batch built and the batch read.
func writeRead(t *testing.T, sig otlpwire.Signal, mem memory.Allocator, reqs ...[]byte) (built, read *Batch) {
	t.Helper()
	b := NewBuilder(sig, mem)
	defer b.Release()
	for _, req := range reqs {
		if _, err := b.Append(req); err != nil {
			t.Fatal(err)
		}
	}
	built = b.Build()
	var buf bytes.Buffer
	if err := WriteBatch(&buf, built); err != nil {
		t.Fatal(err)
	}
	read, err := ReadBatch(buf.Bytes(), mem)
	if err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	return built, read
}

// TestItemAttrSets: a record whose items' attributes repeat (each request
// appended twice) comes back with ItemAttrSets, and items share a number
// exactly when their attributes are equal; a record of distinct
// attributes comes back without.
func TestItemAttrSets(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			g := otlptest.NewGen(77+uint64(sig), otlptest.GenOptions{})
			withSets := 0
			for i := range 40 {
				req := g.Request(sig)
				batch, got := writeRead(t, sig, mem, req, req)
				batch.Release()
				sets := got.ItemAttrSets
				n := got.Len()
				if n > 1 && sets == nil {
					t.Fatalf("iteration %d: %d items, every one twice, and no sets", i, n)
				}
				if sets != nil {
					withSets++
					if len(sets) != n {
						t.Fatalf("iteration %d: %d sets for %d items", i, len(sets), n)
					}
					col := got.Items.Column(got.Items.Schema().FieldIndices("attributes")[0])
					keyOf := map[uint32]string{}
					setOf := map[string]uint32{}
					for r, s := range sets {
						k := string(appendKey(nil, col, r))
						if prev, ok := keyOf[s]; ok && prev != k {
							t.Fatalf("iteration %d: items of set %d differ: %q, %q", i, s, prev, k)
						}
						if prev, ok := setOf[k]; ok && prev != s {
							t.Fatalf("iteration %d: equal attributes in sets %d and %d", i, prev, s)
						}
						keyOf[s], setOf[k] = k, s
					}
				}
				got.Release()
			}
			if withSets == 0 {
				t.Fatal("no record had sets")
			}
		})
	}
	t.Run("distinct", func(t *testing.T) {
		c := otlptest.Corpora()[4] // a debug_id per series
		if c.Name != "metrics-k8s" {
			t.Fatalf("corpus %s", c.Name)
		}
		_, got := writeRead(t, c.Signal, nil, c.Body)
		if got.ItemAttrSets != nil {
			t.Fatalf("%d distinct items came with sets", got.Len())
		}
	})
}

// TestReadBatchSets: ReadBatchSets gives what ReadBatch gives, except that
// a record's table of distinct attribute sets stays a table: item i's
// attributes are row ItemAttrSets[i] of it, the same as ReadBatch's row i,
// and the items' attributes column is null. Records without sets come
// back as ReadBatch reads them. Nothing is leaked either way.
func TestReadBatchSets(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			g := otlptest.NewGen(91+uint64(sig), otlptest.GenOptions{})
			bySet := 0
			for i := range 40 {
				req := g.Request(sig)
				reqs := [][]byte{req, req} // sets when there are several items
				if i%4 == 3 {
					reqs = reqs[:1] // often distinct: no sets
				}
				built, want := writeRead(t, sig, mem, reqs...)
				var buf bytes.Buffer
				if err := WriteBatch(&buf, built); err != nil {
					t.Fatal(err)
				}
				built.Release()
				got, err := ReadBatchSets(buf.Bytes(), mem)
				if err != nil {
					t.Fatalf("iteration %d: %v", i, err)
				}
				if !slices.Equal(got.ItemAttrSets, want.ItemAttrSets) {
					t.Fatalf("iteration %d: sets %v, ReadBatch's %v", i, got.ItemAttrSets, want.ItemAttrSets)
				}
				wantCol := want.Items.Column(want.Items.Schema().FieldIndices("attributes")[0])
				gotCol := got.Items.Column(got.Items.Schema().FieldIndices("attributes")[0])
				if tb := got.ItemAttrSetTable; tb != nil {
					bySet++
					if err := validateFull(tb); err != nil {
						t.Fatal(err)
					}
					for r, s := range got.ItemAttrSets {
						if g, w := appendKey(nil, tb, int(s)), appendKey(nil, wantCol, r); !bytes.Equal(g, w) {
							t.Fatalf("iteration %d: item %d: set row %q, ReadBatch's %q", i, r, g, w)
						}
						if gotCol.IsValid(r) {
							t.Fatalf("iteration %d: item %d: attributes column not null", i, r)
						}
					}
					if _, err := ToOTLP(got, nil); err == nil {
						t.Fatal("ToOTLP wrote a batch read by set")
					}
					var bySetRec, wantRec bytes.Buffer
					if err := WriteBatch(&bySetRec, got); err != nil {
						t.Fatalf("iteration %d: WriteBatch of a batch read by set: %v", i, err)
					}
					if err := WriteBatch(&wantRec, want); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(bySetRec.Bytes(), wantRec.Bytes()) {
						t.Fatalf("iteration %d: WriteBatch of a batch read by set differs from ReadBatch's", i)
					}
				} else {
					if got.ItemAttrSets != nil {
						t.Fatalf("iteration %d: sets without their table", i)
					}
					g, err1 := ToOTLP(got, nil)
					w, err2 := ToOTLP(want, nil)
					if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
						t.Fatalf("iteration %d: differs from ReadBatch's (%v, %v)", i, err1, err2)
					}
				}
				got.Release()
				want.Release()
			}
			if bySet == 0 {
				t.Fatal("no record was read by set")
			}
		})
	}
}
