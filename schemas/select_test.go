package schemas

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// TestSelect checks Select against the request filtered item by item:
// random requests, random subsets of their items (none, all, some), on a
// checked allocator; the selected batch also goes through the record
// codec.
func TestSelect(t *testing.T) {
	iters := 120
	if testing.Short() {
		iters = 40
	}
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			g := otlptest.NewGen(uint64(sig)+11, otlptest.GenOptions{})
			r := rand.New(rand.NewPCG(uint64(sig), 5))
			for i := range iters {
				in := g.Message(sig)
				body, err := proto.Marshal(in)
				if err != nil {
					t.Fatal(err)
				}
				bl := NewBuilder(sig, mem)
				if _, err := bl.Append(body); err != nil {
					t.Fatal(err)
				}
				batch := bl.Build()
				bl.Release()
				var rows []int32
				keepProb := []float64{0, 1, 0.5, 0.1}[i%4]
				for row := range batch.Len() {
					if r.Float64() < keepProb {
						rows = append(rows, int32(row))
					}
				}
				sel, err := Select(batch, rows, mem)
				if err != nil {
					t.Fatal(err)
				}
				batch.Release() // the selection holds nothing of its input
				out, err := ToOTLP(sel, nil)
				sel.Release()
				if err != nil {
					t.Fatal(err)
				}
				got := otlpwire.NewRequest(sig)
				if err := proto.Unmarshal(out, got); err != nil {
					t.Fatal(err)
				}
				want := filterItems(in, rows)
				// Compared by deterministic encoding (NaN is a value like
				// any other here: the generator makes them); the diff only
				// on failure, as it costs a hundred times more.
				if !sameEncoding(t, want, got) {
					d := cmp.Diff(want, got, protocmp.Transform(), cmpopts.EquateNaNs())
					t.Fatalf("iteration %d, rows %v: (-want +got)\n%s", i, rows, d)
				}
			}
		})
	}
}

// TestSelectSets: the selected items keep their attribute sets, numbered
// as FindItemAttrSets numbers them (the record is the same byte for byte
// with and without them), and a batch holding its items' attributes as a
// table of sets selects as the same batch expanded does: the same record.
func TestSelectSets(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 2, Series: 50, PerRequest: 100})
	if err != nil {
		t.Fatal(err)
	}
	bl := NewBuilder(otlpwire.Metrics, mem)
	defer bl.Release()
	for j := range 4 * l.RequestsPerStep() { // 4 steps of every series
		if _, err := bl.Append(l.Request(nil, j)); err != nil {
			t.Fatal(err)
		}
	}
	batch := bl.Build()
	defer batch.Release()
	batch.FindItemAttrSets(nil)
	if batch.ItemAttrSets == nil {
		t.Fatal("the batch's sets are not numbered")
	}
	var rec bytes.Buffer
	if err := WriteBatch(&rec, batch); err != nil {
		t.Fatal(err)
	}
	bySet, err := ReadBatchSets(rec.Bytes(), mem)
	if err != nil {
		t.Fatal(err)
	}
	defer bySet.Release()
	if bySet.ItemAttrSetTable == nil {
		t.Fatal("the record's sets are not read as a table")
	}
	r := rand.New(rand.NewPCG(7, 7))
	write := func(b *Batch) []byte {
		t.Helper()
		var w bytes.Buffer
		if err := WriteBatch(&w, b); err != nil {
			t.Fatal(err)
		}
		return w.Bytes()
	}
	for i := range 40 {
		var rows []int32
		keep := []float64{1, 0.5, 0.1, 0.02}[i%4]
		for row := range batch.Len() {
			if r.Float64() < keep {
				rows = append(rows, int32(row))
			}
		}
		sel, err := Select(batch, rows, mem)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 0 && len(sel.ItemAttrSets) != len(rows) {
			t.Fatalf("selection %d: %d sets for %d items", i, len(sel.ItemAttrSets), len(rows))
		}
		withSets := write(sel)
		sets := sel.ItemAttrSets
		sel.ItemAttrSets = nil
		if without := write(sel); !bytes.Equal(withSets, without) {
			t.Fatalf("selection %d: the record differs with the selected sets %v", i, sets)
		}
		sel.Release()

		selSet, err := Select(bySet, rows, mem)
		if err != nil {
			t.Fatal(err)
		}
		bySetRec := write(selSet)
		selSet.Release()
		if !bytes.Equal(bySetRec, withSets) {
			t.Fatalf("selection %d of the batch by set differs from the expanded batch's", i)
		}
	}
}

