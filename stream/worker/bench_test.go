package worker

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules/columnar"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
	"github.com/sluice-dev/sluice/stream/cardinality"
	smemory "github.com/sluice-dev/sluice/stream/memory"
)

// marking is the rule engine as a Merger, every marked point merged with
// one spec (app does the same with the specs of the rule set).
type marking struct {
	*columnar.Engine
	spec   *aggregate.Spec
	marked []columnar.Marked
	keeps  bool // KeepsResources
	limits bool // HasLimits
}

func (m *marking) KeepsResources() bool { return m.keeps }
func (m *marking) HasLimits() bool      { return m.limits }

func (m *marking) ApplyMerge(b *schemas.Batch, dst []Merge) (*schemas.Batch, []Merge, error) {
	out, marked, err := m.ApplyMarked(b, m.marked[:0])
	m.marked = marked[:0]
	for _, mk := range marked {
		dst = append(dst, Merge{Row: mk.Row, Orig: mk.Orig, Spec: m.spec})
	}
	return out, dst, err
}

// BenchmarkEncode is the worker's chain (decode, rules, write) on the metrics
// corpus (100,000 points, each a series of its own): the example rules,
// which change every point's series (a folded route, a renamed pod label),
// so every point is hashed before and after the rules and routed to one
// of 12 aggregation partitions ("merged"); and for comparison the same
// rules as a plain Transform, all points written as one processed record
// ("written").
func BenchmarkEncode(b *testing.B) {
	set := exampleRules(b)
	c := otlptest.Corpora()[0]
	if c.Signal != otlpwire.Metrics {
		b.Fatalf("corpus %s", c.Name)
	}
	mem := arrowpool.New()
	engine := columnar.New(set, columnar.Options{Allocator: mem})
	for _, tc := range []struct {
		name string
		t    Transform
	}{
		{"merged", &marking{Engine: engine, spec: &aggregate.Spec{Rule: "r", Interval: time.Minute}}},
		{"written", engine},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bus := newBus(b)
			if err := bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: topics.Aggregate(), Partitions: 12}); err != nil {
				b.Fatal(err)
			}
			w, err := New(bus, Config{Topics: topics, Allocator: mem}, tc.t)
			if err != nil {
				b.Fatal(err)
			}
			bl := w.builders[otlpwire.Metrics]
			g := &group{sig: otlpwire.Metrics, tenant: "t", partition: 0}
			from := []*stream.Record{raw(otlpwire.Metrics, 0, "t", c.Body)}
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			bytes := 0
			for b.Loop() {
				if _, err := bl.Append(c.Body); err != nil {
					b.Fatal(err)
				}
				recs, err := w.encode(g, bl.Build(), from, tc.t)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range recs {
					bytes += len(r.Value)
				}
			}
			runtime.ReadMemStats(&m1)
			n := float64(b.N) * float64(c.Items)
			b.ReportMetric(n/b.Elapsed().Seconds(), "points/s")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/point")
			b.ReportMetric(float64(bytes)/n, "bytes-out/point")
		})
	}
}

