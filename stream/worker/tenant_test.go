package worker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
)

// TestInvalidTenantDeadLettered: raw records whose sluice-tenant header is
// not a valid tenant name (any client of the bus can write one) go to the
// DLQ with an error naming the header and the record, and reach no
// processed record; the valid records beside them, and those without a
// tenant (kept as they are), are processed, and every raw position is
// committed.
func TestInvalidTenantDeadLettered(t *testing.T) {
	bus := newBus(t)
	ctx := context.Background()
	shape := otlptest.Shape{Resources: 2, Items: 3}
	per := shape.ItemCount(otlpwire.Logs)
	in := map[string]int{} // items written, by tenant
	for i, tenant := range []string{"team-a", "../../x", "team-b", "victim|other", "", "team-a"} {
		shape.Seed = i
		r := raw(otlpwire.Logs, 0, tenant, otlptest.Request(otlpwire.Logs, shape))
		if tenant == "" {
			r.Headers = r.Headers[:1] // no tenant header at all
		}
		if err := bus.Produce(ctx, r); err != nil {
			t.Fatal(err)
		}
		in[tenant] += per
	}
	run(t, bus, nil, Config{}, func() bool { return len(bus.Records(topics.DLQ())) == 2 && lag(t, bus) == 0 })

	out := map[string]int{}
	for _, r := range bus.Records(topics.Processed(otlpwire.Logs)) {
		pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := otlpwire.Count(otlpwire.Logs, pb)
		if err != nil {
			t.Fatal(err)
		}
		out[string(r.Header(stream.HeaderTenant))] += n
	}
	for _, tenant := range []string{"team-a", "team-b", ""} {
		if out[tenant] != in[tenant] {
			t.Errorf("tenant %q: %d items processed, want %d", tenant, out[tenant], in[tenant])
		}
	}
	if len(out) != 3 {
		t.Errorf("processed items by tenant %v, want team-a, team-b and none only", out)
	}
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for _, d := range dlq {
		tenant := string(d.Header(stream.HeaderTenant))
		msg := string(d.Header(stream.HeaderError))
		var part, offset int
		if _, err := fmt.Sscanf(strings.TrimPrefix(string(d.Header(stream.HeaderOrigin)), topics.Raw(otlpwire.Logs)+"/"), "%d/%d", &part, &offset); err != nil {
			t.Fatalf("origin %q: %v", d.Header(stream.HeaderOrigin), err)
		}
		want := fmt.Sprintf("record %s/%d@%d: header sluice-tenant: invalid tenant %q", topics.Raw(otlpwire.Logs), part, offset, tenant)
		if !strings.Contains(msg, want) {
			t.Errorf("dead letter of tenant %q: error %q, want it to contain %q", tenant, msg, want)
		}
		if n, err := otlpwire.Count(otlpwire.Logs, d.Value); err != nil || n != per {
			t.Errorf("dead letter of tenant %q holds %d items (%v), want %d", tenant, n, err, per)
		}
	}
	if l := lag(t, bus); l != 0 {
		t.Errorf("raw lag %d after the run", l)
	}
}

// TestAggregatorInvalidTenantDeadLettered: an aggregation record whose
// sluice-tenant header is not a valid tenant name is dead-lettered, not
// merged; the valid one beside it is merged and written. The
// OnDeadLetters hook is told of both, as the aggregator's.
func TestAggregatorInvalidTenantDeadLettered(t *testing.T) {
	bus := newBus(t)
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Aggregate(), Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	const n = 30
	var pts []*metricspb.NumberDataPoint
	for i := range n {
		pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: uint64(i+1) * 1e9, Value: &metricspb.NumberDataPoint_AsInt{AsInt: int64(i)}})
	}
	bld := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	if _, err := bld.Append(gaugeRequest("g", pts)); err != nil {
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
	hdrs := func(tenant string, src int) []stream.Header {
		return []stream.Header{{Key: stream.HeaderTenant, Value: []byte(tenant)}, {Key: stream.HeaderSignal, Value: []byte("metrics")},
			{Key: HeaderSource, Value: []byte(strconv.Itoa(src))}}
	}
	var recs []*stream.Record
	for src := 1; src <= 2; src++ {
		recs = append(recs, &stream.Record{Topic: topics.Aggregate(), Partition: 0,
			Headers: append(hdrs("acme", src), stream.Header{Key: HeaderProgress, Value: []byte("100000000000")})})
	}
	recs = append(recs,
		&stream.Record{Topic: topics.Aggregate(), Partition: 0, Value: val, Headers: hdrs("../../x", 0)},
		&stream.Record{Topic: topics.Aggregate(), Partition: 0, Value: val, Headers: hdrs("victim|other", 0)},
		&stream.Record{Topic: topics.Aggregate(), Partition: 0, Value: val, Headers: hdrs("acme", 0)})
	if err := bus.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	var told []string // stage: tenant, of each dead letter
	hook := func(stage string, dead []*stream.Record) {
		for _, d := range dead {
			told = append(told, stage+": "+string(d.Header(stream.HeaderTenant)))
		}
	}
	a, err := NewAggregator(ctx, bus, AggregatorConfig{Topics: topics, CheckpointInterval: time.Hour, CheckpointPoints: -1, FlushPoints: 10,
		OnDeadLetters: hook})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAggregator(a)
	var written int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && (written == 0 || len(bus.Records(topics.DLQ())) < 2); time.Sleep(10 * time.Millisecond) {
		written, _ = processedItems(t, bus, otlpwire.Metrics)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	written, out := processedItems(t, bus, otlpwire.Metrics)
	if written != n-2 {
		t.Errorf("%d merged points written, want %d (acme's only)", written, n-2)
	}
	for _, r := range out {
		if tenant := string(r.Header(stream.HeaderTenant)); tenant != "acme" {
			t.Errorf("merged points written for tenant %q", tenant)
		}
	}
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for _, d := range dlq {
		if msg := string(d.Header(stream.HeaderError)); !strings.Contains(msg, "header sluice-tenant: invalid tenant") {
			t.Errorf("dead letter error %q", msg)
		}
	}
	if got := strings.Join(told, ", "); got != "aggregator: ../../x, aggregator: victim|other" {
		t.Errorf("the hook was told of %q, want both dead letters as the aggregator's", got)
	}
}
