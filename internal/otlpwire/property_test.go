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
