package aggregate

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// benchBatch is a batch of outputs x inputs points at time 1s, attributes
// {"series": i}.
func benchBatch(t testing.TB, m M, outputs, inputs int) (*schemas.Batch, []uint64, []uint64) {
	var pts []P
	for o := range outputs {
		for i := range inputs {
			p := P{In: uint64(o*inputs + i + 1), Out: uint64(o + 1), T: 1, V: float64(i), Int: true, Attrs: []string{"series", fmt.Sprint(o)}}
			if m.Kind == schemas.MetricHistogram {
				p.Hist = hist(10, 100, []uint64{1, 2, 3, 4}, []float64{1, 5, 10})
			}
			pts = append(pts, p)
		}
	}
	return batchOf(t, m, pts)
}

// bump moves every point of b one second on and grows the values.
func bump(b *schemas.Batch) {
	ts := b.Items.Column(schemas.PtTimeUnixNano).(*array.Uint64).Uint64Values()
	for i := range ts {
		ts[i] += uint64(time.Second)
	}
	vs := b.Items.Column(schemas.PtIntValue).(*array.Int64).Int64Values()
	for i := range vs {
		vs[i] += 3
	}
	cs := b.Items.Column(schemas.PtCount).(*array.Uint64).Uint64Values()
	for i := range cs {
		cs[i] += 3
	}
	bc := b.Items.Column(schemas.PtBucketCounts).(*array.List).ListValues().(*array.Uint64).Uint64Values()
	for i := range bc {
		bc[i]++
	}
}

func benchAdd(b *testing.B, m M, spec Spec) {
	batch, in, out := benchBatch(b, m, 1000, 10)
	defer batch.Release()
	a := New(Config{})
	wall := time.Unix(1000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	points := 0
	for i := range b.N {
		bump(batch)
		if err := a.Add("t", batch, in, out, spec, wall); err != nil {
			b.Fatal(err)
		}
		points += batch.Len()
		if i%10 == 9 {
			outs, err := a.Flush(wall, false)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range outs {
				o.Batch.Release()
			}
		}
	}
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
}

func BenchmarkAddSum(b *testing.B) { benchAdd(b, mCum, spec10) }
func BenchmarkAddGauge(b *testing.B) {
	benchAdd(b, mGauge, Spec{Rule: "r", Interval: 10 * time.Second, Gauge: GaugeAvg})
}
func BenchmarkAddHistogram(b *testing.B) {
	benchAdd(b, mHist, spec10)
}

// TestAddNoAllocs: merging sums and gauges allocates nothing per point in
// steady state.
func TestAddNoAllocs(t *testing.T) {
	for _, m := range []M{mCum, mDelta, mGauge} {
		batch, in, out := benchBatch(t, m, 100, 10)
		a := New(Config{})
		wall := time.Unix(1000, 0)
		for i := range 40 { // open and close intervals until the free lists are warm
			bump(batch)
			if err := a.Add("t", batch, in, out, spec10, wall); err != nil {
				t.Fatal(err)
			}
			if i%10 == 9 {
				outs, _ := a.Flush(wall, false)
				for _, o := range outs {
					o.Batch.Release()
				}
			}
		}
		allocs := testing.AllocsPerRun(5, func() {
			bump(batch)
			if err := a.Add("t", batch, in, out, spec10, wall); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%+v: %v allocations per Add of %d points", m, allocs, batch.Len())
		}
		batch.Release()
	}
}

// TestStateSizes pins the size of the state kept per series, whose real
// cost BenchmarkStateBytes measures (issue #9: at most 200 bytes per
// output series): a field added is a choice, not an accident.
func TestStateSizes(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes of a 64-bit platform")
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"series", unsafe.Sizeof(series{}), 96},
		{"input", unsafe.Sizeof(input{}), 56},
		{"ival", unsafe.Sizeof(ival{}), 24}, // a size class: one open interval, no padding
		{"seriesKey", unsafe.Sizeof(seriesKey{}), 12},
		{"inputKey", unsafe.Sizeof(inputKey{}), 20},
		{"ext", unsafe.Sizeof(ext{}), 48}, // a gauge interval with one input's entry, no allocation
	} {
		if c.got != c.want {
			t.Errorf("%s is %d bytes, want %d", c.name, c.got, c.want)
		}
	}
	// no pointer in an input or an ext: the GC does not scan
	// Aggregator.inputs and Aggregator.ext, the largest tables
	for _, typ := range []reflect.Type{reflect.TypeFor[input](), reflect.TypeFor[ext](), reflect.TypeFor[gent]()} {
		for i := range typ.NumField() {
			switch f := typ.Field(i); f.Type.Kind() {
			case reflect.Bool, reflect.Uint8, reflect.Uint32, reflect.Int32, reflect.Uint64, reflect.Int64:
			case reflect.Struct:
				if f.Type != reflect.TypeFor[gent]() {
					t.Errorf("%s.%s is a %v", typ.Name(), f.Name, f.Type)
				}
			default:
				t.Errorf("%s.%s is a %v", typ.Name(), f.Name, f.Type)
			}
		}
	}
}

