package schemas

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
	common "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
)

func kvs(kv ...string) []*common.KeyValue {
	var out []*common.KeyValue
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &common.KeyValue{Key: kv[i], Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: kv[i+1]}}})
	}
	return out
}

type corpus = otlptest.Corpus

func corpora() []corpus { return otlptest.Corpora() }

// logsCorpus is the logs-varied corpus.
func logsCorpus() []byte { return corpora()[1].Body }

func report(b *testing.B, items int) {
	n := float64(b.N) * float64(items)
	b.ReportMetric(n/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkDecode: OTLP to Arrow on the worker's allocator (arrowpool).
func BenchmarkDecode(b *testing.B) {
	for _, c := range corpora() {
		b.Run(c.Name, func(b *testing.B) {
			bld := NewBuilder(c.Signal, arrowpool.New())
			defer bld.Release()
			b.SetBytes(int64(len(c.Body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := bld.Append(c.Body); err != nil {
					b.Fatal(err)
				}
				bld.Build().Release()
			}
			report(b, c.Items)
		})
	}
	b.Run("k8s-load", func(b *testing.B) { benchDecodeK8sLoad(b, otlptest.K8sLoadConfig{}, 1, 1, false) })
	b.Run("k8s-load-steps", func(b *testing.B) { benchDecodeK8sLoad(b, otlptest.K8sLoadConfig{Pods: 20}, 8, 1, true) })
	b.Run("k8s-load-churn", func(b *testing.B) { benchDecodeK8sLoad(b, otlptest.K8sLoadConfig{}, 1, 33, false) })
}

// benchDecodeK8sLoad decodes what a worker reads under the end-to-end load
// (otlptest.K8sLoad, defaults: 100 pods x 100 gauge series, requests of
// 1,000 points): the requests of steps steps appended to one batch. One
// step of the 100 pods holds each series once (live traffic); 8 steps of
// 20 pods (a partition's share of the pods, 16,000 points: a backlog)
// repeat each 8 times. Each batch is of the same series as the one
// before, but with seeds > 1: then batches take turns among loads of
// seeds seeds, whose ids (debug_id among them) differ, so that every
// batch's sets are new (series that churn). With findSets the batch's
// attribute sets are then found, as the worker does (FindItemAttrSets: the
// decoder's numbers when it numbered them).
func benchDecodeK8sLoad(b *testing.B, cfg otlptest.K8sLoadConfig, steps, seeds int, findSets bool) {
	var batches [][][]byte
	size, items := 0, 0
	for k := range seeds {
		cfg.Seed = uint64(k)
		l, err := otlptest.NewK8sLoad(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var reqs [][]byte
		size, items = 0, 0
		for j := range steps * l.RequestsPerStep() {
			r := l.Request(nil, j)
			reqs = append(reqs, r)
			size += len(r)
			items += l.PerRequest()
		}
		batches = append(batches, reqs)
	}
	bld := NewBuilder(otlpwire.Metrics, arrowpool.New())
	defer bld.Release()
	sets := make([]uint32, items)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	k := 0
	for b.Loop() {
		for _, r := range batches[k%seeds] {
			if _, err := bld.Append(r); err != nil {
				b.Fatal(err)
			}
		}
		k++
		bt := bld.Build()
		if findSets {
			bt.FindItemAttrSets(sets)
		}
		bt.Release()
	}
	report(b, items)
	b.ReportMetric(b.Elapsed().Seconds()*1e9/(float64(b.N)*float64(items)), "ns/item")
}

// BenchmarkBuild is Build alone (and the batch's Release, which gives its
// buffers back to the pool) on the batches of benchDecodeK8sLoad: the
// requests are appended with the timer stopped.
func BenchmarkBuild(b *testing.B) {
	b.Run("k8s-load", func(b *testing.B) {
		l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{})
		if err != nil {
			b.Fatal(err)
		}
		var reqs [][]byte
		items := 0
		for j := range l.RequestsPerStep() {
			reqs = append(reqs, l.Request(nil, j))
			items += l.PerRequest()
		}
		bld := NewBuilder(otlpwire.Metrics, arrowpool.New())
		defer bld.Release()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			for _, r := range reqs {
				if _, err := bld.Append(r); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			bld.Build().Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*float64(items)), "ns/item")
	})
}

func BenchmarkToOTLP(b *testing.B) {
	for _, c := range corpora() {
		b.Run(c.Name, func(b *testing.B) {
			bld := NewBuilder(c.Signal, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.Body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var dst []byte
			b.SetBytes(int64(len(c.Body)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = ToOTLP(batch, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
			report(b, c.Items)
		})
	}
}

// BenchmarkRecordSize reports the processed-topic value size (WriteBatch) against
// the raw OTLP protobuf, the raw OTLP compressed with zstd (default level,
// whole request) and the same tables as Arrow IPC streams with zstd buffer
// compression (format 1), per item; ratio = otlp-zstd / record (the target
// is >= 3). items/s is the speed of WriteBatch.
func BenchmarkRecordSize(b *testing.B) {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	for _, c := range corpora() {
		b.Run(c.Name, func(b *testing.B) {
			bld := NewBuilder(c.Signal, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.Body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := WriteBatch(&buf, batch); err != nil {
					b.Fatal(err)
				}
			}
			report(b, c.Items)
			z := enc.EncodeAll(c.Body, nil)
			b.ReportMetric(float64(len(c.Body))/float64(c.Items), "otlp-B/item")
			b.ReportMetric(float64(len(z))/float64(c.Items), "otlp-zstd-B/item")
			b.ReportMetric(float64(buf.Len())/float64(c.Items), "record-B/item")
			b.ReportMetric(float64(arrowIPCSize(b, batch))/float64(c.Items), "arrow-ipc-zstd-B/item")
			b.ReportMetric(float64(len(z))/float64(buf.Len()), "ratio")
		})
	}
}

// arrowIPCSize is the size of batch's tables as Arrow IPC streams with zstd
// buffer compression, as format 1 wrote them.
func arrowIPCSize(b *testing.B, batch *Batch) int {
	n := 0
	for _, t := range batch.tables() {
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(t.Schema()), ipc.WithZstd())
		if err := w.Write(t); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		n += buf.Len()
	}
	return n
}

// BenchmarkReadBatch: decoding a processed value back into a Batch, as every
// sink does, on the Go allocator and on the sinks' pool.
func BenchmarkReadBatch(b *testing.B) {
	for _, mem := range []struct {
		name  string
		alloc memory.Allocator
	}{{"go", memory.DefaultAllocator}, {"pool", arrowpool.New()}} {
		b.Run(mem.name, func(b *testing.B) { benchReadBatch(b, mem.alloc) })
	}
}

func benchReadBatch(b *testing.B, mem memory.Allocator) {
	for _, c := range corpora() {
		b.Run(c.Name, func(b *testing.B) {
			bld := NewBuilder(c.Signal, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.Body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var buf bytes.Buffer
			if err := WriteBatch(&buf, batch); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				nb, err := ReadBatch(buf.Bytes(), mem)
				if err != nil {
					b.Fatal(err)
				}
				nb.Release()
			}
			report(b, c.Items)
		})
	}
}

// cpuTime is the CPU time the process has used (user and system, the
// garbage collector's included), which other processes on a shared machine
// inflate less than the elapsed time.
var cpuTime = testproc.CPU

// CPUTime is cpuTime for the benchmarks of package schemas_test.
var CPUTime = cpuTime
