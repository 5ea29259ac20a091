package kafka

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-dev/sluice/stream"
)

// TestCompressorChoosesBySize: with zstd or gzip, batches below
// SmallBatchBytes are compressed with snappy and the others with the
// codec; other codecs, and a negative SmallBatchBytes, use the codec for
// every batch.
func TestCompressorChoosesBySize(t *testing.T) {
	small := []byte(strings.Repeat("service.name=checkout ", 40))   // ~900 B
	large := []byte(strings.Repeat("service.name=checkout ", 2000)) // ~44 KiB
	for _, tc := range []struct {
		compression        string
		smallBatchBytes    int
		wantSmall, wantBig kgo.CompressionCodecType
	}{
		{"zstd", 0, kgo.CodecSnappy, kgo.CodecZstd},
		{"gzip", 0, kgo.CodecSnappy, kgo.CodecGzip},
		{"zstd", -1, kgo.CodecZstd, kgo.CodecZstd},
		{"zstd", 100 << 10, kgo.CodecSnappy, kgo.CodecSnappy},
		{"lz4", 0, kgo.CodecLz4, kgo.CodecLz4},
		{"snappy", 0, kgo.CodecSnappy, kgo.CodecSnappy},
	} {
		c, err := Config{Compression: tc.compression, SmallBatchBytes: tc.smallBatchBytes}.compressor()
		if err != nil {
			t.Fatalf("%s: %v", tc.compression, err)
		}
		for _, x := range []struct {
			src  []byte
			want kgo.CompressionCodecType
		}{{small, tc.wantSmall}, {large, tc.wantBig}} {
			out, got := c.Compress(new(bytes.Buffer), x.src)
			if got != x.want || len(out) == 0 || len(out) >= len(x.src) {
				t.Errorf("%s (small_batch_bytes %d), %d bytes: codec %v (%d bytes), want %v", tc.compression, tc.smallBatchBytes, len(x.src), got, len(out), x.want)
			}
		}
	}
	if c, err := (Config{Compression: "none"}).compressor(); c != nil || err != nil {
		t.Errorf("none: %v, %v; want no compressor", c, err)
	}
}

// fetchCodecs records the codec of every batch a client reads.
type fetchCodecs struct {
	mu     sync.Mutex
	codecs map[int64]kgo.CompressionCodecType // by records<<32 | uncompressed bytes
	n      int
}

func (h *fetchCodecs) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.codecs[int64(m.NumRecords)<<32|int64(m.UncompressedBytes)] = kgo.CompressionCodecType(m.CompressionType)
	h.n++
}

// readCodecs reads the first n records of topic from its start (20 s at
// most), with the codec of each batch read.
func readCodecs(t *testing.T, b *Bus, topic string, n int) ([][]byte, *fetchCodecs) {
	t.Helper()
	hook := &fetchCodecs{codecs: map[int64]kgo.CompressionCodecType{}}
	cl, err := kgo.NewClient(append(b.cfg.clientOpts("codec-reader"),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hook))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got [][]byte
	for len(got) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value) })
	}
	return got, hook
}

