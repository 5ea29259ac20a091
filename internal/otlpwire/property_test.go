package otlpwire_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	. "github.com/sluice-dev/sluice/internal/otlpwire" // the tests are outside the package: see export_test.go
)

// TestSplitProperty splits random requests with random options and checks,
// by decoding every chunk with proto.Unmarshal, that each item lands in
// exactly one chunk with its resource, scope (and metric) unchanged, in the
// partition its key asks for, that no chunk exceeds MaxRecordBytes, and that
// exactly the items too large for a record alone are rejected.
func TestSplitProperty(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	var s Splitter // one for all, to exercise the reuse of its buffers
	for _, sig := range Signals {
		for seed := range n {
			g := otlptest.NewGen(uint64(seed)<<2|uint64(sig), otlptest.GenOptions{Unknown: seed%2 == 1})
			req := g.Message(sig)
			body, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			opt := randomOptions(g.Rand(), sig)
			res, err := s.Split(sig, body, opt)
			if err != nil {
				t.Fatalf("%v seed %d: %v", sig, seed, err)
			}
			checkSplit(t, sig, req, body, opt, res)
			if t.Failed() {
				t.Fatalf("%v seed %d, options %+v", sig, seed, opt)
			}
		}
	}
}

func randomOptions(r *rand.Rand, sig Signal) Options {
	opt := Options{Partitions: int32(1 + r.IntN(8))}
	if r.IntN(10) == 0 {
		opt.Partitions = 1<<20 + int32(r.IntN(1000)) // more partitions than sortUnits counts
	}
	keys := []KeyMode{KeyDefault, KeyResource, KeyTraceID, KeyNone}
	if sig == Metrics {
		keys = []KeyMode{KeyDefault, KeyResource, KeyNone}
	}
	opt.Key = keys[r.IntN(len(keys))]
	if r.IntN(5) != 0 {
		opt.MaxRecordBytes = 40 + r.IntN(3000)
	}
	return opt
}

// resourceHash is KeyResource's hash, worked out from the decoded resource.
func resourceHash(attrs []*commonpb.KeyValue) uint64 {
	var h uint64
	for _, kv := range attrs {
		b, err := proto.Marshal(kv)
		if err != nil {
			panic(err)
		}
		h += xxhash.Sum64(b)
	}
	return h
}

// wantPartition is the partition Split must give it.
func wantPartition(sig Signal, opt Options, it flatItem) int32 {
	key := opt.Key
	if key == KeyDefault {
		key = KeyResource
		if sig == Traces {
			key = KeyTraceID
		}
	}
	p := uint64(opt.Partitions)
	switch {
	case key == KeyNone:
		return -1
	case key == KeyTraceID && len(it.trace) > 0:
		return int32(xxhash.Sum64(it.trace) % p)
	}
	return int32(resourceHash(it.attrs) % p)
}

func checkSplit(t *testing.T, sig Signal, req proto.Message, body []byte, opt Options, res Result) {
	t.Helper()
	want := map[string]int{}
	wantRejected := 0
	parts := map[int32]bool{}
	for _, it := range flatten(req) {
		if opt.MaxRecordBytes > 0 && proto.Size(it.alone) > opt.MaxRecordBytes {
			wantRejected++
			continue
		}
		want[key(it.ctx, it.item)]++
		parts[wantPartition(sig, opt, it)] = true
	}
	if res.Rejected != wantRejected {
		t.Errorf("rejected %d items, want %d", res.Rejected, wantRejected)
	}
	if (res.Rejected > 0) != (res.RejectReason != "") {
		t.Errorf("rejected %d items with reason %q", res.Rejected, res.RejectReason)
	}
	total := 0
	for i, c := range res.Chunks {
		if opt.MaxRecordBytes > 0 && len(c.Value) > opt.MaxRecordBytes {
			t.Errorf("chunk %d: %d bytes, over %d", i, len(c.Value), opt.MaxRecordBytes)
		}
		if i > 0 && c.Partition < res.Chunks[i-1].Partition {
			t.Errorf("chunk %d: partition %d after %d", i, c.Partition, res.Chunks[i-1].Partition)
		}
		m := NewRequest(sig)
		if err := proto.Unmarshal(c.Value, m); err != nil {
			t.Errorf("chunk %d: %v", i, err)
			continue
		}
		items := flatten(m)
		if len(items) != c.Items || c.Items == 0 {
			t.Errorf("chunk %d: says %d items, holds %d", i, c.Items, len(items))
		}
		total += c.Items
		for _, it := range items {
			k := key(it.ctx, it.item)
			if want[k] == 0 {
				t.Errorf("chunk %d: item not in the request or twice in chunks:\n%q", i, k)
				continue
			}
			want[k]--
			if p := wantPartition(sig, opt, it); p != c.Partition {
				t.Errorf("chunk %d: item of partition %d in partition %d", i, p, c.Partition)
			}
		}
		if n, err := Count(sig, c.Value); err != nil || n != c.Items {
			t.Errorf("chunk %d: Count = %d, %v; want %d", i, n, err, c.Items)
		}
	}
	for k, n := range want {
		if n != 0 {
			t.Errorf("item in no chunk (%d times):\n%q", n, k)
		}
	}
	if res.Items != total {
		t.Errorf("Result.Items = %d, chunks hold %d", res.Items, total)
	}
	if len(parts) == 1 && res.Rejected == 0 && (opt.MaxRecordBytes == 0 || len(body) <= opt.MaxRecordBytes) {
		if len(res.Chunks) != 1 || len(body) == 0 || &res.Chunks[0].Value[0] != &body[0] || len(res.Chunks[0].Value) != len(body) {
			t.Errorf("one partition, fits: want the body as the only chunk, got %d chunks", len(res.Chunks))
		}
	}
	if !slices.IsSortedFunc(res.Chunks, func(a, b Chunk) int { return int(a.Partition) - int(b.Partition) }) {
		t.Errorf("chunks not sorted by partition")
	}
}

