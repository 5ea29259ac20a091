package kafka

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream"
)

// compressionBatch is what franz-go compresses at once: the records of one
// partition in one produce request, framed as Kafka frames them.
type compressionBatch struct {
	name   string
	points int
	raw    []byte
}

// rawHeaders are the ingester's five headers, with typical values.
func rawHeaders(items int) []kmsg.Header {
	h := func(k, v string) kmsg.Header { return kmsg.Header{Key: k, Value: []byte(v)} }
	return []kmsg.Header{
		h(stream.HeaderContentType, stream.ContentTypeOTLPProto), h(stream.HeaderTenant, "anonymous"),
		h(stream.HeaderReceivedAt, time.Unix(1_700_000_000, 123456789).UTC().Format(time.RFC3339Nano)),
		h(stream.HeaderItems, strconv.Itoa(items)), h(stream.HeaderSignal, "metrics"),
	}
}

// frame appends values as the records of one batch, each with the
// ingester's headers.
func frame(values [][]byte, items []int) []byte {
	var out []byte
	for k, v := range values {
		r := kmsg.Record{OffsetDelta: int32(k), Value: v, Headers: rawHeaders(items[k])}
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - 1) // Length 0 took one byte
		out = r.AppendTo(out)
	}
	return out
}

// compressionBatches are the raw topics' batches of the measurement: the
// realistic corpus metrics-k8s as one-point requests (8 requests that
// arrived during one round trip to the broker: as 8 records without group
// commit, as one record with it) and as records of 1,000 points (an
// agent's batch), and the friendly corpus metrics (repetitive series) as
// a record of 10,000 points.
func compressionBatches(tb testing.TB) []compressionBatch {
	var k8s, friendly []byte
	for _, c := range otlptest.Corpora() {
		switch c.Name {
		case "metrics-k8s":
			k8s = c.Body
		case "metrics":
			friendly = c.Body
		}
	}
	unmarshal := func(b []byte) *colmetrics.ExportMetricsServiceRequest {
		var req colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			tb.Fatal(err)
		}
		return &req
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	req := unmarshal(k8s)
	// One-point requests: 8 pods' first series.
	var ones [][]byte
	var oneItems []int
	for pod := range 8 {
		rm := proto.Clone(req.ResourceMetrics[pod*7]).(*metrics.ResourceMetrics)
		g := rm.ScopeMetrics[0].Metrics[0].GetGauge()
		g.DataPoints = g.DataPoints[pod : pod+1]
		ones = append(ones, marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{rm}}))
		oneItems = append(oneItems, 1)
	}
	thousand := marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: req.ResourceMetrics[:10]})
	freq := unmarshal(friendly)
	sm := freq.ResourceMetrics[0].ScopeMetrics[0]
	sm.Metrics = sm.Metrics[:100] // 100 metrics x 100 points
	tenK := marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: freq.ResourceMetrics[:1]})
	return []compressionBatch{
		{"k8s-1pt-8records", 8, frame(ones, oneItems)},
		{"k8s-1pt-coalesced", 8, frame([][]byte{bytes.Join(ones, nil)}, []int{8})},
		{"k8s-1000pt", 1000, frame([][]byte{thousand}, []int{1000})},
		{"friendly-10000pt", 10_000, frame([][]byte{tenK}, []int{10_000})},
	}
}

// compressionCodecs are the candidates for the raw topics, as
// bus.kafka.compression and compression_level name them.
var compressionCodecs = []struct {
	name  string
	level int
	raw   bool // zstd: ZstdRawLiterals
}{
	{"none", 0, false}, {"snappy", 0, false}, {"lz4", 0, false}, {"lz4", 1, false}, {"gzip", 1, false}, {"gzip", 0, false},
	{"zstd", 1, false}, {"zstd", 2, false}, {"zstd", 3, false}, {"zstd", 4, false}, {"zstd", 1, true},
}

// cpuTime is the CPU time the process has used.
var cpuTime = testproc.CPU

// BenchmarkCompression measures the producer's compressor (franz-go's, but
// for zstd: zstdCompressor) and franz-go's decompressor on the raw topics'
// batches: bytes on the bus per data point, and the CPU
// of the ingester (compress) and of the worker (decompress) per data point.
// Run with -cpu 1.
func BenchmarkCompression(b *testing.B) {
	for _, batch := range compressionBatches(b) {
		for _, cc := range compressionCodecs {
			name := cc.name
			if cc.level != 0 {
				name += "-" + strconv.Itoa(cc.level)
			}
			if cc.raw {
				name += "-raw-literals"
			}
			b.Run(batch.name+"/"+name, func(b *testing.B) {
				// The producer's compressor, every batch with the codec.
				comp, err := Config{Compression: cc.name, CompressionLevel: cc.level, ZstdRawLiterals: cc.raw, SmallBatchBytes: -1}.compressor()
				if err != nil {
					b.Fatal(err)
				}
				dec := kgo.DefaultDecompressor()
				var buf bytes.Buffer
				compress := func() ([]byte, kgo.CompressionCodecType) {
					if comp == nil {
						return batch.raw, kgo.CodecNone
					}
					buf.Reset()
					return comp.Compress(&buf, batch.raw)
				}
				out, typ := compress()
				wire := append([]byte(nil), out...)
				if plain, err := dec.Decompress(wire, typ); err != nil || !bytes.Equal(plain, batch.raw) {
					b.Fatalf("round trip: %v", err)
				}
				b.SetBytes(int64(len(batch.raw)))
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					compress()
				}
				compressCPU := float64((cpuTime() - cpu0).Nanoseconds()) / float64(b.N)
				compressNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				start, cpu1 := time.Now(), cpuTime()
				for range b.N {
					if _, err := dec.Decompress(wire, typ); err != nil {
						b.Fatal(err)
					}
				}
				decompressCPU := float64((cpuTime() - cpu1).Nanoseconds()) / float64(b.N)
				decompressNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
				p := float64(batch.points)
				b.ReportMetric(float64(len(wire))/p, "B/point")
				b.ReportMetric(float64(len(batch.raw))/float64(len(wire)), "ratio")
				b.ReportMetric(compressNs/p, "compress-ns/point")
				b.ReportMetric(decompressNs/p, "decompress-ns/point")
				// CPU time (the process', with -cpu 1 this benchmark's
				// and the garbage collector's): on a shared machine the
				// wall time above also counts the other processes' turns.
				b.ReportMetric(compressCPU/p, "compress-cpu-ns/point")
				b.ReportMetric(decompressCPU/p, "decompress-cpu-ns/point")
			})
		}
	}
}