// BenchmarkProcessK8sLoad is what the worker does per poll under the
// end-to-end load (make bench-e2e, bench/e2e/rules-unmerged) with the
// default bounds: a poll of 1 MiB over 6 partitions brings a group about
// 7,000 points of the 17 pods of its partition, so here 8 raw records of
// 1,000 points of otlptest.K8sLoad (20 pods x 100 gauge series, a debug_id
// unique per series: 4 steps of every series) in one group, decoded into
// one batch, the rules applied (drop a route, set env, delete debug_id),
// the cardinality tracker fed before and after them, and the processed
// record written. Kafka's fetch and decompression are not in it.
func BenchmarkProcessK8sLoad(b *testing.B) {
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 20})
	if err != nil {
		b.Fatal(err)
	}
	mem := arrowpool.New()
	for _, tc := range []struct {
		name, rules string
		merged      bool
		records     int
	}{
		{"unmerged", "../../bench/e2e/rules-unmerged/e2e.yaml", false, 8},
		// bench/e2e/rules: every kept point's series changes, so every
		// kept point is hashed as it was and routed to an aggregation
		// partition (the aggregator's work is not in it).
		{"merged", "../../bench/e2e/rules/e2e.yaml", true, 8},
		// Live traffic: one step, each series once in the poll.
		{"unmerged-live", "../../bench/e2e/rules-unmerged/e2e.yaml", false, 2},
	} {
		g := &group{sig: otlpwire.Metrics, tenant: "t"}
		for j := range tc.records {
			g.recs = append(g.recs, raw(otlpwire.Metrics, 0, "t", l.Request(nil, j)))
		}
		points := tc.records * l.PerRequest()
		b.Run(tc.name, func(b *testing.B) {
			set := ruleFile(b, tc.rules)
			engine := columnar.New(set, columnar.Options{Allocator: mem, AttrSetTable: true}) // as app makes it
			var t Transform = engine
			bus := newBus(b)
			want := 1
			if tc.merged {
				t = &marking{Engine: engine, spec: &aggregate.Spec{Rule: "r", Interval: time.Second, Grace: 5 * time.Second}}
				if err := bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: topics.Aggregate(), Partitions: 6}); err != nil {
					b.Fatal(err)
				}
				want = 0 // one record per aggregation partition, and progress records
			}
			w, err := New(bus, Config{Topics: topics, Allocator: mem, MaxBatchItems: 16384, Cardinality: cardinality.New(cardinality.Config{})}, t)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				out, dead, err := w.process(g, t)
				if err != nil || len(dead) > 0 || len(out) == 0 || want > 0 && len(out) != want {
					b.Fatalf("%d records out, %d dead: %v", len(out), len(dead), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(points), "ns/point")
		})
	}
}

// BenchmarkReadAggRecords is the aggregator's reading of the aggregation
// records BenchmarkProcessK8sLoad/merged writes (8 raw records of 1,000
// points, 6 aggregation partitions): ReadRecordSets and the output series
// hashes, per point. Adding the points to the state is not in it.
func BenchmarkReadAggRecords(b *testing.B) {
	vals := aggRecords(b, otlptest.K8sLoadConfig{Pods: 20}, 8)
	mem := arrowpool.New()
	points, size := 0, 0
	for _, v := range vals {
		size += len(v)
	}
	var h aggregate.Hasher
	var hs []uint64
	b.ReportAllocs()
	for b.Loop() {
		points = 0
		for _, v := range vals {
			rb, _, _, err := aggregate.ReadRecordSets(v, mem)
			if err != nil {
				b.Fatal(err)
			}
			if hs, err = h.OutputHashes(hs[:0], "t", rb); err != nil {
				b.Fatal(err)
			}
			points += rb.Len()
			rb.Release()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(points), "ns/point")
	b.ReportMetric(float64(size)/float64(points), "B/point")
	b.ReportMetric(float64(len(vals)), "records")
}

// aggRecords are the aggregation records the worker writes of the first
// requests of a K8sLoad of cfg, as one poll, the rules of bench/e2e/rules
// merging every kept point, over 6 aggregation partitions.
func aggRecords(b *testing.B, cfg otlptest.K8sLoadConfig, requests int) [][]byte {
	b.Helper()
	l, err := otlptest.NewK8sLoad(cfg)
	if err != nil {
		b.Fatal(err)
	}
	mem := arrowpool.New()
	g := &group{sig: otlpwire.Metrics, tenant: "t"}
	for j := range requests {
		g.recs = append(g.recs, raw(otlpwire.Metrics, 0, "t", l.Request(nil, j)))
	}
	set := ruleFile(b, "../../bench/e2e/rules/e2e.yaml")
	engine := columnar.New(set, columnar.Options{Allocator: mem, AttrSetTable: true})
	t := &marking{Engine: engine, spec: &aggregate.Spec{Rule: "r", Interval: time.Second, Grace: 5 * time.Second}}
	bus := newBus(b)
	if err := bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: topics.Aggregate(), Partitions: 6}); err != nil {
		b.Fatal(err)
	}
	w, err := New(bus, Config{Topics: topics, Allocator: mem, MaxBatchItems: 16384, Cardinality: cardinality.New(cardinality.Config{})}, t)
	if err != nil {
		b.Fatal(err)
	}
	out, _, err := w.process(g, t)
	if err != nil {
		b.Fatal(err)
	}
	var vals [][]byte
	for _, r := range out {
		if string(r.Header(stream.HeaderContentType)) == stream.ContentTypeAggregate && len(r.Value) > 0 {
			vals = append(vals, r.Value)
		}
	}
	if len(vals) == 0 {
		b.Fatal("no aggregation records")
	}
	return vals
}

