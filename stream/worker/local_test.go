package worker

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules/columnar"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
	smemory "github.com/sluice-dev/sluice/stream/memory"
)

// localLoad is the input of the local merge tests: pods, each a resource
// of its own in one raw partition (pod % 3), with two routes and two
// series per route that differ only in debug_id, which the rules delete:
// every output series (pod, route) merges two inputs, summed.
const (
	localPods   = 6
	localSteps  = 40
	localRoutes = 2
)

// localRecords are the raw records of steps [from, to) of localLoad, a
// record per pod and step, point times from base.
func localRecords(base time.Time, from, to int) []*stream.Record {
	var recs []*stream.Record
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	for k := from; k < to; k++ {
		for pod := range localPods {
			var pts []*metricspb.NumberDataPoint
			for route := range localRoutes {
				for id := range 2 {
					pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: uint64(base.Add(time.Duration(k) * time.Second).UnixNano()),
						Attributes: []*commonpb.KeyValue{str("route", fmt.Sprint("/r", route)), str("debug_id", fmt.Sprint(pod, route, id))},
						Value:      &metricspb.NumberDataPoint_AsInt{AsInt: localValue(pod, route, id, k)}})
				}
			}
			body, err := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
				Resource:     &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("k8s.pod.name", fmt.Sprint("pod-", pod))}},
				ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: "g", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: pts}}}}}}}}})
			if err != nil {
				panic(err)
			}
			r := raw(otlpwire.Metrics, int32(pod%3), "acme", body)
			r.Timestamp = time.Now()
			recs = append(recs, r)
		}
	}
	return recs
}

func localValue(pod, route, id, k int) int64 { return int64(1000*pod + 100*route + 10*id + k) }

// localWant is the merged output of steps [0, localSteps): per (pod,
// route, interval end) the sum of the two inputs.
func localWant(base time.Time) map[string]int64 {
	want := map[string]int64{}
	for pod := range localPods {
		for route := range localRoutes {
			for k := range localSteps {
				end := base.Add(time.Duration(k+1) * time.Second).UnixNano()
				want[fmt.Sprintf("pod-%d /r%d %d", pod, route, end)] = localValue(pod, route, 0, k) + localValue(pod, route, 1, k)
			}
		}
	}
	return want
}

// mergedPoints reads the processed metrics topic: per (pod, route, time)
// the value, failing on a point written twice with another value or a
// point that kept its debug_id.
func mergedPoints(t *testing.T, bus *smemory.Bus) (got map[string]int64, n int) {
	t.Helper()
	got = map[string]int64{}
	for _, r := range bus.Records(topics.Processed(otlpwire.Metrics)) {
		pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var req colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(pb, &req); err != nil {
			t.Fatal(err)
		}
		for _, rm := range req.ResourceMetrics {
			pod := rm.GetResource().GetAttributes()[0].GetValue().GetStringValue()
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					for _, p := range m.GetGauge().GetDataPoints() {
						route := ""
						for _, kv := range p.Attributes {
							if kv.Key == "debug_id" {
								t.Fatalf("a point written with its debug_id: %v", p)
							}
							if kv.Key == "route" {
								route = kv.GetValue().GetStringValue()
							}
						}
						k := fmt.Sprintf("%s %s %d", pod, route, p.TimeUnixNano)
						if v, ok := got[k]; ok && v != p.GetAsInt() {
							t.Fatalf("%s written as %d and as %d", k, v, p.GetAsInt())
						}
						got[k] = p.GetAsInt()
						n++
					}
				}
			}
		}
	}
	return got, n
}

// localBus is a bus with the aggregation topic.
func localBus(t *testing.T) *smemory.Bus {
	bus := newBus(t)
	if err := bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: topics.Aggregate(), Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	return bus
}

// localRules: the rules delete debug_id; the points merge by sum in 1 s
// intervals with a grace of 2 s.
func localRules(t *testing.T) *marking {
	set := ruleFile(t, "testdata/local.yaml")
	if !set.KeepsResources() {
		t.Fatal("the rules change resources")
	}
	return &marking{Engine: columnar.New(set, columnar.Options{AttrSetTable: true}), keeps: true,
		spec: &aggregate.Spec{Rule: "sum-ids", Interval: time.Second, Grace: 2 * time.Second, Gauge: aggregate.GaugeSum}}
}

