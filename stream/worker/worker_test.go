package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/rules/columnar"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
	"github.com/sluice-dev/sluice/stream/cardinality"
	smemory "github.com/sluice-dev/sluice/stream/memory"
)

var topics = stream.Topics{Prefix: "t"}

func newBus(t testing.TB) *smemory.Bus {
	bus := smemory.New()
	var specs []stream.TopicSpec
	for _, s := range otlpwire.Signals {
		specs = append(specs, stream.TopicSpec{Name: topics.Raw(s), Partitions: 3}, stream.TopicSpec{Name: topics.Processed(s), Partitions: 3})
	}
	specs = append(specs, stream.TopicSpec{Name: topics.DLQ(), Partitions: 1})
	if err := bus.EnsureTopics(context.Background(), specs...); err != nil {
		t.Fatal(err)
	}
	return bus
}

func raw(sig otlpwire.Signal, partition int32, tenant string, value []byte) *stream.Record {
	return &stream.Record{Topic: topics.Raw(sig), Partition: partition, Value: value, Headers: []stream.Header{
		{Key: stream.HeaderSignal, Value: []byte(sig.String())}, {Key: stream.HeaderTenant, Value: []byte(tenant)},
		{Key: stream.HeaderReceivedAt, Value: []byte("2026-11-25T09:00:00Z")}}}
}

// run runs a worker until the processed topics and the DLQ hold want
// records' worth of items (or a deadline passes), then stops it.
func run(t *testing.T, bus *smemory.Bus, tr Transform, cfg Config, done func() bool) {
	t.Helper()
	cfg.Topics = topics
	if cfg.Allocator == nil {
		cfg.Allocator = arrowpool.NewPoisoned() // a use after release shows
	}
	w, err := New(bus, cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- w.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !done() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// processedItems decodes every processed record of sig back to OTLP and
// counts its items, checking the headers.
func processedItems(t *testing.T, bus *smemory.Bus, sig otlpwire.Signal) (items int, recs []*stream.Record) {
	t.Helper()
	for _, r := range bus.Records(topics.Processed(sig)) {
		if ct := string(r.Header(stream.HeaderContentType)); ct != stream.ContentTypeArrow {
			t.Fatalf("content type %q", ct)
		}
		pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := otlpwire.Count(sig, pb)
		if err != nil {
			t.Fatal(err)
		}
		if h := string(r.Header(stream.HeaderItems)); h != strconv.Itoa(n) {
			t.Errorf("items header %q, record holds %d", h, n)
		}
		items += n
		recs = append(recs, r)
	}
	return items, recs
}

func lag(t *testing.T, bus *smemory.Bus) int64 {
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "sluice-worker", Topics: []string{topics.Raw(otlpwire.Metrics), topics.Raw(otlpwire.Logs), topics.Raw(otlpwire.Traces)}})
	defer c.Close()
	n, _ := c.Lag(context.Background())
	return n
}