// A series keeps its point attributes with the shortest length prefixes.
func TestSeriesAttrsShortest(t *testing.T) {
	a := New(Config{})
	attrs := []string{"job", "api", "pod", "pod-7f9c"}
	add(t, a, spec10, mCum, P{In: 1, T: 1, V: 1, Attrs: attrs})
	var want []byte
	for _, kv := range kvs(attrs...) {
		b, err := proto.Marshal(kv)
		if err != nil {
			t.Fatal(err)
		}
		want = protowire.AppendBytes(protowire.AppendTag(want, 1, protowire.BytesType), b)
	}
	if got := a.series[0].attrs; got != string(want) {
		t.Errorf("attrs %x, want %x", got, want)
	}
	if got := flush(t, a, true); len(got) != 1 || got[0].Attrs != "job=api,pod=pod-7f9c" {
		t.Errorf("got %+v", got)
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkStateBytes measures the memory of 100k output series with one
// and with four inputs each (cumulative sums, one open interval each):
// bytes/input-series is the difference per extra input, bytes/output-series
// the rest. Run with -benchtime=1x.
func BenchmarkStateBytes(b *testing.B) {
	const outputs = 100_000
	measure := func(inputs int) float64 {
		batch, in, out := benchBatch(b, mCum, outputs, inputs)
		defer batch.Release()
		base := heap()
		a := New(Config{})
		if err := a.Add("t", batch, in, out, spec10, time.Unix(1000, 0)); err != nil {
			b.Fatal(err)
		}
		used := heap() - base
		if s := a.Stats()["r"]; s.OutputSeries != outputs || s.InputSeries != outputs*inputs {
			b.Fatalf("stats %+v", s)
		}
		runtime.KeepAlive(a)
		return float64(used)
	}
	for range b.N {
		one, four := measure(1), measure(4)
		perInput := (four - one) / (3 * outputs)
		b.ReportMetric(perInput, "bytes/input-series")
		b.ReportMetric(one/outputs-perInput, "bytes/output-series")
	}
}

// BenchmarkSnapshot: a checkpoint of 100k output series with two inputs
// each (cumulative sums, one open interval each); ns/series and the
// snapshot's bytes/series.
func BenchmarkSnapshot(b *testing.B) {
	const outputs = 100_000
	batch, in, out := benchBatch(b, mCum, outputs, 2)
	defer batch.Release()
	a := New(Config{})
	if err := a.Add("t", batch, in, out, spec10, time.Unix(1000, 0)); err != nil {
		b.Fatal(err)
	}
	var size countWriter
	b.ReportAllocs()
	for b.Loop() {
		size = 0
		if err := a.Snapshot(&size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/outputs, "ns/series")
	b.ReportMetric(float64(size)/outputs, "bytes/series")
}

type countWriter int

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }

// BenchmarkK8sBacklog is the aggregator's share of a backlog of make
// bench-e2e stage 3 (bench/e2e/rules: every point merged): gauges of
// otlptest.K8sLoad (2,000 series here, each its own output series),
// batches of 4 steps of every series as a worker's poll brings them,
// merged at an interval of 1 s with a grace of 5 s and flushed after
// every batch; by-set builds the output as the worker's aggregators do
// (Config.BySet), copied with each point's attributes. Decoding and
// hashing the batches is not timed.
func BenchmarkK8sBacklog(b *testing.B) {
	for _, bySet := range []bool{true, false} {
		name := "copied"
		if bySet {
			name = "by-set"
		}
		b.Run(name, func(b *testing.B) { benchK8sBacklog(b, bySet) })
	}
}

func benchK8sBacklog(b *testing.B, bySet bool) {
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 20, Start: time.Unix(1_700_000_000, 0)})
	if err != nil {
		b.Fatal(err)
	}
	const steps = 4
	per := l.RequestsPerStep()
	spec := Spec{Rule: "r", Interval: time.Second, Grace: 5 * time.Second}
	a := New(Config{Allocator: arrowpool.New(), BySet: bySet}) // as the worker's aggregator: recycled buffers
	var h Hasher
	var in []uint64
	wall := l.End(0)
	points := 0
	b.ReportAllocs()
	for i := range b.N {
		b.StopTimer()
		bl := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
		for j := range steps * per {
			if _, err := bl.Append(l.Request(nil, i*steps*per+j)); err != nil {
				b.Fatal(err)
			}
		}
		batch := bl.Build()
		bl.Release()
		if err := h.Reset(batch); err != nil {
			b.Fatal(err)
		}
		in = in[:0]
		for row := range batch.Len() {
			in = append(in, h.Series("t", row))
		}
		wall = l.End((i + 1) * steps * per)
		b.StartTimer()
		if err := a.Add("t", batch, in, in, spec, wall); err != nil {
			b.Fatal(err)
		}
		outs, err := a.Flush(wall, false)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range outs {
			points += o.Batch.Len()
			o.Batch.Release()
		}
		b.StopTimer()
		batch.Release()
		b.StartTimer()
	}
	n := float64(b.N * steps * per * l.PerRequest())
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/point")
	b.ReportMetric(float64(points)/n, "out/point")
}

