package sinks

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// rejectOdd delivers even values and rejects odd ones.
type rejectOdd struct{ delivered []string }

func (s *rejectOdd) Write(_ context.Context, recs []*stream.Record) error {
	var rej []*stream.Record
	for _, r := range recs {
		if n, _ := strconv.Atoi(string(r.Value)); n%2 == 1 {
			rej = append(rej, r)
			continue
		}
		s.delivered = append(s.delivered, string(r.Value))
	}
	if len(rej) > 0 {
		return &RejectedError{Records: rej, Reason: "HTTP 400: out of order sample"}
	}
	return nil
}

func (s *rejectOdd) Close() error { return nil }

// Records the destination refuses go to the DLQ with the reason, their
// origin and the sink's name; the rest are delivered; all are committed.
// The runner's OnDeadLetters hook (the status page) is told of each dead
// letter on the topic, under the stage's name.
func TestRejectedRecordsGoToTheDLQ(t *testing.T) {
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	ctx := context.Background()
	for i := range 10 {
		bus.Produce(ctx, &stream.Record{Topic: topics.Processed(otlpwire.Logs), Partition: -1, Value: []byte(strconv.Itoa(i)),
			Headers: []stream.Header{{Key: stream.HeaderTenant, Value: []byte("team-a")}}})
	}
	sink := &rejectOdd{}
	entry := &config.Sink{Name: "loki", Type: "test", Signals: []string{"logs"}}
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	told := map[string]string{} // origin → stage
	hook := func(stage string, dead []*stream.Record) {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range dead {
			told[string(d.Header(stream.HeaderOrigin))] = stage
		}
	}
	r, err := NewRunner(bus, entry, sink, RunnerConfig{Topics: topics, Registerer: reg, OnDeadLetters: hook})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- r.Run(rctx) }()
	for deadline := time.Now().Add(10 * time.Second); len(bus.Records(topics.DLQ())) < 5 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if len(sink.delivered) != 5 {
		t.Errorf("delivered %v", sink.delivered)
	}
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != 5 {
		t.Fatalf("%d records in the DLQ, want 5", len(dlq))
	}
	for _, d := range dlq {
		if string(d.Header(stream.HeaderError)) != "HTTP 400: out of order sample" || string(d.Header(HeaderSink)) != "loki" ||
			string(d.Header(stream.HeaderTenant)) != "team-a" || len(d.Header(stream.HeaderOrigin)) == 0 {
			t.Errorf("DLQ record headers %v", d.Headers)
		}
		if stage := told[string(d.Header(stream.HeaderOrigin))]; stage != "sink/loki" {
			t.Errorf("dead letter from %s told to the hook as %q, want sink/loki", d.Header(stream.HeaderOrigin), stage)
		}
	}
	if len(told) != len(dlq) {
		t.Errorf("the hook was told of %d dead letters, %d on the topic", len(told), len(dlq))
	}
	if n := testutilCounter(t, reg, "sluice_sink_dead_letters_total"); n != 5 {
		t.Errorf("sluice_sink_dead_letters_total = %v, want 5", n)
	}
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "sluice-sink-loki", Topics: []string{topics.Processed(otlpwire.Logs)}})
	if lag, _ := c.Lag(ctx); lag != 0 {
		t.Errorf("lag %d: the batch was not committed", lag)
	}
}

// testutilCounter reads the single counter named name from reg.
func testutilCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// A rejected record larger than the dead-letter topic takes (a processed
// record at the bus's limit, with the dead letter's headers; or a DLQ
// created smaller) is dead-lettered without its value, sluice-truncated
// giving its size, and the sink goes on: every record is delivered or
// dead-lettered, and committed.
func TestRejectedRecordTooLargeForTheDLQ(t *testing.T) {
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Processed(otlpwire.Logs), Partitions: 1},
		stream.TopicSpec{Name: topics.DLQ(), Partitions: 1, MaxRecordBytes: 1024}); err != nil {
		t.Fatal(err)
	}
	big := "x" + string(make([]byte, 4096))
	for _, v := range []string{"0", big, "2", "x3", "4"} {
		bus.Produce(ctx, &stream.Record{Topic: topics.Processed(otlpwire.Logs), Partition: 0, Value: []byte(v),
			Headers: []stream.Header{{Key: stream.HeaderTenant, Value: []byte("team-a")}}})
	}
	sink := &rejectX{}
	entry := &config.Sink{Name: "loki", Type: "test", Signals: []string{"logs"}}
	r, err := NewRunner(bus, entry, sink, RunnerConfig{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- r.Run(rctx) }()
	lag := func() int64 {
		c, _ := bus.Consume(stream.ConsumerConfig{Group: "sluice-sink-loki", Topics: []string{topics.Processed(otlpwire.Logs)}})
		defer c.Close()
		n, _ := c.Lag(ctx)
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); (len(bus.Records(topics.DLQ())) < 2 || lag() != 0) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if len(sink.delivered) != 3 {
		t.Errorf("delivered %v, want 0, 2 and 4", sink.delivered)
	}
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != 2 {
		t.Fatalf("%d records in the DLQ, want 2", len(dlq))
	}
	var truncated int
	for _, d := range dlq {
		if h := d.Header(stream.HeaderTruncated); h != nil {
			truncated++
			if string(h) != strconv.Itoa(len(big)) || len(d.Value) != 0 {
				t.Errorf("truncated dead letter: %s %q, value of %d bytes", stream.HeaderTruncated, h, len(d.Value))
			}
		} else if string(d.Value) != "x3" {
			t.Errorf("dead letter %q", d.Value)
		}
	}
	if truncated != 1 {
		t.Errorf("%d truncated dead letters, want 1", truncated)
	}
	if l := lag(); l != 0 {
		t.Errorf("lag %d: the batch was not committed", l)
	}
}

// rejectX delivers values and rejects those starting with 'x'.
type rejectX struct{ delivered []string }

func (s *rejectX) Write(_ context.Context, recs []*stream.Record) error {
	var rej []*stream.Record
	for _, r := range recs {
		if len(r.Value) > 0 && r.Value[0] == 'x' {
			rej = append(rej, r)
			continue
		}
		s.delivered = append(s.delivered, string(r.Value))
	}
	if len(rej) > 0 {
		return &RejectedError{Records: rej, Reason: "HTTP 400: bad"}
	}
	return nil
}

func (s *rejectX) Close() error { return nil }
