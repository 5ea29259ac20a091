package worker

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	smemory "github.com/sluice-dev/sluice/stream/memory"
)

// badItemRequest is a request of sig whose second item (data point) has an
// attribute with an invalid UTF-8 key, as an older ingester or an outside
// producer may write it; the others are valid.
func badItemRequest(t *testing.T, sig otlpwire.Signal, shape otlptest.Shape) []byte {
	t.Helper()
	kv := &common.KeyValue{Key: "BADKEY", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "v"}}}
	var m proto.Message
	switch sig {
	case otlpwire.Metrics:
		req := otlptest.Metrics(shape)
		pt := req.ResourceMetrics[1].ScopeMetrics[0].Metrics[1].GetGauge().DataPoints[1]
		pt.Attributes = append(pt.Attributes, kv)
		m = req
	case otlpwire.Logs:
		req := otlptest.Logs(shape)
		lr := req.ResourceLogs[1].ScopeLogs[0].LogRecords[1]
		lr.Attributes = append(lr.Attributes, kv)
		m = req
	default:
		req := otlptest.Traces(shape)
		sp := req.ResourceSpans[1].ScopeSpans[0].Spans[1]
		sp.Attributes = append(sp.Attributes, kv)
		m = req
	}
	body, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(body, []byte("BADKEY"), []byte("BAD\xffEY"))
}

// TestBadItemAmongValidOnes: a raw record with one item the decoder refuses
// among valid ones: the valid items reach the processed topic, only the bad
// one reaches the DLQ, in a record of its own whose error names the field,
// and the raw position is committed.
func TestBadItemAmongValidOnes(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			bus := newBus(t)
			ctx := context.Background()
			shape := otlptest.Shape{Resources: 2, Items: 3, Points: 4}
			total := shape.ItemCount(sig)
			for _, v := range [][]byte{otlptest.Request(sig, shape), badItemRequest(t, sig, shape), otlptest.Request(sig, shape)} {
				if err := bus.Produce(ctx, raw(sig, 0, "team-a", v)); err != nil {
					t.Fatal(err)
				}
			}
			run(t, bus, nil, Config{}, func() bool { return len(bus.Records(topics.DLQ())) == 1 && lag(t, bus) == 0 })
			got, _ := processedItems(t, bus, sig)
			if got != 3*total-1 {
				t.Errorf("%d items processed, want %d", got, 3*total-1)
			}
			dlq := bus.Records(topics.DLQ())
			if len(dlq) != 1 {
				t.Fatalf("%d DLQ records, want 1", len(dlq))
			}
			n, err := otlpwire.Count(sig, dlq[0].Value)
			if err != nil || n != 1 || string(dlq[0].Header(stream.HeaderItems)) != "1" {
				t.Errorf("DLQ record holds %d items (%v), items header %q, want 1", n, err, dlq[0].Header(stream.HeaderItems))
			}
			msg := string(dlq[0].Header(stream.HeaderError))
			if !strings.Contains(msg, ".attributes[") || !strings.Contains(msg, "key: invalid UTF-8") {
				t.Errorf("DLQ error %q does not name the field", msg)
			}
			if origin := string(dlq[0].Header(stream.HeaderOrigin)); !strings.HasPrefix(origin, topics.Raw(sig)+"/0/") {
				t.Errorf("origin %q", origin)
			}
			if l := lag(t, bus); l != 0 {
				t.Errorf("raw lag %d after the run", l)
			}
		})
	}
}