// With local_merge the worker merges the points of each raw partition
// itself: every merged point reaches the processed topic with the value
// the aggregators give it, no point goes through the aggregation topic,
// and once the last intervals close every raw position is committed.
func TestLocalMerge(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	want := localWant(base)
	for _, local := range []bool{true, false} {
		t.Run(fmt.Sprint("local=", local), func(t *testing.T) {
			bus := localBus(t)
			tr := localRules(t)
			if err := bus.Produce(context.Background(), localRecords(base, 0, localSteps)...); err != nil {
				t.Fatal(err)
			}
			if !local { // the aggregators merge
				a, err := NewAggregator(context.Background(), bus, AggregatorConfig{Topics: topics, CheckpointInterval: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				defer runAggregator(a)()
			}
			run(t, bus, tr, Config{LocalMerge: local, MergeCheckpointInterval: 100 * time.Millisecond}, func() bool {
				_, n := mergedPoints(t, bus)
				return n >= len(want) && lag(t, bus) == 0
			})
			got, n := mergedPoints(t, bus)
			if !maps.Equal(got, want) || n != len(want) {
				t.Errorf("%d merged points (%d distinct), want %d", n, len(got), len(want))
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s: %d, want %d", k, got[k], v)
						break
					}
				}
			}
			if l := lag(t, bus); l != 0 {
				t.Errorf("%d raw records not committed", l)
			}
			points := 0
			for _, r := range bus.Records(topics.Aggregate()) {
				if r.Header(HeaderProgress) == nil {
					points++
				}
			}
			if n := len(bus.Records(topics.Aggregate())); local && n > 0 {
				t.Errorf("%d records (%d of points) in the aggregation topic, want none: the rules send the aggregators nothing", n, points)
			}
			if !local && points == 0 {
				t.Error("no records of points in the aggregation topic without local_merge")
			}
		})
	}
}

// A worker that stops hands its raw partitions' state on: the next one
// restores it and goes on, and the merged output is the same as one
// worker's, with no point lost or written twice with another value.
func TestLocalMergeRestores(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	want := localWant(base)
	bus := localBus(t)
	cfg := Config{LocalMerge: true, MergeCheckpointInterval: time.Hour} // no checkpoint but the last
	half := localRecords(base, 0, localSteps/2)
	if err := bus.Produce(context.Background(), half...); err != nil {
		t.Fatal(err)
	}
	// Stopped well within the grace of its last points: their
	// intervals are open, in the state it leaves.
	start := time.Now()
	run(t, bus, localRules(t), cfg, func() bool { return time.Since(start) > 500*time.Millisecond })
	first, _ := mergedPoints(t, bus)
	if open := localPods * localRoutes * 3; len(first) != len(want)/2-open {
		t.Fatalf("%d merged points after the first half, want %d (the last %d intervals stay open)", len(first), len(want)/2-open, open)
	}
	if l := lag(t, bus); l != 0 {
		t.Fatalf("%d raw records not committed after the last checkpoint", l)
	}
	if err := bus.Produce(context.Background(), localRecords(base, localSteps/2, localSteps)...); err != nil {
		t.Fatal(err)
	}
	cfg.MergeCheckpointInterval = 100 * time.Millisecond
	run(t, bus, localRules(t), cfg, func() bool {
		_, n := mergedPoints(t, bus)
		return n >= len(want) && lag(t, bus) == 0
	})
	got, n := mergedPoints(t, bus)
	if !maps.Equal(got, want) || n != len(want) {
		t.Errorf("%d merged points (%d distinct), want %d", n, len(got), len(want))
	}
}

// local_merge needs a bus that keeps state and no transactions.
func TestLocalMergeConfig(t *testing.T) {
	bus := localBus(t)
	if _, err := New(bus, Config{Topics: topics, LocalMerge: true, ExactlyOnce: true, TransactionalID: "x"}, nil); err == nil {
		t.Error("local_merge with exactly_once: no error")
	}
}