// TestIsASCIIProperty: IsASCII, which reads eight bytes at a time, agrees
// with a byte by byte loop on random bytes of every length up to 80, with
// at most one byte of 0x80 or more anywhere.
func TestIsASCIIProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 81 {
		for range 200 {
			p := make([]byte, n)
			for k := range p {
				p[k] = byte(r.IntN(0x80))
			}
			if n > 0 && r.IntN(2) == 0 {
				p[r.IntN(n)] |= 0x80
			}
			want := true
			for _, c := range p {
				if c >= 0x80 {
					want = false
				}
			}
			if got := IsASCII(p); got != want {
				t.Fatalf("IsASCII(%x) = %v, want %v", p, got, want)
			}
		}
	}
}

// TestAttrRunProperty: CheckItem's inline path over a data point's run of
// attributes refuses the run when CheckKeyValue refuses one of them, with
// the problem of one such attribute, and accepts it otherwise, on
// runs of attributes made of the usual encodings with their bytes (tags,
// lengths, contents) randomly changed, including lengths of 0x80 or more
// and bytes that are not ASCII.
func TestAttrRunProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	str := func(n int) []byte {
		b := make([]byte, n)
		for k := range b {
			b[k] = byte('a' + r.IntN(26))
		}
		return b
	}
	kv := func() []byte {
		key := str(r.IntN(20))
		var val []byte
		switch r.IntN(5) {
		case 0:
			val = append([]byte{0x0a, 0}, str(r.IntN(40))...) // string_value
			val[1] = byte(len(val) - 2)
		case 1:
			val = []byte{0x18, byte(r.IntN(0x80))} // int_value
		case 2:
			val = []byte{0x21, 1, 2, 3, 4, 5, 6, 7, 8} // double_value
		case 3:
			val = []byte{0x10, 1} // bool_value
		}
		b := append([]byte{0x0a, byte(len(key))}, key...)
		b = append(b, 0x12, byte(len(val)))
		b = append(b, val...)
		for range r.IntN(3) { // change a byte or two
			if len(b) > 0 {
				b[r.IntN(len(b))] = byte(r.IntN(256))
			}
		}
		return b
	}
	const attrs = NumberDataPointAttributes
	for range 20000 {
		var item []byte
		var kvs [][]byte
		for range 1 + r.IntN(8) {
			a := kv()
			if len(a) >= 0x80 {
				continue
			}
			kvs = append(kvs, a)
			item = append(item, byte(attrs)<<3|2, byte(len(a)))
			item = append(item, a...)
		}
		want := ItemProblem{Attr: 0}
		for k, a := range kvs {
			if pr, af := CheckKeyValue(a); pr != ProblemNone {
				want = ItemProblem{Problem: pr, Field: attrs, Attr: k, AttrField: af}
				break
			}
		}
		got := CheckItem(Metrics, MetricGauge, item)
		if want.Problem == ProblemNone {
			if got.Problem != ProblemNone {
				t.Fatalf("item %x: %+v, want no problem", item, got)
			}
			continue
		}
		// The run's structure is checked before its bytes are checked
		// for ASCII: the problem found may be another attribute's than
		// the first one's, but it must be that attribute's.
		if got.Problem == ProblemNone || got.Field != attrs || got.Attr < 0 || got.Attr >= len(kvs) {
			t.Fatalf("item %x: %+v, want a problem like %+v", item, got, want)
		}
		if pr, af := CheckKeyValue(kvs[got.Attr]); pr != got.Problem || af != got.AttrField {
			t.Fatalf("item %x: %+v, but attribute %d alone has %v in field %d", item, got, got.Attr, pr, af)
		}
	}
}