// TestSmallBatchesOnTheBroker: on the real broker, a small batch written
// with zstd configured is stored with snappy, a large one with zstd, and
// both read back as written.
func TestSmallBatchesOnTheBroker(t *testing.T) {
	b := newBus(t, Config{Compression: "zstd"})
	name := topic(t, b, 1)
	small := []byte(strings.Repeat("k8s.pod.name=checkout-7d9f ", 40))
	large := []byte(strings.Repeat("k8s.pod.name=checkout-7d9f ", 2000))
	// Two calls, so two batches.
	produce(t, b, &stream.Record{Topic: name, Partition: 0, Value: small})
	produce(t, b, &stream.Record{Topic: name, Partition: 0, Value: large})

	got, hook := readCodecs(t, b, name, 2)
	if len(got) != 2 || !bytes.Equal(got[0], small) || !bytes.Equal(got[1], large) {
		t.Fatalf("read %d records back, want the small and the large one in order", len(got))
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	var snappy, zstd int
	for _, c := range hook.codecs {
		switch c {
		case kgo.CodecSnappy:
			snappy++
		case kgo.CodecZstd:
			zstd++
		}
	}
	if snappy != 1 || zstd != 1 {
		t.Errorf("batches read: %v (codec by records<<32|bytes); want one snappy and one zstd", hook.codecs)
	}
}

// TestCompressedContentOnTheBroker: on the real broker, with zstd (and
// snappy) configured, a batch of records whose content type says their
// value is compressed already (aggregation records) is stored without
// compression, others of the same bytes (OTLP, processed records) with the
// codec; all read back as written.
func TestCompressedContentOnTheBroker(t *testing.T) {
	value := []byte(strings.Repeat("k8s.pod.name=checkout-7d9f ", 2000))
	for _, codec := range []string{"zstd", "snappy"} {
		b := newBus(t, Config{Compression: codec})
		name := topic(t, b, 1)
		var want [][]byte
		for i, ct := range []string{stream.ContentTypeAggregate, stream.ContentTypeOTLPProto, stream.ContentTypeArrow} {
			v := append([]byte{byte(i)}, value...)
			want = append(want, v)
			produce(t, b, &stream.Record{Topic: name, Partition: 0, Value: v, Key: []byte("k"), Headers: []stream.Header{
				{Key: stream.HeaderTenant, Value: []byte("t")}, {Key: stream.HeaderContentType, Value: []byte(ct)}}})
		}
		got, hook := readCodecs(t, b, name, len(want))
		if len(got) != len(want) {
			t.Fatalf("%s: read %d records back, want %d", codec, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: record %d read back changed", codec, i)
			}
		}
		hook.mu.Lock()
		counts := map[kgo.CompressionCodecType]int{}
		for _, c := range hook.codecs {
			counts[c]++
		}
		hook.mu.Unlock()
		wantCodec := map[string]kgo.CompressionCodecType{"zstd": kgo.CodecZstd, "snappy": kgo.CodecSnappy}[codec]
		if counts[kgo.CodecNone] != 1 || counts[wantCodec] != 2 {
			t.Errorf("%s: batches read by codec %v; want 1 uncompressed and 2 %s", codec, counts, codec)
		}
	}
}

// TestFirstCompressed reads the content type of a batch's first record,
// and says no to whatever it cannot read: a record cut anywhere, no
// headers, another content type.
func TestFirstCompressed(t *testing.T) {
	rec := func(key []byte, hdrs ...kmsg.Header) []byte {
		r := kmsg.Record{Key: key, Value: []byte("value"), Headers: hdrs, OffsetDelta: 3, TimestampDelta64: 1000}
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - 1) // the length's own byte (0 above)
		return r.AppendTo(nil)
	}
	ct := func(v string) kmsg.Header { return kmsg.Header{Key: stream.HeaderContentType, Value: []byte(v)} }
	agg := rec(nil, kmsg.Header{Key: stream.HeaderTenant, Value: []byte("t")}, ct(stream.ContentTypeAggregate))
	if !firstCompressed(agg) || !firstCompressed(append(agg, rec(nil)...)) {
		t.Error("an aggregation record first: not compressed")
	}
	if !firstCompressed(rec([]byte("key"), ct(stream.ContentTypeAggregate))) {
		t.Error("an aggregation record with a key: not compressed")
	}
	for name, r := range map[string][]byte{
		"OTLP":          rec(nil, ct(stream.ContentTypeOTLPProto)),
		"processed":     rec(nil, ct(stream.ContentTypeArrow)),
		"no headers":    rec([]byte("k")),
		"other header":  rec(nil, kmsg.Header{Key: "content-typ", Value: []byte(stream.ContentTypeAggregate)}),
		"aggregate 2nd": append(rec(nil), agg...),
		"empty":         nil,
	} {
		if firstCompressed(r) {
			t.Errorf("%s: compressed", name)
		}
	}
	for n := range len(agg) - 1 {
		if firstCompressed(agg[:n]) {
			t.Errorf("the aggregation record cut to %d of %d bytes: compressed", n, len(agg))
		}
	}
}