// Under rules with a limit, whose points merge through the aggregators,
// the aggregators are still told each raw partition's progress, also of
// the batches merged in the worker: else a raw partition the worker is
// behind on would hold their watermarks.
func TestLocalMergeTellsProgressUnderLimits(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	bus := localBus(t)
	recs := localRecords(base, 0, 5)
	if err := bus.Produce(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	tr := localRules(t)
	tr.limits = true
	run(t, bus, tr, Config{LocalMerge: true, MergeCheckpointInterval: 100 * time.Millisecond}, func() bool { return lag(t, bus) == 0 })
	told := map[string]bool{}
	for _, r := range bus.Records(topics.Aggregate()) {
		if r.Header(HeaderProgress) == nil {
			t.Fatalf("a record of points in the aggregation topic: the points merge in the worker")
		}
		told[string(r.Header(HeaderSource))] = true
	}
	if len(told) != 3 {
		t.Errorf("progress told of raw partitions %v, want all 3", told)
	}
}

// flaky fails its first ApplyMerge.
type flaky struct {
	*marking
	failed bool
}

func (f *flaky) ApplyMerge(b *schemas.Batch, dst []Merge) (*schemas.Batch, []Merge, error) {
	if !f.failed {
		f.failed = true
		return nil, dst, fmt.Errorf("a rule failed")
	}
	return f.marking.ApplyMerge(b, dst)
}

// A batch whose rules fail tells no progress: its retry's points, older
// than its newest by more than the grace, are not late.
func TestLocalMergeFailedBatchTellsNothing(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	bus := localBus(t)
	const steps = 10 // one batch per raw partition, 10 s of points: 5 graces
	if err := bus.Produce(context.Background(), localRecords(base, 0, steps)...); err != nil {
		t.Fatal(err)
	}
	tr := &flaky{marking: localRules(t)}
	want := localPods * localRoutes * steps
	run(t, bus, tr, Config{LocalMerge: true, MergeCheckpointInterval: 100 * time.Millisecond}, func() bool {
		_, n := mergedPoints(t, bus)
		return n >= want && lag(t, bus) == 0
	})
	if !tr.failed {
		t.Fatal("the rules never failed")
	}
	if got, n := mergedPoints(t, bus); len(got) != want || n != want {
		t.Errorf("%d merged points (%d distinct), want %d: the retry's points were late", n, len(got), want)
	}
}

// Two tenants' points in one raw partition, step by step, read in one
// poll: a batch per tenant, each spanning more than the grace. The
// partition's progress is told after both, so that the second tenant's
// points are not judged against the first's newest (they would be late),
// whether merged here or by the aggregators.
func TestProgressAfterEveryTenant(t *testing.T) {
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	const steps = 10 // 5 graces
	for _, local := range []bool{true, false} {
		t.Run(fmt.Sprint("local=", local), func(t *testing.T) {
			bus := localBus(t)
			var recs []*stream.Record // step by step, as they come
			for k := range steps {
				for _, tenant := range []string{"acme", "beta"} {
					for _, r := range localRecords(base, k, k+1) {
						if r.Partition == 0 {
							setHeader(r, stream.HeaderTenant, []byte(tenant))
							recs = append(recs, r)
						}
					}
				}
			}
			if err := bus.Produce(context.Background(), recs...); err != nil {
				t.Fatal(err)
			}
			if !local {
				a, err := NewAggregator(context.Background(), bus, AggregatorConfig{Topics: topics, CheckpointInterval: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				defer runAggregator(a)()
			}
			want := 2 * 2 * localRoutes * steps // two tenants' two pods of partition 0
			run(t, bus, localRules(t), Config{LocalMerge: local, MergeCheckpointInterval: 100 * time.Millisecond}, func() bool {
				return processedPoints(t, bus) >= want && lag(t, bus) == 0
			})
			if n := processedPoints(t, bus); n != want {
				t.Errorf("%d merged points, want %d", n, want)
			}
		})
	}
}

// processedPoints counts the points of the processed metrics topic.
func processedPoints(t *testing.T, bus *smemory.Bus) int {
	n, _ := processedItems(t, bus, otlpwire.Metrics)
	return n
}
