package worker

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
)

// Between checkpoints, the aggregator writes the intervals it closed once
// FlushPoints points came in: a backlog's closed intervals leave its state
// before the next checkpoint, which has not happened yet.
func TestAggregatorFlushesBetweenCheckpoints(t *testing.T) {
	bus := newBus(t)
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Aggregate(), Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	// One series, a point a second for 30 s, from raw partition 0; the
	// two other raw partitions have told they are at 100 s.
	const n = 30
	var pts []*metricspb.NumberDataPoint
	for i := range n {
		pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: uint64(i+1) * 1e9, Value: &metricspb.NumberDataPoint_AsInt{AsInt: int64(i)}})
	}
	body := gaugeRequest("g", pts)
	bld := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	if _, err := bld.Append(body); err != nil {
		t.Fatal(err)
	}
	b := bld.Build()
	in := make([]uint64, n)
	for i := range in {
		in[i] = 7
	}
	val, err := aggregate.AppendRecord(nil, b, in, aggregate.Spec{Rule: "r", Interval: time.Second, Grace: time.Second})
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	hdrs := func(src int) []stream.Header {
		return []stream.Header{{Key: stream.HeaderTenant, Value: []byte("acme")}, {Key: stream.HeaderSignal, Value: []byte("metrics")},
			{Key: HeaderSource, Value: []byte(strconv.Itoa(src))}}
	}
	var recs []*stream.Record
	for src := 1; src <= 2; src++ {
		recs = append(recs, &stream.Record{Topic: topics.Aggregate(), Partition: 0,
			Headers: append(hdrs(src), stream.Header{Key: HeaderProgress, Value: []byte("100000000000")})})
	}
	recs = append(recs, &stream.Record{Topic: topics.Aggregate(), Partition: 0, Value: val, Headers: hdrs(0)})
	if err := bus.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}

	a, err := NewAggregator(ctx, bus, AggregatorConfig{Topics: topics, CheckpointInterval: time.Hour, CheckpointPoints: -1, FlushPoints: 10})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAggregator(a)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	var written int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && written == 0; time.Sleep(10 * time.Millisecond) {
		written, _ = processedItems(t, bus, otlpwire.Metrics)
	}
	// The watermark is at 30 s: [k, k+1) closes when k+2 <= 30.
	if written != n-2 {
		t.Fatalf("%d merged points written before any checkpoint, want %d", written, n-2)
	}
	store, err := bus.StateStore(ctx, topics.AggregateState())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := store.Get(ctx, a.stateKey(0)); err != nil || v != nil {
		t.Fatalf("a checkpoint (%d bytes, %v) before the flush's check: want none yet", len(v), err)
	}
}

// runAggregator runs a until the returned stop is called; stop returns what
// Run returned, and may be called more than once.
func runAggregator(a *Aggregator) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
}