// BenchmarkAggRecordCodec compares the codecs for the aggregation records'
// bodies (what AppendRecord compresses) on a backlog's poll of the
// realistic corpus: 6 pods' 600 series, 16 steps of each, 8,640 points
// kept. "s2" is the codec of version 4, "zstd" the fastest level of
// version 3, each writing (enc) and reading (dec) the bodies; "bus-zstd"
// is the bus's zstd (level 1, 64 KiB window) over each codec's output,
// what the producer spent on the records before it sent them as they are.
func BenchmarkAggRecordCodec(b *testing.B) {
	vals := aggRecords(b, otlptest.K8sLoadConfig{Pods: 6, PerRequest: 600}, 16)
	var bodies [][]byte
	points := 0
	for _, v := range vals {
		body, err := s2.Decode(nil, v[len("SLAGG")+1:]) // version 4: magic, version, S2 block
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
		rb, _, _, err := aggregate.ReadRecord(v, nil)
		if err != nil {
			b.Fatal(err)
		}
		points += rb.Len()
		rb.Release()
	}
	zenc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20))
	bus, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(64<<10), zstd.WithEncoderCRC(false))
	zdec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	type codec struct {
		name string
		enc  func(dst, src []byte) []byte
		dec  func(dst, src []byte) ([]byte, error)
	}
	for _, c := range []codec{
		{"s2", func(dst, src []byte) []byte { return s2.Encode(dst[:cap(dst)], src) }, func(dst, src []byte) ([]byte, error) { return s2.Decode(dst[:cap(dst)], src) }},
		{"zstd", func(dst, src []byte) []byte { return zenc.EncodeAll(src, dst[:0]) }, func(dst, src []byte) ([]byte, error) { return zdec.DecodeAll(src, dst[:0]) }},
	} {
		var comp [][]byte
		size := 0
		for _, body := range bodies {
			comp = append(comp, c.enc(nil, body))
			size += len(comp[len(comp)-1])
		}
		var buf []byte
		for _, op := range []string{"enc", "dec", "bus-zstd"} {
			b.Run(c.name+"/"+op, func(b *testing.B) {
				for b.Loop() {
					for i, body := range bodies {
						var err error
						switch op {
						case "enc":
							buf = c.enc(buf, body)
						case "dec":
							buf, err = c.dec(buf, comp[i])
						default:
							buf = bus.EncodeAll(comp[i], buf[:0])
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(points), "ns/point")
				b.ReportMetric(float64(size)/float64(points), "B/point")
			})
		}
	}
}

// keepAgg is the bus of BenchmarkMergedBacklog: what goes to the
// processed topics is counted and dropped (a benchmark of many polls
// would keep it all in memory), the rest kept.
type keepAgg struct {
	*smemory.Bus
	points *int
}

func (k keepAgg) Produce(ctx context.Context, recs ...*stream.Record) error {
	keep := recs[:0:0]
	for _, r := range recs {
		if r.Topic == topics.Processed(otlpwire.Metrics) {
			n, _ := strconv.Atoi(string(r.Header(stream.HeaderItems)))
			*k.points += n
			continue
		}
		keep = append(keep, r)
	}
	if len(keep) == 0 {
		return nil
	}
	return k.Bus.Produce(ctx, keep...)
}

// BenchmarkMergedBacklog is the merged worker of make bench-e2e stage 3
// in process, without Kafka: a backlog of metrics-k8s (20 pods' 2,000
// series over 6 aggregation partitions) read a poll of 8 steps at a time
// (16,000 points), the rules of bench/e2e/rules applied (drop a route,
// set env, delete debug_id: every kept point merged), the aggregation
// records written, then read by the worker's aggregator, which merges
// them and writes the intervals that close (1 s, grace 5 s) as processed
// records, dropped ("aggregators"); or, with local_merge, merged in the
// raw partition's state by the worker itself, the closed intervals written
// once 20,000 points came in ("local_merge"). CPU-ns per point in; every
// iteration is a new poll of the backlog, later in time. Fetching and
// decompressing the raw records and producing to the bus are not in it.
func BenchmarkMergedBacklog(b *testing.B) {
	for _, local := range []bool{false, true} {
		name := "aggregators"
		if local {
			name = "local_merge" // merged in the raw partition's state, no aggregation records
		}
		b.Run(name, func(b *testing.B) { mergedBacklog(b, local) })
	}
}

func mergedBacklog(b *testing.B, local bool) {
	const pods, steps = 20, 8
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: pods, Start: time.Unix(1_700_000_000, 0)})
	if err != nil {
		b.Fatal(err)
	}
	mem := arrowpool.New()
	set := ruleFile(b, "../../bench/e2e/rules/e2e.yaml")
	engine := columnar.New(set, columnar.Options{Allocator: mem, AttrSetTable: true})
	t := &marking{Engine: engine, spec: &aggregate.Spec{Rule: "r", Interval: time.Second, Grace: 5 * time.Second}, keeps: set.KeepsResources()}
	out := 0
	bus := keepAgg{Bus: smemory.New(), points: &out}
	ctx := context.Background()
	// One raw partition: the aggregator's watermark waits for every
	// source (raw partition) to move.
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Raw(otlpwire.Metrics), Partitions: 1},
		stream.TopicSpec{Name: topics.Processed(otlpwire.Metrics), Partitions: 1}, stream.TopicSpec{Name: topics.DLQ(), Partitions: 1},
		stream.TopicSpec{Name: topics.Aggregate(), Partitions: 6}); err != nil {
		b.Fatal(err)
	}
	w, err := New(bus, Config{Topics: topics, Allocator: mem, MaxBatchItems: 16384, Cardinality: cardinality.New(cardinality.Config{}), LocalMerge: local}, t)
	if err != nil {
		b.Fatal(err)
	}
	a, err := NewAggregator(ctx, bus, AggregatorConfig{Topics: topics, Allocator: mem, CheckpointInterval: time.Hour, CheckpointPoints: -1})
	if err != nil {
		b.Fatal(err)
	}
	perPoll := steps * l.RequestsPerStep()
	reqs := make([][]byte, perPoll)
	g := &group{sig: otlpwire.Metrics, tenant: "t"}
	in := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		g.recs = g.recs[:0]
		for j := range perPoll {
			reqs[j] = l.Request(reqs[j], i*perPoll+j)
			g.recs = append(g.recs, raw(otlpwire.Metrics, 0, "t", reqs[j]))
		}
		b.StartTimer()
		if local {
			w.now = time.Now()
			w.localRules(t)
			if err := w.local.take(ctx, []*group{g}, w.now); err != nil {
				b.Fatal(err)
			}
		}
		clear(w.pending)
		recs, dead, err := w.process(g, t)
		if err != nil || len(dead) > 0 {
			b.Fatalf("%d dead: %v", len(dead), err)
		}
		recs = w.progress(recs)
		for _, r := range recs {
			r.Offset = int64(i)
		}
		if local {
			if err := w.local.flush(ctx); err != nil {
				b.Fatal(err)
			}
		} else if err := a.handle(ctx, recs); err != nil {
			b.Fatal(err)
		}
		in += perPoll * l.PerRequest()
	}
	b.StopTimer()
	// What closed since the last flush (one poll: all of it).
	if local {
		err = w.local.agg.flush(ctx)
	} else {
		err = a.flush(ctx)
	}
	if err != nil {
		b.Fatal(err)
	}
	if out == 0 {
		b.Fatal("no merged points written")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(in), "ns/point")
	b.ReportMetric(float64(out)/float64(in), "out/point")
}
