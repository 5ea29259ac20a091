package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/s2"
	"github.com/sluice-dev/sluice/schemas"
)

func TestRecordRoundTrip(t *testing.T) {
	b, in, _ := batchOf(t, mCum, []P{{In: 1, Out: 7, T: 1, V: 2}, {In: 2, Out: 7, T: 2, V: 3, Int: true, Attrs: []string{"job", "web"}}})
	defer b.Release()
	spec := Spec{Rule: "rule-x", Interval: 30 * time.Second, Grace: time.Second, Gauge: GaugeMax, Summary: SummaryCountSum, Limit: 5}
	rec, err := AppendRecord([]byte("prefix"), b, in, spec)
	if err != nil {
		t.Fatal(err)
	}
	b2, in2, spec2, err := ReadRecord(rec[len("prefix"):], memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Release()
	if spec2 != spec || !cmp.Equal(in, in2) {
		t.Errorf("got %v %v, want %v %v", spec2, in2, spec, in)
	}
	o1, _ := schemas.ToOTLP(b, nil)
	o2, _ := schemas.ToOTLP(b2, nil)
	if !bytes.Equal(o1, o2) {
		t.Error("batch differs after the round trip")
	}
	// The output hashes computed from the record are those of the batch
	// it was made of.
	var h Hasher
	want, err := h.OutputHashes(nil, "t", b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.OutputHashes(nil, "t", b2)
	if err != nil || !cmp.Equal(got, want) || want[0] == want[1] {
		t.Errorf("output hashes %v (%v), want %v, two series", got, err, want)
	}
	for _, bad := range [][]byte{nil, []byte("SLAGG"), []byte("SLAGX\x02"), rec[:len(rec)/2], rec[len("prefix") : len("prefix")+12]} {
		if _, _, _, err := ReadRecord(bad, nil); err == nil {
			t.Errorf("ReadRecord(%q...) succeeded", bad[:min(len(bad), 8)])
		}
	}
	if _, err := AppendRecord(nil, b, in[:1], spec); err == nil {
		t.Error("AppendRecord with too few hashes succeeded")
	}
	// Version 3 had the body of version 4 in a zstd frame; version 2
	// had the input hashes as they are, then the batch record in its own
	// frame; version 1 carried the output hashes after the input hashes.
	// All are read, and 1's output hashes skipped.
	for _, old := range []struct {
		v      byte
		hashes []uint64
	}{{3, in}, {2, in}, {1, []uint64{in[0], in[1], 70, 70}}} {
		b3, in3, spec3, err := ReadRecord(oldRecord(t, old.v, b, old.hashes, spec), nil)
		if err != nil {
			t.Fatalf("version %d: %v", old.v, err)
		}
		o3, _ := schemas.ToOTLP(b3, nil)
		b3.Release()
		if spec3 != spec || !cmp.Equal(in3, in) || !bytes.Equal(o3, o1) {
			t.Errorf("version %d: %v %v, batch equal %v", old.v, spec3, in3, bytes.Equal(o3, o1))
		}
	}
}

// oldRecord is an aggregation record of version 1, 2 or 3. 1 and 2: the
// hashes as they are (version 1: the input then the output hashes), then
// the batch record in its own frame. 3: the body of version 4 (hashes
// are the input ones) in a zstd frame.
func oldRecord(tb testing.TB, v byte, b *schemas.Batch, hashes []uint64, spec Spec) []byte {
	if v == 3 {
		rec, err := AppendRecord(nil, b, hashes, spec)
		if err != nil {
			tb.Fatal(err)
		}
		body, err := s2.Decode(nil, rec[len(recordMagic)+1:])
		if err != nil {
			tb.Fatal(err)
		}
		rec[len(recordMagic)] = 3
		return append(rec[:len(recordMagic)+1], zstdSnapshot(tb, body)...)
	}
	rec := append([]byte{}, recordMagic...)
	rec = append(rec, v)
	rec = appendSpec(rec, spec)
	rec = binary.AppendUvarint(rec, uint64(b.Len()))
	for _, x := range hashes {
		rec = binary.LittleEndian.AppendUint64(rec, x)
	}
	return append(rec, batchRecord(tb, b)...)
}

func batchRecord(t testing.TB, b *schemas.Batch) []byte {
	var w bytes.Buffer
	if err := schemas.WriteBatch(&w, b); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

func TestRestoreCorrupt(t *testing.T) {
	a := New(Config{})
	add(t, a, spec10, mGauge, P{In: 1, T: 1, V: 1}, P{In: 2, T: 2, V: 2})
	add(t, a, spec10, mHist, P{In: 1, T: 1, Hist: hist(1, 1, []uint64{1}, nil)})
	var buf bytes.Buffer
	if err := a.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	snap := buf.Bytes()
	if _, err := Restore(bytes.NewReader(snap[:len(snap)-3]), Config{}); err == nil {
		t.Error("truncated snapshot restored")
	}
	if _, err := Restore(bytes.NewReader([]byte("not zstd")), Config{}); err == nil {
		t.Error("garbage restored")
	}
	// corrupt the decoded payload at every byte: an error or a working Aggregator, never a panic
	raw := decompress(t, snap)
	fails := 0
	for i := range raw {
		for _, x := range []byte{0xff, 0x01} {
			c := bytes.Clone(raw)
			c[i] ^= x
			r, err := decodeSnapshot(c, Config{})
			if err != nil {
				if !errors.Is(err, ErrRecord) {
					t.Fatalf("byte %d: %v is not ErrRecord", i, err)
				}
				fails++
				continue
			}
			exercise(t, r)
		}
	}
	if fails == 0 {
		t.Error("no corruption detected")
	}
}

// exercise runs a restored Aggregator through Add, Flush, Stats and Snapshot.
func exercise(t testing.TB, r *Aggregator) {
	for _, m := range []M{mGauge, mCum, mHist} {
		b, in, out := batchOf(t, m, []P{{In: 1, T: 3, V: 1, Hist: hist(1, 1, []uint64{1}, nil)}, {In: 2, T: 30, V: 1, Hist: hist(1, 1, []uint64{1}, nil)}})
		_ = r.Add("t1", b, in, out, spec10, time.Unix(1000, 0))
		b.Release()
	}
	if outs, err := r.Flush(time.Unix(5000, 0), true); err == nil {
		for _, o := range outs {
			o.Batch.Release()
		}
	}
	r.Stats()
	_ = r.Snapshot(&bytes.Buffer{})
}

func decompress(t testing.TB, snap []byte) []byte {
	t.Helper()
	a, err := Restore(bytes.NewReader(snap), Config{})
	if err != nil {
		t.Fatal(err)
	}
	_ = a
	d, err := payload(snap)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A snapshot whose last tables are small restores, whatever the number of
// inputs (the input index was once read as 19 bytes an entry at least,
// where an entry with small numbers takes 18).
func TestSnapshotManyInputs(t *testing.T) {
	for _, n := range []int{1, 10, 100, 127, 128, 200, 1000} {
		a := New(Config{})
		pts := make([]P, n)
		for i := range pts {
			pts[i] = P{In: uint64(i + 1), T: 1, Start: 0.5, V: 1, Int: true}
		}
		add(t, a, spec10, mCum, pts...)
		flush(t, a, true)
		var buf bytes.Buffer
		if err := a.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		r, err := Restore(bytes.NewReader(buf.Bytes()), Config{})
		if err != nil {
			t.Fatalf("%d inputs: %v", n, err)
		}
		if got := r.Stats()["r"].InputSeries; got != n {
			t.Errorf("%d inputs restored as %d", n, got)
		}
	}
}

// TestRecordSets: a record read by set (ReadRecordSets, as the worker's
// aggregator reads them) merges as the same record read whole: the same
// output hashes, the same merged points, new series named by their own
// attributes; a set number beyond the table is refused.
func TestRecordSets(t *testing.T) {
	var pts []P
	// Each series in 4 steps, one series after another: the sets repeat,
	// and a set's first point is not the row of its number.
	for s := range 6 {
		for step := range 4 {
			pts = append(pts, P{In: uint64(s + 1), Out: uint64(s%3 + 1), T: float64(1 + 10*step), V: float64(step*10 + s), Int: true,
				Attrs: []string{"route", fmt.Sprint("/r", s%3), "pod", fmt.Sprint("p", s)}})
		}
	}
	b, in, _ := batchOf(t, mGauge, pts)
	defer b.Release()
	rec, err := AppendRecord(nil, b, in, spec10)
	if err != nil {
		t.Fatal(err)
	}
	whole, inW, _, err := ReadRecord(rec, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Release()
	bySet, inS, specS, err := ReadRecordSets(rec, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer bySet.Release()
	if bySet.ItemAttrSetTable == nil || specS != spec10 || !cmp.Equal(inS, inW) {
		t.Fatalf("read by set: table %v, spec %v, hashes %v", bySet.ItemAttrSetTable != nil, specS, inS)
	}
	var h Hasher
	outW, err := h.OutputHashes(nil, "t1", whole)
	if err != nil {
		t.Fatal(err)
	}
	outS, err := h.OutputHashes(nil, "t1", bySet)
	if err != nil || !cmp.Equal(outS, outW) {
		t.Fatalf("output hashes by set %x (%v), want %x", outS, err, outW)
	}
	merged := func(b *schemas.Batch, out []uint64) []R {
		a := New(Config{})
		if err := a.AddFrom(0, "t1", b, inW, out, spec10, time.Unix(1000, 0)); err != nil {
			t.Fatal(err)
		}
		return flush(t, a, true)
	}
	want := merged(whole, outW)
	if got := merged(bySet, outS); !cmp.Equal(got, want) || len(want) == 0 {
		t.Errorf("merged by set:\n%v\nwant\n%v", got, want)
	}

	bySet.ItemAttrSets[3] = uint32(bySet.ItemAttrSetTable.Len())
	if err := New(Config{}).AddFrom(0, "t1", bySet, inW, outS, spec10, time.Unix(1000, 0)); err == nil {
		t.Error("a set number beyond the table was taken")
	}
}
