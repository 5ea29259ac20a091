package schemas_test

// WriteBatch's benchmark and its golden test run on the batches the worker
// and the sinks write: the corpora as decoded, the Kubernetes corpus and load
// after what the workload's rules do (afterRules), and those batches read back
// (ReadBatch sets Batch.ItemAttrSets, as for a sink's re-encode).

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

var updateWriteGolden = flag.Bool("update-write-golden", false, "rewrite testdata/writebatch.golden from the current encoder")

// afterRules is what the Kubernetes workload's rules (drop the route
// /health, set cluster, delete debug_id, the attribute unique per series;
// bench/e2e/rules-unmerged) make of a metrics request, done on the OTLP
// message: the package sits below the rules engine. debug_id deleted, the
// attribute sets repeat across pods.
func afterRules(t testing.TB, body []byte) []byte {
	t.Helper()
	var req colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	edit := func(pts []*metricspb.NumberDataPoint) []*metricspb.NumberDataPoint {
		kept := pts[:0]
		for _, p := range pts {
			drop := false
			attrs := p.Attributes[:0]
			for _, kv := range p.Attributes {
				switch {
				case kv.Key == "http.route" && kv.Value.GetStringValue() == "/health":
					drop = true
				case kv.Key == "debug_id":
					continue
				}
				attrs = append(attrs, kv)
			}
			if drop {
				continue
			}
			p.Attributes = append(attrs, &commonpb.KeyValue{Key: "cluster", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "eu-1"}}})
			kept = append(kept, p)
		}
		return kept
	}
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case *metricspb.Metric_Gauge:
					d.Gauge.DataPoints = edit(d.Gauge.DataPoints)
				case *metricspb.Metric_Sum:
					d.Sum.DataPoints = edit(d.Sum.DataPoints)
				}
			}
		}
	}
	out, err := proto.Marshal(&req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type writeCase struct {
	name  string
	batch *schemas.Batch
}

// writeCases builds the batches on mem; release them with releaseCases.
func writeCases(t testing.TB, mem memory.Allocator, random bool) []writeCase {
	t.Helper()
	build := func(sig otlpwire.Signal, bodies ...[]byte) *schemas.Batch {
		bl := schemas.NewBuilder(sig, mem)
		defer bl.Release()
		for _, body := range bodies {
			if _, err := bl.Append(body); err != nil {
				t.Fatal(err)
			}
		}
		return bl.Build()
	}
	var cs []writeCase
	add := func(name string, sig otlpwire.Signal, bodies ...[]byte) {
		cs = append(cs, writeCase{name, build(sig, bodies...)})
		if sig != otlpwire.Metrics {
			return
		}
		var edited [][]byte
		for _, body := range bodies {
			edited = append(edited, afterRules(t, body))
		}
		out := build(sig, edited...)
		cs = append(cs, writeCase{name + "+rules", out})
		// The sink's and the re-encoder's case: a batch read back, with
		// ItemAttrSets.
		var buf bytes.Buffer
		if err := schemas.WriteBatch(&buf, out); err != nil {
			t.Fatal(err)
		}
		rb, err := schemas.ReadBatch(buf.Bytes(), mem)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, writeCase{name + "+rules+reread", rb})
	}
	for _, c := range otlptest.Corpora() {
		add(c.Name, c.Signal, c.Body)
	}
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var reqs [][]byte
	for j := range l.RequestsPerStep() {
		reqs = append(reqs, l.Request(nil, j))
	}
	add("k8s-load", otlpwire.Metrics, reqs...)
	if !random {
		return cs
	}
	// Random batches, each request appended 1 to 3 times so that attribute
	// sets repeat (the table path of map columns) or not, and read back.
	for _, sig := range otlpwire.Signals {
		g := otlptest.NewGen(uint64(sig)*31+7, otlptest.GenOptions{Unknown: true})
		r := rand.New(rand.NewPCG(uint64(sig), 17))
		for k := range 40 {
			body := g.Request(sig)
			var bodies [][]byte
			for range 1 + r.IntN(3) {
				bodies = append(bodies, body)
			}
			b := build(sig, bodies...)
			name := fmt.Sprintf("random/%s/%d", sig, k)
			cs = append(cs, writeCase{name, b})
			var buf bytes.Buffer
			if err := schemas.WriteBatch(&buf, b); err != nil {
				t.Fatal(err)
			}
			rb, err := schemas.ReadBatch(buf.Bytes(), mem)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, writeCase{name + "+reread", rb})
		}
	}
	return cs
}

func releaseCases(cs []writeCase) {
	for _, c := range cs {
		c.batch.Release()
	}
}