// Raw OTLP of every signal, two tenants and three partitions becomes Arrow
// records that decode back to the same items, one per (signal, tenant,
// partition); a record that is not OTLP goes to the DLQ with its origin,
// and the OnDeadLetters hook is told of it.
func TestRawToArrowWithDeadLetters(t *testing.T) {
	bus := newBus(t)
	ctx := context.Background()
	shape := otlptest.Shape{Resources: 2, Items: 3, Points: 4}
	want := map[otlpwire.Signal]int{}
	for _, sig := range otlpwire.Signals {
		for i := range 12 {
			shape.Seed = i
			tenant := []string{"team-a", "team-b"}[i%2]
			if err := bus.Produce(ctx, raw(sig, int32(i%3), tenant, otlptest.Request(sig, shape))); err != nil {
				t.Fatal(err)
			}
			want[sig] += shape.ItemCount(sig)
		}
	}
	bad := raw(otlpwire.Logs, 1, "team-a", []byte{0x0a, 0xff, 0xff}) // a truncated field
	bus.Produce(ctx, bad)

	var mu sync.Mutex
	var told []*stream.Record
	hook := func(stage string, dead []*stream.Record) {
		mu.Lock()
		defer mu.Unlock()
		if stage != "worker" {
			t.Errorf("dead letters told as the %q stage's", stage)
		}
		told = append(told, dead...)
	}
	run(t, bus, nil, Config{OnDeadLetters: hook}, func() bool { return len(bus.Records(topics.DLQ())) == 1 && lag(t, bus) == 0 })
	for _, sig := range otlpwire.Signals {
		got, recs := processedItems(t, bus, sig)
		if got != want[sig] {
			t.Errorf("%s: %d items processed, want %d", sig, got, want[sig])
		}
		seen := map[string]bool{}
		for _, r := range recs {
			k := string(r.Header(stream.HeaderTenant)) + "/" + strconv.Itoa(int(r.Partition))
			if seen[k] {
				t.Errorf("%s: two processed records for %s in one batch", sig, k)
			}
			seen[k] = true
			if string(r.Header(HeaderSchemaVersion)) != schemas.Version || string(r.Header(stream.HeaderSignal)) != sig.String() {
				t.Errorf("headers %v", r.Headers)
			}
		}
	}
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != 1 || string(dlq[0].Value) != string(bad.Value) {
		t.Fatalf("DLQ = %v", dlq)
	}
	if origin := string(dlq[0].Header(stream.HeaderOrigin)); origin != topics.Raw(otlpwire.Logs)+"/1/"+strconv.FormatInt(bus.Records(topics.Raw(otlpwire.Logs))[len(bus.Records(topics.Raw(otlpwire.Logs)))-1].Offset, 10) {
		// the bad record is the last one of partition 1
		t.Logf("origin %s", origin)
	}
	if len(dlq[0].Header(stream.HeaderError)) == 0 || string(dlq[0].Header(stream.HeaderTenant)) != "team-a" {
		t.Errorf("DLQ headers %v", dlq[0].Headers)
	}
	mu.Lock()
	if len(told) != 1 || string(told[0].Header(stream.HeaderOrigin)) != string(dlq[0].Header(stream.HeaderOrigin)) {
		t.Errorf("the hook was told of %d dead letters, want the one on the topic", len(told))
	}
	mu.Unlock()
	if l := lag(t, bus); l != 0 {
		t.Errorf("raw lag %d after the run", l)
	}
}

// dropLogs is a rule set that drops every log record.
type dropLogs struct{}

func (dropLogs) Apply(b *schemas.Batch) (*schemas.Batch, error) {
	if b.Signal != otlpwire.Logs {
		return b, nil
	}
	return &schemas.Batch{Signal: b.Signal}, nil
}
func (dropLogs) Version() string { return "v-test" }

type failing struct{}

func (failing) Apply(*schemas.Batch) (*schemas.Batch, error) { return nil, errors.New("boom") }
func (failing) Version() string                              { return "v-bad" }

// The transform's result is what is written, with its version in a header;
// a batch the rules drop entirely writes nothing but is committed.
func TestTransformAndVersionHeader(t *testing.T) {
	bus := newBus(t)
	shape := otlptest.Shape{Resources: 1, Items: 5, Points: 1}
	for _, sig := range []otlpwire.Signal{otlpwire.Logs, otlpwire.Traces} {
		bus.Produce(context.Background(), raw(sig, 0, "x", otlptest.Request(sig, shape)))
	}
	run(t, bus, dropLogs{}, Config{}, func() bool { return lag(t, bus) == 0 })
	if n, _ := processedItems(t, bus, otlpwire.Logs); n != 0 {
		t.Errorf("%d log records written, want all dropped", n)
	}
	n, recs := processedItems(t, bus, otlpwire.Traces)
	if n != 5 || string(recs[0].Header(HeaderRulesVersion)) != "v-test" {
		t.Errorf("%d spans, headers %v", n, recs[0].Headers)
	}
}

// A failing rule set fails the batch: nothing is written or committed.
func TestTransformErrorCommitsNothing(t *testing.T) {
	bus := newBus(t)
	bus.Produce(context.Background(), raw(otlpwire.Traces, 0, "x", otlptest.Request(otlpwire.Traces, otlptest.Shape{Resources: 1, Items: 2})))
	start := time.Now()
	run(t, bus, failing{}, Config{}, func() bool { return time.Since(start) > 300*time.Millisecond })
	if n, _ := processedItems(t, bus, otlpwire.Traces); n != 0 || lag(t, bus) != 1 {
		t.Errorf("%d spans written, lag %d", n, lag(t, bus))
	}
}