// BenchmarkRecordOverhead is what an aggregation record costs whatever its
// size: AppendRecord (the worker), ReadRecordSets (the aggregator) and the
// worker's schemas.Select of its rows, for records of 10, 100 and 1,000
// points of otlptest.K8sLoad (no rules: a debug_id per series). The cost
// of the smallest is about each record's share of a backlog's: Arrow
// builds every column of the schema, the empty ones too (a record of
// make bench-e2e stage 3 holds about 2,000 points).
func BenchmarkRecordOverhead(b *testing.B) {
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 20, PerRequest: 10, Start: time.Unix(1_700_000_000, 0)})
	if err != nil {
		b.Fatal(err)
	}
	mem := arrowpool.New()
	spec := Spec{Rule: "r", Interval: time.Second, Grace: 5 * time.Second}
	for _, reqs := range []int{1, 10, 100} {
		bl := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
		for j := range reqs {
			if _, err := bl.Append(l.Request(nil, j)); err != nil {
				b.Fatal(err)
			}
		}
		batch := bl.Build()
		bl.Release()
		n := batch.Len()
		in := make([]uint64, n)
		rows := make([]int32, n)
		for i := range rows {
			rows[i] = int32(i)
		}
		val, err := AppendRecord(nil, batch, in, spec)
		if err != nil {
			b.Fatal(err)
		}
		perPoint := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/point")
		}
		b.Run(fmt.Sprintf("write/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				if buf, err = AppendRecord(buf[:0], batch, in, spec); err != nil {
					b.Fatal(err)
				}
			}
			perPoint(b)
		})
		b.Run(fmt.Sprintf("read/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rb, _, _, err := ReadRecordSets(val, mem)
				if err != nil {
					b.Fatal(err)
				}
				rb.Release()
			}
			perPoint(b)
		})
		b.Run(fmt.Sprintf("select/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := schemas.Select(batch, rows, mem)
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
			}
			perPoint(b)
		})
		batch.Release()
	}
}