// TestZstdWithoutChecksum: zstd batches are written without the frame's
// content checksum and read back by franz-go's decompressor; a broker too
// old for zstd gets franz-go's fallback (no compression).
func TestZstdWithoutChecksum(t *testing.T) {
	src := []byte(strings.Repeat("k8s.pod.name=checkout-7d9f http.route=/cart ", 2000))
	for level := 1; level <= 4; level++ {
		c, err := Config{Compression: "zstd", CompressionLevel: level}.compressor()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		out, codec := c.Compress(&buf, src)
		if codec != kgo.CodecZstd || len(out) < 5 || !bytes.Equal(out[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Fatalf("level %d: codec %v, %d bytes: not a zstd frame", level, codec, len(out))
		}
		if out[4]&0x04 != 0 { // Frame_Header_Descriptor: Content_Checksum_flag
			t.Errorf("level %d: the frame has a content checksum", level)
		}
		plain, err := kgo.DefaultDecompressor().Decompress(out, codec)
		if err != nil || !bytes.Equal(plain, src) {
			t.Fatalf("level %d: round trip: %v", level, err)
		}
		buf.Reset()
		if _, codec := c.Compress(&buf, src, kgo.CompressDisableZstd); codec != kgo.CodecNone {
			t.Errorf("level %d, zstd disabled: codec %v; want none", level, codec)
		}
	}
}

// TestZstdRawLiterals: with ZstdRawLiterals the frame's compressed blocks
// store their literals raw (not Huffman-coded), franz-go's decompressor
// reads it back, and on the realistic raw batch it costs more bytes than
// the default; it needs zstd.
func TestZstdRawLiterals(t *testing.T) {
	var src []byte
	for _, b := range compressionBatches(t) {
		if b.name == "k8s-1000pt" {
			src = b.raw
		}
	}
	if src == nil {
		t.Fatal("no k8s-1000pt batch")
	}
	sizes := map[bool]int{}
	for _, raw := range []bool{false, true} {
		c, err := Config{Compression: "zstd", ZstdRawLiterals: raw, SmallBatchBytes: -1}.compressor()
		if err != nil {
			t.Fatal(err)
		}
		out, codec := c.Compress(new(bytes.Buffer), src)
		plain, err := kgo.DefaultDecompressor().Decompress(out, codec)
		if err != nil || !bytes.Equal(plain, src) {
			t.Fatalf("raw literals %v: round trip: %v", raw, err)
		}
		sizes[raw] = len(out)
		// The literals of the first compressed block: 0 raw, 2 Huffman.
		if got, want := firstLiteralsType(t, out), map[bool]byte{false: 2, true: 0}[raw]; got != want {
			t.Errorf("raw literals %v: the first block's literals are of type %d, want %d", raw, got, want)
		}
	}
	if sizes[true] <= sizes[false] {
		t.Errorf("raw literals %d bytes, Huffman-coded %d: want more with raw ones", sizes[true], sizes[false])
	}
	if err := (Config{Brokers: []string{"a:9092"}, Compression: "lz4", ZstdRawLiterals: true}).validate(); err == nil {
		t.Error("raw zstd literals with lz4: no error")
	}
}

// firstLiteralsType is the Literals_Block_Type of the first compressed
// block of zstd frame f (RFC 8878, 3.1.1).
func firstLiteralsType(t *testing.T, f []byte) byte {
	t.Helper()
	if len(f) < 6 || !bytes.Equal(f[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatal("not a zstd frame")
	}
	fhd := f[4]
	at := 5
	single := fhd&0x20 != 0
	if !single {
		at++ // Window_Descriptor
	}
	at += []int{0, 1, 2, 4}[fhd&3] // Dictionary_ID
	fcs := []int{0, 2, 4, 8}[fhd>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	at += fcs
	for at+3 <= len(f) {
		h := int(f[at]) | int(f[at+1])<<8 | int(f[at+2])<<16
		typ, size := h>>1&3, h>>3
		at += 3
		if typ == 2 { // Compressed_Block
			return f[at] & 3
		}
		if typ == 1 { // RLE_Block: one byte
			size = 1
		}
		if h&1 != 0 {
			break
		}
		at += size
	}
	t.Fatal("no compressed block")
	return 0
}

// TestStateStoreUncompressed: a state store's values, compressed by their
// writers already, are stored without the bus's compression (zstd here),
// chunks and manifest, and read back whole.
func TestStateStoreUncompressed(t *testing.T) {
	b := newBus(t, Config{Compression: "zstd"})
	name := topicName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := b.StateStore(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(strings.Repeat("k8s.pod.name=checkout-7d9f ", 30000)) // two chunks, very compressible
	if err := st.Put(ctx, "p0", value); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, "p0"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(value))
	}
	got, hook := readCodecs(t, b, name, 3) // two chunks and the manifest
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(got) < 3 || len(hook.codecs) == 0 {
		t.Fatalf("read %d records in %d batches", len(got), len(hook.codecs))
	}
	for k, c := range hook.codecs {
		if c != kgo.CodecNone {
			t.Errorf("a batch of the state store (%d records, %d bytes) stored with codec %d, want none", k>>32, k&(1<<32-1), c)
		}
	}
}