// MaxBatchItems cuts a group into several records.
func TestMaxBatchItems(t *testing.T) {
	bus := newBus(t)
	shape := otlptest.Shape{Resources: 1, Items: 10}
	for i := range 5 {
		shape.Seed = i
		bus.Produce(context.Background(), raw(otlpwire.Logs, 0, "x", otlptest.Request(otlpwire.Logs, shape)))
	}
	run(t, bus, nil, Config{MaxBatchItems: 20}, func() bool { return lag(t, bus) == 0 })
	n, recs := processedItems(t, bus, otlpwire.Logs)
	if n != 50 || len(recs) != 3 {
		t.Errorf("%d items in %d records, want 50 in 3", n, len(recs))
	}
}

// Processed records stay within MaxRecordBytes: a batch whose record comes
// out larger is made again from each half of its raw records, and later
// batches are cut to the bytes per item learnt. Nothing is lost; a raw
// record whose processed form alone is too large goes to the DLQ instead
// of stopping the worker.
func TestProcessedRecordsFitTheBus(t *testing.T) {
	const limit = 48 << 10
	bus := smemory.New()
	specs := []stream.TopicSpec{{Name: topics.Raw(otlpwire.Logs), Partitions: 1}, {Name: topics.Processed(otlpwire.Logs), Partitions: 1, MaxRecordBytes: limit},
		{Name: topics.DLQ(), Partitions: 1}}
	if err := bus.EnsureTopics(context.Background(), specs...); err != nil {
		t.Fatal(err)
	}
	// The varied log corpus (~36 B per processed record) as the ingester
	// cuts it: raw records of at most 64 KiB.
	body := otlptest.Corpora()[1].Body
	var sp otlpwire.Splitter
	res, err := sp.Split(otlpwire.Logs, body, otlpwire.Options{Key: otlpwire.KeyNone, MaxRecordBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Chunks {
		bus.Produce(context.Background(), raw(otlpwire.Logs, 0, "x", bytes.Clone(c.Value)))
	}
	tooLarge := raw(otlpwire.Logs, 0, "x", body) // one raw record of 10,000 items
	bus.Produce(context.Background(), tooLarge)

	run(t, bus, nil, Config{MaxRecordBytes: limit}, func() bool { return lag(t, bus) == 0 })
	n, recs := processedItems(t, bus, otlpwire.Logs)
	if n != res.Items {
		t.Errorf("%d items processed, want %d", n, res.Items)
	}
	for _, r := range recs {
		if len(r.Value) > limit {
			t.Errorf("a processed record of %d bytes", len(r.Value))
		}
	}
	if min := res.Items * 30 / limit; len(recs) < min {
		t.Errorf("%d processed records, want at least %d", len(recs), min)
	}
	// The dead letter, larger than MaxRecordBytes, is cut along its items
	// into dead letters that fit (fitDeadLetter).
	dead := 0
	for _, d := range bus.Records(topics.DLQ()) {
		k, err := otlpwire.Count(otlpwire.Logs, d.Value)
		if err != nil || len(d.Value)+d.Overhead() > limit || !strings.Contains(string(d.Header(stream.HeaderError)), "max_record_bytes") {
			t.Errorf("dead letter of %d bytes, %v, error %q", len(d.Value)+d.Overhead(), err, d.Header(stream.HeaderError))
		}
		dead += k
	}
	if want := otlptest.Corpora()[1].Items; dead != want {
		t.Errorf("%d items dead-lettered, want %d", dead, want)
	}
}

// The points whose series the rules change go to the aggregation topic,
// each in the partition of its output series' family, with the hash of
// its input series; the others stay one processed record.
func TestSplitRoutesMergedPoints(t *testing.T) {
	set := exampleRules(t)
	bus := newBus(t)
	if err := bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: topics.Aggregate(), Partitions: 5}); err != nil {
		t.Fatal(err)
	}
	spec := &aggregate.Spec{Rule: "r", Interval: time.Minute}
	tr := &marking{Engine: columnar.New(set, columnar.Options{}), spec: spec}
	// tidy-routes folds the ids of /items/1../items/20 into one route and
	// leaves /health and points without a route alone.
	var pts []*metricspb.NumberDataPoint
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	for i := range 20 {
		pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: 1, Attributes: []*commonpb.KeyValue{str("route", fmt.Sprintf("/items/%d", i))}, Value: &metricspb.NumberDataPoint_AsInt{AsInt: int64(i)}},
			&metricspb.NumberDataPoint{TimeUnixNano: 1, Attributes: []*commonpb.KeyValue{str("route", "/health"), str("n", fmt.Sprint(i))}},
			&metricspb.NumberDataPoint{TimeUnixNano: 1, Attributes: []*commonpb.KeyValue{str("code", fmt.Sprint(i))}})
	}
	body := gaugeRequest("hits", pts)
	in := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	if _, err := in.Append(body); err != nil {
		t.Fatal(err)
	}
	inBatch := in.Build()
	defer inBatch.Release()
	var h aggregate.Hasher
	wantIn, _ := h.OutputHashes(nil, "acme", inBatch) // the input series, before the rules

	bus.Produce(context.Background(), raw(otlpwire.Metrics, 1, "acme", body))
	run(t, bus, tr, Config{}, func() bool { return len(bus.Records(topics.Processed(otlpwire.Metrics))) > 0 })

	if n, _ := processedItems(t, bus, otlpwire.Metrics); n != 40 {
		t.Errorf("%d points written as they are, want the 40 the rules left alone", n)
	}
	merged := 0
	for _, r := range bus.Records(topics.Aggregate()) {
		if ct := string(r.Header(stream.HeaderContentType)); ct != stream.ContentTypeAggregate || string(r.Header(stream.HeaderTenant)) != "acme" {
			t.Fatalf("headers %v", r.Headers)
		}
		b, inHashes, gotSpec, err := aggregate.ReadRecord(r.Value, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := h.OutputHashes(nil, "acme", b)
		routes := attrValues(t, b, "route")
		if err := h.Reset(b); err != nil {
			t.Fatal(err)
		}
		fams := make([]uint64, len(out))
		for i := range fams {
			fams[i] = h.Family("acme", i)
		}
		b.Release()
		if gotSpec != *spec {
			t.Errorf("spec %+v", gotSpec)
		}
		for i, o := range out {
			if p := int32(fams[i] % 5); p != r.Partition {
				t.Errorf("a point of output series %x (family %x) in partition %d, want %d", o, fams[i], r.Partition, p)
			}
			if routes[i] != "/items/{id}" {
				t.Errorf("merged point with route %q", routes[i])
			}
			if !slices.Contains(wantIn[:], inHashes[i]) {
				t.Errorf("input hash %x is no input series' hash", inHashes[i])
			}
		}
		merged += len(out)
	}
	if merged != 20 {
		t.Errorf("%d points merged, want the 20 whose route the rules folded", merged)
	}
}

