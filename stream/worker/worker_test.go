package worker

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

var topics = stream.Topics{Prefix: "t"}

func newBus(t testing.TB) *memory.Bus {
	bus := memory.New()
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
func run(t *testing.T, bus *memory.Bus, tr Transform, cfg Config, done func() bool) {
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
func processedItems(t *testing.T, bus *memory.Bus, sig otlpwire.Signal) (items int, recs []*stream.Record) {
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

func lag(t *testing.T, bus *memory.Bus) int64 {
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "sluice-worker", Topics: []string{topics.Raw(otlpwire.Metrics), topics.Raw(otlpwire.Logs), topics.Raw(otlpwire.Traces)}})
	defer c.Close()
	n, _ := c.Lag(context.Background())
	return n
}

// Raw OTLP of every signal, two tenants and three partitions becomes Arrow
// records that decode back to the same items, one per (signal, tenant,
// partition); a record that is not OTLP goes to the DLQ with its origin.
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

	run(t, bus, nil, Config{}, func() bool { return len(bus.Records(topics.DLQ())) == 1 && lag(t, bus) == 0 })
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
	bus := memory.New()
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
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != 1 || !bytes.Equal(dlq[0].Value, body) || !strings.Contains(string(dlq[0].Header(stream.HeaderError)), "max_record_bytes") {
		t.Errorf("DLQ: %d records", len(dlq))
	}
}