// TestWriteBatchGolden: WriteBatch writes, for the corpora, the Kubernetes
// workload's batches and random batches, the bytes the encoder wrote when
// testdata/writebatch.golden was made (sha256 and length of each value). A
// faster encoder must write the same values, bit for bit.
func TestWriteBatchGolden(t *testing.T) {
	want := map[string]string{}
	if !*updateWriteGolden {
		want = schemas.ReadGolden(t, "testdata/writebatch.golden")
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	cs := writeCases(t, mem, true)
	var out strings.Builder
	for _, c := range cs {
		var buf bytes.Buffer
		if err := schemas.WriteBatch(&buf, c.batch); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := fmt.Sprintf("%x %d", sha256.Sum256(buf.Bytes()), buf.Len())
		fmt.Fprintf(&out, "%s %s\n", c.name, got)
		if *updateWriteGolden {
			continue
		}
		if w, ok := want[c.name]; !ok {
			t.Errorf("%s: not in the golden file", c.name)
		} else if w != got {
			t.Errorf("%s: value %s, want %s", c.name, got, w)
		}
	}
	if len(want) != 0 && len(want) != len(cs) {
		t.Errorf("%d cases, the golden file has %d", len(cs), len(want))
	}
	releaseCases(cs)
	mem.AssertSize(t, 0)
	if *updateWriteGolden {
		if err := os.WriteFile("testdata/writebatch.golden", []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkWriteBatch: WriteBatch of the processed record, as the worker
// writes it (the corpora, metrics-k8s and the k8s load after the workload's
// rules) and as a sink or re-encoder does (+reread: ItemAttrSets set).
func BenchmarkWriteBatch(b *testing.B) {
	cs := writeCases(b, arrowpool.New(), false)
	defer releaseCases(cs)
	for _, c := range cs {
		b.Run(c.name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			cpu0 := schemas.CPUTime()
			for b.Loop() {
				buf.Reset()
				if err := schemas.WriteBatch(&buf, c.batch); err != nil {
					b.Fatal(err)
				}
			}
			cpu := schemas.CPUTime() - cpu0
			n := float64(b.N) * float64(c.batch.Len())
			b.ReportMetric(b.Elapsed().Seconds()*1e9/n, "ns/item")
			b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/item")
			b.ReportMetric(float64(buf.Len())/float64(c.batch.Len()), "B/item")
		})
	}
}

// TestWriteBatchBySet: a batch holding its items' attributes as a table
// of sets (ReadBatchSets here; the rules engine makes them too) is
// written byte for byte as the batch it came from, over the golden cases.
// A table not numbered in order of first appearance (here reversed) is
// written as the column of the items' attributes: the same bytes again,
// and the same items read back.
func TestWriteBatchBySet(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	cs := writeCases(t, mem, true)
	defer releaseCases(cs)
	bySet := 0
	for _, c := range cs {
		var want bytes.Buffer
		if err := schemas.WriteBatch(&want, c.batch); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, err := schemas.ReadBatchSets(want.Bytes(), mem)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if b.ItemAttrSetTable == nil {
			b.Release()
			continue
		}
		bySet++
		var got bytes.Buffer
		if err := schemas.WriteBatch(&got, b); err != nil {
			t.Fatalf("%s: by set: %v", c.name, err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: by set: %d bytes, want the %d of the batch it came from", c.name, got.Len(), want.Len())
		}
		// Reversed numbering: not by first appearance.
		n := b.ItemAttrSetTable.Len()
		for i, s := range b.ItemAttrSets {
			b.ItemAttrSets[i] = uint32(n-1) - s
		}
		rev := array.NewSlice(b.ItemAttrSetTable, 0, int64(n)) // the same rows, to be reversed below
		rs := make([][2]int32, 0, n)
		for s := n - 1; s >= 0; s-- {
			rs = append(rs, [2]int32{int32(s), int32(s) + 1})
		}
		d := schemas.Take(mem, rev.Data(), rs, nil)
		rev.Release()
		b.ItemAttrSetTable.Release()
		b.ItemAttrSetTable = array.NewMapData(d)
		d.Release()
		got.Reset()
		if err := schemas.WriteBatch(&got, b); err != nil {
			t.Fatalf("%s: reversed: %v", c.name, err)
		}
		b.Release()
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: reversed: %d bytes, want the %d of the batch it came from (its column has the same rows)", c.name, got.Len(), want.Len())
		}
		wantReq, _, err := schemas.BatchToOTLP(want.Bytes(), nil, mem)
		if err != nil {
			t.Fatal(err)
		}
		gotReq, _, err := schemas.BatchToOTLP(got.Bytes(), nil, mem)
		if err != nil {
			t.Fatalf("%s: reversed: %v", c.name, err)
		}
		if !bytes.Equal(gotReq, wantReq) {
			t.Errorf("%s: reversed: reads back to other items", c.name)
		}
	}
	if bySet < 10 {
		t.Errorf("%d cases by set, want at least 10", bySet)
	}
	releaseCases(cs)
	cs = nil
	mem.AssertSize(t, 0)
}