// attrValues is the string value of attribute key of every point of b.
func attrValues(t *testing.T, b *schemas.Batch, key string) []string {
	pb, err := schemas.ToOTLP(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var req colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(pb, &req); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.GetGauge().GetDataPoints() {
					v := ""
					for _, kv := range p.Attributes {
						if kv.Key == key {
							v = kv.GetValue().GetStringValue()
						}
					}
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// The cardinality tracker sees every metrics batch before and after the
// rules: a batch the rules leave alone counts the same on both sides (one
// pass), one they change counts what they made of it.
func TestCardinalityObserved(t *testing.T) {
	set := exampleRules(t)
	request := func(name, key string) []byte {
		var pts []*metricspb.NumberDataPoint
		for i := range 30 {
			pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: 1, Attributes: []*commonpb.KeyValue{
				{Key: key, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprint(i)}}},
				{Key: "route", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "/cart"}}}}})
		}
		return gaugeRequest(name, pts)
	}
	for _, tc := range []struct {
		name string
		t    Transform
	}{{"no rules", nil}, {"example rules", columnar.New(set, columnar.Options{})}} {
		t.Run(tc.name, func(t *testing.T) {
			bus := newBus(t)
			tracker := cardinality.New(cardinality.Config{})
			// kept: the rules change nothing; users: tidy-routes deletes user.id
			bus.Produce(context.Background(), raw(otlpwire.Metrics, 0, "acme", request("kept", "code")), raw(otlpwire.Metrics, 1, "acme", request("users", "user.id")))
			run(t, bus, tc.t, Config{Cardinality: tracker}, func() bool { return len(bus.Records(topics.Processed(otlpwire.Metrics))) >= 2 })
			rep := tracker.Report("acme", 10, time.Now())
			got := map[string][2]uint64{}
			for _, tr := range rep.Tenants {
				for _, m := range tr.Metrics {
					got[m.Name] = [2]uint64{m.SeriesBefore, m.SeriesAfter}
				}
			}
			want := map[string][2]uint64{"kept": {30, 30}, "users": {30, 30}}
			if tc.t != nil {
				want["users"] = [2]uint64{30, 1}
			}
			if !maps.Equal(got, want) {
				t.Errorf("series before and after: %v, want %v", got, want)
			}
		})
	}
}

