package aggregate

import (
	"bytes"
	"slices"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"google.golang.org/protobuf/proto"
)

func TestHasher(t *testing.T) {
	pts := []P{
		{T: 1, Attrs: []string{"a", "1", "b", "2"}},
		{T: 1, Attrs: []string{"b", "2", "a", "1"}}, // same set, other order
		{T: 1, Attrs: []string{"a", "1", "b", "3"}},
		{T: 1, Attrs: []string{"a", "1"}},
		{T: 1, Attrs: []string{"a", "2", "b", "1"}}, // values swapped between keys
	}
	var h Hasher
	series := func(m M, tenant string) []uint64 {
		b, _, _ := batchOf(t, m, pts)
		defer b.Release()
		if err := h.Reset(b); err != nil {
			t.Fatal(err)
		}
		var r []uint64
		for i := range pts {
			r = append(r, h.Series(tenant, i))
		}
		if a := testing.AllocsPerRun(10, func() { h.Series(tenant, 0); h.Metric(tenant, 0); h.Family(tenant, 0) }); a != 0 {
			t.Errorf("Series allocates %v", a)
		}
		if h.Family(tenant, 0) != h.Family(tenant, 4) {
			t.Error("Family depends on point attributes")
		}
		return append(r, h.Metric(tenant, 0), h.Metric(tenant, 3), h.Family(tenant, 0))
	}
	s := series(mCum, "t1")
	if s[0] != s[1] {
		t.Error("attribute order changes the hash")
	}
	for _, i := range []int{2, 3, 4} {
		if s[i] == s[0] {
			t.Errorf("point %d: other attributes, same hash", i)
		}
	}
	if s[5] != s[6] {
		t.Error("Metric depends on point attributes")
	}
	for name, o := range map[string][]uint64{"tenant": series(mCum, "t2"), "temporality": series(mDelta, "t1"), "type": series(mGauge, "t1")} {
		if o[0] == s[0] {
			t.Errorf("%s does not change Series", name)
		}
		if o[7] == s[7] {
			t.Errorf("%s does not change Family", name)
		}
	}
	if o := series(mDelta, "t1"); o[5] != s[5] {
		t.Error("temporality changes Metric")
	}
}

// TestHasherSets: a batch that numbers its points' attribute sets (as
// decoded, or as read from a record) hashes each point's series as one
// that does not, hashing a set's attributes once.
func TestHasherSets(t *testing.T) {
	var pts []P
	for i := range 48 {
		pts = append(pts, P{T: float64(1 + i/12), Attrs: []string{"route", strconv.Itoa(i % 6), "env", "prod", "step", strconv.Itoa(i % 12 / 6)}})
	}
	b, _, _ := batchOf(t, mGauge, pts)
	defer b.Release()
	b.FindItemAttrSets(nil) // kept when the decoder numbered them
	if b.ItemAttrSets == nil {
		t.Fatal("the batch's sets are not numbered")
	}
	sets, kept := b.ItemAttrSets, b.ItemSetIDs
	var h Hasher
	b.ItemAttrSets, b.ItemSetIDs = nil, nil
	want := hashSeries(t, &h, b)
	b.ItemAttrSets = sets
	if got := hashSeries(t, &h, b); !slices.Equal(got, want) {
		t.Errorf("by set:\n%x\nwant\n%x", got, want)
	}
	if a := testing.AllocsPerRun(10, func() { h.Series("t1", 7) }); a != 0 {
		t.Errorf("Series allocates %v", a)
	}

	// Read from a record, as the aggregator reads the workers'.
	var rec bytes.Buffer
	if err := schemas.WriteBatch(&rec, b); err != nil {
		t.Fatal(err)
	}
	r, err := schemas.ReadBatch(rec.Bytes(), memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if r.ItemAttrSets == nil {
		t.Fatal("the record's sets are not read")
	}
	if got := hashSeries(t, &h, r); !slices.Equal(got, want) {
		t.Errorf("read from a record:\n%x\nwant\n%x", got, want)
	}

	// The numbers are what is hashed once: numbering every point as the
	// first set gives every point the first's hash, and a number beyond
	// the points' is hashed as it comes.
	b.ItemAttrSets = make([]uint32, len(sets))
	b.ItemAttrSets[5] = uint32(len(sets) + 3)
	got := hashSeries(t, &h, b)
	for i, x := range got {
		if i != 5 && x != want[0] {
			t.Fatalf("point %d hashed %x with point 0's set, want %x", i, x, want[0])
		}
	}
	if got[5] != want[5] {
		t.Errorf("point 5 (set number out of range) hashed %x, want %x", got[5], want[5])
	}
	b.ItemAttrSets, b.ItemSetIDs = sets, kept
}

// TestHasherKeptSets: the decoder's numbers, kept from batch to batch,
// keep the hashes of their sets as long, and only in their space: a later
// batch of the same series, and a batch of another decoder whose numbers
// name other sets, hash as batches without numbers.
func TestHasherKeptSets(t *testing.T) {
	batch := func(bl *schemas.Builder, routes ...string) *schemas.Batch {
		t.Helper()
		var pts []P
		for i, r := range routes {
			pts = append(pts, P{T: float64(1 + i), Attrs: []string{"route", r}})
		}
		body, err := proto.Marshal(request(mGauge, pts))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bl.Append(body); err != nil {
			t.Fatal(err)
		}
		return bl.Build()
	}
	plain := func(b *schemas.Batch) []uint64 {
		t.Helper()
		var h Hasher
		sets, kept := b.ItemAttrSets, b.ItemSetIDs
		b.ItemAttrSets, b.ItemSetIDs = nil, nil
		defer func() { b.ItemAttrSets, b.ItemSetIDs = sets, kept }()
		return hashSeries(t, &h, b)
	}
	one := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	other := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	defer one.Release()
	defer other.Release()
	var h Hasher
	for i, c := range []struct {
		bl     *schemas.Builder
		routes []string
	}{
		// (sets that repeat: the decoder numbers while they do)
		{one, []string{"/a", "/a", "/b", "/a"}},
		{one, []string{"/b", "/a", "/a", "/b"}},   // the same sets again
		{other, []string{"/x", "/x", "/y", "/x"}}, // numbered alike, other sets
		{one, []string{"/b", "/c", "/a", "/b"}},
	} {
		b := batch(c.bl, c.routes...)
		if b.ItemSetIDs == nil || b.SetSpace == 0 {
			b.Release()
			t.Fatalf("batch %d: its sets are not numbered as kept", i)
		}
		if got, want := hashSeries(t, &h, b), plain(b); !slices.Equal(got, want) {
			t.Errorf("batch %d (sets %v of space %d):\n%x\nwant\n%x", i, b.ItemSetIDs, b.SetSpace, got, want)
		}
		b.Release()
	}
}

func hashSeries(t *testing.T, h *Hasher, b *schemas.Batch) []uint64 {
	t.Helper()
	if err := h.Reset(b); err != nil {
		t.Fatal(err)
	}
	var r []uint64
	for i := range b.Len() {
		r = append(r, h.Series("t1", i))
	}
	return r
}