func TestSelectRejects(t *testing.T) {
	g := otlptest.NewGen(3, otlptest.GenOptions{})
	var batch *Batch
	for batch == nil || batch.Len() < 3 {
		if batch != nil {
			batch.Release()
		}
		body, _ := proto.Marshal(g.Message(otlpwire.Logs))
		bl := NewBuilder(otlpwire.Logs, memory.DefaultAllocator)
		if _, err := bl.Append(body); err != nil {
			t.Fatal(err)
		}
		batch = bl.Build()
		bl.Release()
	}
	defer batch.Release()
	for _, rows := range [][]int32{{1, 0}, {0, 0}, {-1}, {int32(batch.Len())}} {
		if sel, err := Select(batch, rows, memory.DefaultAllocator); err == nil {
			sel.Release()
			t.Errorf("rows %v accepted", rows)
		}
	}
}

func sameEncoding(t *testing.T, a, b proto.Message) bool {
	t.Helper()
	opt := proto.MarshalOptions{Deterministic: true}
	ea, err1 := opt.Marshal(a)
	eb, err2 := opt.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ea, eb)
}

// filterItems is req with only the items at rows (in wire order) and the
// parents that still hold items.
func filterItems(req proto.Message, rows []int32) proto.Message {
	// Copied through its encoding: proto.Clone loses -0 (see otlptest.Gen).
	body, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	cp := req.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(body, cp); err != nil {
		panic(err)
	}
	req = cp
	want := map[int]bool{}
	for _, r := range rows {
		want[int(r)] = true
	}
	n := 0
	keepItem := func() bool { n++; return want[n-1] }
	switch q := req.(type) {
	case *colmetrics.ExportMetricsServiceRequest:
		q.ResourceMetrics = filter(q.ResourceMetrics, func(rm *metricspb.ResourceMetrics) bool {
			rm.ScopeMetrics = filter(rm.ScopeMetrics, func(sm *metricspb.ScopeMetrics) bool {
				sm.Metrics = filter(sm.Metrics, func(m *metricspb.Metric) bool {
					switch d := m.Data.(type) {
					case *metricspb.Metric_Gauge:
						d.Gauge.DataPoints = filter(d.Gauge.DataPoints, func(*metricspb.NumberDataPoint) bool { return keepItem() })
					case *metricspb.Metric_Sum:
						d.Sum.DataPoints = filter(d.Sum.DataPoints, func(*metricspb.NumberDataPoint) bool { return keepItem() })
					case *metricspb.Metric_Histogram:
						d.Histogram.DataPoints = filter(d.Histogram.DataPoints, func(*metricspb.HistogramDataPoint) bool { return keepItem() })
					case *metricspb.Metric_ExponentialHistogram:
						d.ExponentialHistogram.DataPoints = filter(d.ExponentialHistogram.DataPoints, func(*metricspb.ExponentialHistogramDataPoint) bool { return keepItem() })
					case *metricspb.Metric_Summary:
						d.Summary.DataPoints = filter(d.Summary.DataPoints, func(*metricspb.SummaryDataPoint) bool { return keepItem() })
					}
					return otlpwire.PointCount(m) > 0
				})
				return len(sm.Metrics) > 0
			})
			return len(rm.ScopeMetrics) > 0
		})
	case *collogs.ExportLogsServiceRequest:
		q.ResourceLogs = filter(q.ResourceLogs, func(rl *logspb.ResourceLogs) bool {
			rl.ScopeLogs = filter(rl.ScopeLogs, func(sl *logspb.ScopeLogs) bool {
				sl.LogRecords = filter(sl.LogRecords, func(*logspb.LogRecord) bool { return keepItem() })
				return len(sl.LogRecords) > 0
			})
			return len(rl.ScopeLogs) > 0
		})
	case *coltrace.ExportTraceServiceRequest:
		q.ResourceSpans = filter(q.ResourceSpans, func(rs *tracepb.ResourceSpans) bool {
			rs.ScopeSpans = filter(rs.ScopeSpans, func(ss *tracepb.ScopeSpans) bool {
				ss.Spans = filter(ss.Spans, func(*tracepb.Span) bool { return keepItem() })
				return len(ss.Spans) > 0
			})
			return len(rs.ScopeSpans) > 0
		})
	}
	return req
}

func filter[T any](s []T, keep func(T) bool) []T {
	out := s[:0]
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
