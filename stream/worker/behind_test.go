package worker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
)

// A worker that stalls for longer than the grace, with records of its raw
// partition not yet read, does not make that partition's points late: the
// aggregator's ticks say the source is behind, and its watermark waits.
// Once the workers have committed the partition, the wall clock closes the
// last intervals. Every point is counted in and out. The same run without
// ticks (the wall clock as the aggregator reads) loses the points the
// stalled source sends after the stall: the control, so that this test can
// fail.
func TestAggregatorWaitsForSourcesBehind(t *testing.T) {
	for _, tc := range []struct {
		name string
		tick time.Duration
	}{{"ticks", 50 * time.Millisecond}, {"wall clock", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			late, written := stalledSource(t, tc.tick)
			t.Logf("%d points late, %d merged points written", late, written)
			if tc.tick > 0 && (late != 0 || written != 61) {
				t.Fatalf("%d points late, %d merged points written; want none late and 61 (31 intervals of a, 30 of b)", late, written)
			}
			if tc.tick < 0 && late == 0 {
				t.Fatalf("without ticks no point was late: the stall did not happen")
			}
		})
	}
}

// stalledSource runs an aggregator over points of two sources: raw
// partition 0 sends series a up to 30 s at once; partition 1, whose worker
// has not committed its raw record, sends series b up to 10 s, stalls for
// three graces, then sends b from 11 s to 30 s. It returns the points late
// and the merged points written.
func stalledSource(t *testing.T, tick time.Duration) (late uint64, written int) {
	bus := newBus(t)
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Aggregate(), Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	spec := aggregate.Spec{Rule: "r", Interval: time.Second, Grace: time.Second}
	// The workers' group: raw partitions 0 and 2 committed, 1 not.
	rawTopic := topics.Raw(otlpwire.Metrics)
	for p := range int32(3) {
		if err := bus.Produce(ctx, raw(otlpwire.Metrics, p, "acme", []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	workers, err := bus.Consume(stream.ConsumerConfig{Group: "sluice-worker", Topics: []string{rawTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer workers.Close()
	got, err := workers.Poll(ctx)
	if err != nil || len(got) != 3 {
		t.Fatalf("polled %d raw records, %v", len(got), err)
	}
	var stalled *stream.Record
	for _, r := range got {
		if r.Partition == 1 {
			stalled = r
		} else if err := workers.Commit(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	produce := func(recs ...*stream.Record) {
		t.Helper()
		if err := bus.Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	produce(gaugeRecord(t, "a", 1, 30, 0, spec), gaugeRecord(t, "b", 1, 10, 1, spec), progressRecord(2, 100*time.Second))
	a, err := NewAggregator(ctx, bus, AggregatorConfig{Topics: topics, CheckpointInterval: 100 * time.Millisecond, CheckpointPoints: -1,
		FlushPoints: 1, TickInterval: tick})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAggregator(a)
	defer stop()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	merged := func() int {
		n, _ := processedItems(t, bus, otlpwire.Metrics)
		return n
	}
	// Source 1 holds the watermark at 10 s: [k, k+1) of both series closes
	// when k+2 <= 10.
	waitFor("the first merged points", func() bool { return merged() >= 16 })
	time.Sleep(3 * spec.Grace) // source 1 stalls, silent
	produce(gaugeRecord(t, "a", 31, 31, 0, spec))
	produce(gaugeRecord(t, "b", 11, 30, 1, spec))
	pointsIn := func() bool { return a.Stats()["r"].PointsIn == 61 }
	waitFor("every point in", pointsIn)
	late = a.Stats()["r"].PointsLate
	if late == 0 {
		// Source 1's worker commits: nothing is left to read, and the
		// wall clock closes the last intervals.
		if err := workers.Commit(ctx, stalled); err != nil {
			t.Fatal(err)
		}
		waitFor("every interval closed", func() bool { return merged() >= 61 })
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return a.Stats()["r"].PointsLate, merged()
}

// gaugeRecord is an aggregation record of source src: gauge name's points
// a second apart from from to to seconds, valued by their second.
func gaugeRecord(t *testing.T, name string, from, to int, src int32, spec aggregate.Spec) *stream.Record {
	t.Helper()
	var pts []*metricspb.NumberDataPoint
	for s := from; s <= to; s++ {
		pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: uint64(s) * 1e9, Value: &metricspb.NumberDataPoint_AsInt{AsInt: int64(s)}})
	}
	bld := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	if _, err := bld.Append(gaugeRequest(name, pts)); err != nil {
		t.Fatal(err)
	}
	b := bld.Build()
	defer b.Release()
	in := make([]uint64, len(pts))
	for i := range in {
		in[i] = uint64(len(name)) // one input series per name
	}
	val, err := aggregate.AppendRecord(nil, b, in, spec)
	if err != nil {
		t.Fatal(err)
	}
	return &stream.Record{Topic: topics.Aggregate(), Partition: 0, Value: val, Headers: aggHeaders(src)}
}

// progressRecord says that source src has sent every point up to at.
func progressRecord(src int32, at time.Duration) *stream.Record {
	return &stream.Record{Topic: topics.Aggregate(), Partition: 0,
		Headers: append(aggHeaders(src), stream.Header{Key: HeaderProgress, Value: strconv.AppendInt(nil, int64(at), 10)})}
}

func aggHeaders(src int32) []stream.Header {
	return []stream.Header{{Key: stream.HeaderTenant, Value: []byte("acme")}, {Key: stream.HeaderSignal, Value: []byte("metrics")},
		{Key: HeaderSource, Value: strconv.AppendInt(nil, int64(src), 10)}}
}

// A partition taken up from a checkpoint goes on from the clock of the
// ticks read before it (the snapshot's), not from the wall clock after the
// downtime: a crash longer than the grace does not make the points read
// again, or sent meanwhile, late. Taken up at the wall clock, the first
// flush would move its idle watermark over the downtime: the control.
func TestAggregatorRestoresItsClock(t *testing.T) {
	bus := newBus(t)
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Aggregate(), Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	spec := aggregate.Spec{Rule: "r", Interval: time.Second, Grace: time.Second}
	cfg := AggregatorConfig{Topics: topics, CheckpointInterval: time.Hour, CheckpointPoints: -1, TickInterval: time.Hour}
	first, err := NewAggregator(ctx, bus, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := first.partition(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Unix(0, time.Now().Add(-time.Minute).UnixNano()) // the last tick read before the crash
	ps.clock = before.Add(-time.Second)                             // as if taken up a minute ago
	tick := &stream.Record{Topic: topics.Aggregate(), Partition: 0, Headers: []stream.Header{
		{Key: HeaderTick, Value: strconv.AppendInt(nil, before.UnixNano(), 10)}, {Key: HeaderBehind, Value: []byte("-")}}}
	for _, r := range []*stream.Record{tick, gaugeRecord(t, "a", 1, 10, 0, spec), gaugeRecord(t, "b", 1, 10, 1, spec), progressRecord(2, 100*time.Second)} {
		if _, err := first.read(ps, r, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if !ps.now(time.Now()).Equal(before) {
		t.Fatalf("clock %v after the tick of %v", ps.now(time.Now()), before)
	}
	if err := first.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	for _, wall := range []bool{false, true} {
		second, err := NewAggregator(ctx, bus, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := second.partition(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !wall && !ps.now(time.Now()).Equal(before) {
			t.Fatalf("restored at %v, want the clock of its checkpoint, %v", ps.now(time.Now()), before)
		}
		if wall {
			ps.clock = time.Now()
		}
		if err := second.flush(ctx); err != nil { // a checkpoint's, first thing
			t.Fatal(err)
		}
		for _, r := range []*stream.Record{gaugeRecord(t, "a", 11, 12, 0, spec), gaugeRecord(t, "b", 11, 12, 1, spec)} {
			if _, err := second.read(ps, r, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		late := ps.agg.Stats()["r"].PointsLate
		switch {
		case !wall && late != 0:
			t.Fatalf("%d points late after a restore at the checkpoint's clock", late)
		case wall && late == 0:
			t.Fatalf("no point late after a restore at the wall clock a minute later: the control did not see the downtime")
		}
	}
}

// An aggregator ticks while it hears records or holds open intervals, and
// stops a while after: an idle pipeline writes nothing to the bus.
func TestAggregatorTicksOnlyWhileBusy(t *testing.T) {
	bus := newBus(t)
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Aggregate(), Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	a, err := NewAggregator(ctx, bus, AggregatorConfig{Topics: topics, CheckpointInterval: 20 * time.Millisecond, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a.tickIdle = 200 * time.Millisecond
	stop := runAggregator(a)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	ticks := func() (n int) {
		for _, r := range bus.Records(topics.Aggregate()) {
			if r.Header(HeaderTick) != nil {
				if b := string(r.Header(HeaderBehind)); b != "-" && b != "*" { // "*": the first after the pause
					t.Fatalf("tick with %s %q: the workers have no raw records", HeaderBehind, b)
				}
				n++
			}
		}
		return n
	}
	settled := func() int {
		t.Helper()
		last := -1
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			n := ticks()
			if n == last {
				return n
			}
			last = n
		}
		t.Fatalf("still ticking 10 s in: %d ticks", last)
		return 0
	}
	idle := settled()
	if idle == 0 {
		t.Fatal("no tick at all after the start")
	}
	spec := aggregate.Spec{Rule: "r", Interval: time.Second, Grace: time.Second}
	if err := bus.Produce(ctx, gaugeRecord(t, "a", 1, 3, 0, spec)); err != nil {
		t.Fatal(err)
	}
	if again := settled(); again <= idle {
		t.Fatalf("%d ticks before a record, %d after: want more", idle, again)
	}
}

// A tick written more than three intervals after the last (the process did
// not run) says every source is behind: read after a stall of the whole
// process, it keeps the sources the stall silenced holding the watermark.
// The same tick saying none (what the workers' lag alone would say once
// they caught up) lets the stall make the slower source's points late.
func TestTickAfterAGapHoldsEverySource(t *testing.T) {
	bus := newBus(t)
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Aggregate(), Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	a, err := NewAggregator(ctx, bus, AggregatorConfig{Topics: topics, CheckpointInterval: time.Hour, CheckpointPoints: -1, TickInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	behindOfTick := func() string {
		t.Helper()
		if err := a.tick(ctx); err != nil {
			t.Fatal(err)
		}
		recs := bus.Records(topics.Aggregate())
		return string(recs[len(recs)-1].Header(HeaderBehind))
	}
	a.lastTick = time.Now().Add(-4 * time.Second)
	if got := behindOfTick(); got != "*" {
		t.Fatalf("a tick 4 intervals after the last says %q behind, want *", got)
	}
	if got := behindOfTick(); got != "-" {
		t.Fatalf("the next tick says %q behind, want - (the workers have no raw records)", got)
	}
	if n, b := testutil.ToFloat64(a.m.ticks), testutil.ToFloat64(a.m.behind); n != 2 || b != 0 {
		t.Errorf("sluice_aggregator_ticks_total %v, sluice_aggregator_sources_behind %v; want 2 and 0", n, b)
	}
	if err := bus.Produce(ctx, raw(otlpwire.Metrics, 1, "acme", []byte("x")), raw(otlpwire.Metrics, 2, "acme", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if got := behindOfTick(); got != "1,2" || testutil.ToFloat64(a.m.behind) != 2 {
		t.Fatalf("with raw records in partitions 1 and 2 not committed: the tick says %q behind, the gauge %v; want 1,2 and 2", got, testutil.ToFloat64(a.m.behind))
	}

	spec := aggregate.Spec{Rule: "r", Interval: time.Second, Grace: time.Second}
	for _, behind := range []string{"*", "-"} {
		ps := &aggPartition{agg: aggregate.New(aggregate.Config{Sources: 3, Allocator: memory.DefaultAllocator}), last: -1}
		ps.clock = time.Unix(5000, 0)
		tick := &stream.Record{Topic: topics.Aggregate(), Headers: []stream.Header{
			{Key: HeaderTick, Value: strconv.AppendInt(nil, ps.clock.Add(10*time.Second).UnixNano(), 10)}, {Key: HeaderBehind, Value: []byte(behind)}}}
		for _, r := range []*stream.Record{progressRecord(2, 100*time.Second), gaugeRecord(t, "a", 1, 10, 0, spec), gaugeRecord(t, "b", 1, 5, 1, spec),
			tick, gaugeRecord(t, "a", 11, 11, 0, spec), gaugeRecord(t, "b", 6, 6, 1, spec)} {
			if _, err := a.read(ps, r, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		late := ps.agg.Stats()["r"].PointsLate
		if behind == "*" && late != 0 {
			t.Errorf("after a * tick: %d points late, want none", late)
		}
		if behind == "-" && late == 0 {
			t.Errorf("after a - tick 10 s later: no point late, want source 1's (the control)")
		}
	}
}