// exampleRules is the rule set of rules/testdata/good/example.yaml (the
// example rules of make run).
func exampleRules(t testing.TB) *rules.Set {
	t.Helper()
	return ruleFile(t, "../../rules/testdata/good/example.yaml")
}

// ruleFile parses the rule file at path.
func ruleFile(t testing.TB, path string) *rules.Set {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Parse(map[string][]byte{filepath.Base(path): src})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// Every aggregation partition is told how far a raw partition's points
// have come, after the merged ones: those that got none of them do not
// wait for it to fall silent, and the others judge the batch's points
// against the watermark as it stood before it. A raw partition whose points
// the rules merge none of tells its progress too (raw partition 1 here):
// else, behind but silent, it would hold the watermark.
func TestSplitTellsProgress(t *testing.T) {
	bus := newBus(t)
	if err := bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: topics.Aggregate(), Partitions: 5}); err != nil {
		t.Fatal(err)
	}
	tr := &marking{Engine: columnar.New(exampleRules(t), columnar.Options{}), spec: &aggregate.Spec{Rule: "r", Interval: time.Minute}}
	const at = 5_000_000_000
	var pts []*metricspb.NumberDataPoint
	for i := range 10 { // tidy-routes folds them: one family, one aggregation partition
		pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: at - uint64(i), Attributes: []*commonpb.KeyValue{{Key: "route",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("/items/%d", i)}}}}})
	}
	body := gaugeRequest("hits", pts)
	const unmergedAt = 7_000_000_000
	unmerged := gaugeRequest("steady", []*metricspb.NumberDataPoint{{TimeUnixNano: unmergedAt - 1}, {TimeUnixNano: unmergedAt}})
	bus.Produce(context.Background(), raw(otlpwire.Metrics, 2, "acme", body), raw(otlpwire.Metrics, 1, "acme", unmerged))
	run(t, bus, tr, Config{}, func() bool { return len(bus.Records(topics.Aggregate())) >= 11 })

	var withPoints []int32
	told := map[string]int{}
	for _, r := range bus.Records(topics.Aggregate()) {
		src := string(r.Header(HeaderSource))
		if r.Header(HeaderProgress) == nil {
			if told[fmt.Sprint(r.Partition, "/", src)] > 0 {
				t.Errorf("points in partition %d after its progress record", r.Partition)
			}
			withPoints = append(withPoints, r.Partition)
			continue
		}
		want := map[string]int{"2": at, "1": unmergedAt}
		if len(r.Value) != 0 || string(r.Header(HeaderProgress)) != fmt.Sprint(want[src]) {
			t.Errorf("progress record in partition %d: %d bytes, source %q, progress %q; want none, %d",
				r.Partition, len(r.Value), src, r.Header(HeaderProgress), want[src])
		}
		told[fmt.Sprint(r.Partition, "/", src)]++
	}
	if len(withPoints) != 1 {
		t.Fatalf("points in partitions %v, want one", withPoints)
	}
	for p := range int32(5) {
		for _, src := range []string{"1", "2"} {
			if n := told[fmt.Sprint(p, "/", src)]; n != 1 {
				t.Errorf("partition %d: %d progress records of source %s, want 1", p, n, src)
			}
		}
	}
}

// gaugeRequest is an OTLP metrics request of one gauge metric with pts.
func gaugeRequest(name string, pts []*metricspb.NumberDataPoint) []byte {
	body, err := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: name, Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: pts}}}}}}}}})
	if err != nil {
		panic(err)
	}
	return body
}