// TestOversizeDeadLetter: raw records from an outside producer, larger than
// what the bus takes once the dead letter's headers are added, do not stop
// the worker: a well-formed request whose items the decoder refuses is cut
// into dead letters that fit, anything else is truncated with
// HeaderTruncated; the raw positions are committed.
func TestOversizeDeadLetter(t *testing.T) {
	const limit = 4096
	bus := smemory.New()
	ctx := context.Background()
	err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Raw(otlpwire.Logs), Partitions: 1},
		stream.TopicSpec{Name: topics.Processed(otlpwire.Logs), Partitions: 1},
		stream.TopicSpec{Name: topics.DLQ(), Partitions: 1, MaxRecordBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	// Not OTLP at all: a truncated field of 5000 bytes.
	junk := append([]byte{0x0a, 0xff, 0xff, 0x03}, bytes.Repeat([]byte{'x'}, 5000)...)
	// OTLP whose every log record has an invalid UTF-8 key: nothing to
	// salvage, all of it dead-lettered, cut along its records.
	shape := otlptest.Shape{Resources: 1, Items: 40}
	req := otlptest.Logs(shape)
	for _, lr := range req.ResourceLogs[0].ScopeLogs[0].LogRecords {
		lr.Attributes = append(lr.Attributes, &common.KeyValue{Key: "BADKEY"})
	}
	pb, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	pb = bytes.ReplaceAll(pb, []byte("BADKEY"), []byte("BAD\xffEY"))
	if len(pb) <= limit {
		t.Fatalf("request of %d bytes, want more than %d", len(pb), limit)
	}
	for _, v := range [][]byte{junk, pb} {
		if err := bus.Produce(ctx, raw(otlpwire.Logs, 0, "team-a", v)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, bus, nil, Config{MaxRecordBytes: limit, Signals: []otlpwire.Signal{otlpwire.Logs}}, func() bool { return logsLag(t, bus) == 0 })
	truncated, items := 0, 0
	for _, d := range bus.Records(topics.DLQ()) {
		if len(d.Value)+d.Overhead() > limit {
			t.Errorf("dead letter of %d bytes", len(d.Value)+d.Overhead())
		}
		if h := d.Header(HeaderTruncated); h != nil {
			truncated++
			if string(h) != strconv.Itoa(len(junk)) || !bytes.HasPrefix(junk, d.Value) {
				t.Errorf("truncated header %q, value of %d bytes", h, len(d.Value))
			}
			continue
		}
		n, err := otlpwire.Count(otlpwire.Logs, d.Value)
		if err != nil {
			t.Fatal(err)
		}
		items += n
	}
	if truncated != 1 || items != shape.ItemCount(otlpwire.Logs) {
		t.Errorf("%d truncated dead letters, %d items dead-lettered; want 1 and %d", truncated, items, shape.ItemCount(otlpwire.Logs))
	}
	if l := logsLag(t, bus); l != 0 {
		t.Errorf("raw lag %d after the run", l)
	}
}

// TestDeadLetterMaxBytes: the dead-letter topic has a limit of its own
// (worker.dead_letter_max_bytes), smaller than the processed topics' (here
// none): dead letters are cut to it, and the valid record beside the bad
// ones is processed whole.
func TestDeadLetterMaxBytes(t *testing.T) {
	const limit = 2048
	bus := smemory.New()
	ctx := context.Background()
	err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Raw(otlpwire.Logs), Partitions: 1},
		stream.TopicSpec{Name: topics.Processed(otlpwire.Logs), Partitions: 1},
		stream.TopicSpec{Name: topics.DLQ(), Partitions: 1, MaxRecordBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	junk := append([]byte{0x0a, 0xff, 0xff, 0x03}, bytes.Repeat([]byte{'x'}, 3000)...)
	shape := otlptest.Shape{Resources: 1, Items: 40}
	valid := otlptest.Request(otlpwire.Logs, shape)
	if len(valid) <= limit {
		t.Fatalf("valid request of %d bytes, want more than %d", len(valid), limit)
	}
	for _, v := range [][]byte{junk, valid} {
		if err := bus.Produce(ctx, raw(otlpwire.Logs, 0, "team-a", v)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, bus, nil, Config{DeadLetterMaxBytes: limit, Signals: []otlpwire.Signal{otlpwire.Logs}}, func() bool { return logsLag(t, bus) == 0 })
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != 1 || dlq[0].Header(HeaderTruncated) == nil || len(dlq[0].Value)+dlq[0].Overhead() > limit {
		t.Errorf("%d dead letters, want 1 truncated to %d bytes", len(dlq), limit)
	}
	if got, _ := processedItems(t, bus, otlpwire.Logs); got != shape.ItemCount(otlpwire.Logs) {
		t.Errorf("%d items processed, want %d", got, shape.ItemCount(otlpwire.Logs))
	}
	if l := logsLag(t, bus); l != 0 {
		t.Errorf("raw lag %d after the run", l)
	}
}

func logsLag(t *testing.T, bus *smemory.Bus) int64 {
	c, err := bus.Consume(stream.ConsumerConfig{Group: "sluice-worker", Topics: []string{topics.Raw(otlpwire.Logs)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, _ := c.Lag(context.Background())
	return n
}

// failingDLQ fails the first fails produce calls that hold a dead letter,
// as a bus whose DLQ stream is missing or whose store is full does.
type failingDLQ struct {
	*smemory.Bus
	fails    atomic.Int32
	attempts atomic.Int32
}

var errStoreFull = errors.New("nats: insufficient resources (store full)")

func (f *failingDLQ) Produce(ctx context.Context, recs ...*stream.Record) error {
	for _, r := range recs {
		if r.Topic == topics.DLQ() {
			f.attempts.Add(1)
			if f.fails.Add(-1) >= 0 {
				return errStoreFull
			}
			break
		}
	}
	return f.Bus.Produce(ctx, recs...)
}

// TestDeadLetterProduceFails: while the DLQ refuses records, the worker
// neither commits the raw position of the refused item nor writes the
// batch's valid items twice; it retries the batch with backoff, and once
// the DLQ takes records, the valid items are processed once and the bad
// one dead-lettered once.
func TestDeadLetterProduceFails(t *testing.T) {
	inner := newBus(t)
	bus := &failingDLQ{Bus: inner}
	bus.fails.Store(3)
	ctx := context.Background()
	shape := otlptest.Shape{Resources: 2, Items: 3}
	total := shape.ItemCount(otlpwire.Logs)
	if err := inner.Produce(ctx, raw(otlpwire.Logs, 0, "team-a", badItemRequest(t, otlpwire.Logs, shape))); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Topics: topics, Allocator: memory.DefaultAllocator}
	w, err := New(bus, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error)
	go func() { errc <- w.Run(runCtx) }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if bus.attempts.Load() < 4 && lag(t, inner) == 0 {
			t.Error("raw position committed while the DLQ refused the dead letter")
			break
		}
		if len(inner.Records(topics.DLQ())) == 1 && lag(t, inner) == 0 {
			break
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if a := bus.attempts.Load(); a != 4 {
		t.Errorf("%d attempts to dead-letter, want 4 (3 refused)", a)
	}
	got, _ := processedItems(t, inner, otlpwire.Logs)
	dlq := inner.Records(topics.DLQ())
	if got != total-1 || len(dlq) != 1 {
		t.Fatalf("%d items processed and %d dead letters, want %d and 1", got, len(dlq), total-1)
	}
	if l := lag(t, inner); l != 0 {
		t.Errorf("raw lag %d after the run", l)
	}
}
