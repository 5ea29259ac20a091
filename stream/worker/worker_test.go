package worker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

func TestPassesRecordsThroughAndCommits(t *testing.T) {
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	ctx := context.Background()
	var specs []stream.TopicSpec
	for _, s := range stream.Signals {
		specs = append(specs, stream.TopicSpec{Name: topics.Raw(s), Partitions: 3}, stream.TopicSpec{Name: topics.Processed(s), Partitions: 3})
	}
	bus.EnsureTopics(ctx, specs...)
	want := 0
	for _, s := range stream.Signals {
		for i := range 30 {
			err := bus.Produce(ctx, &stream.Record{Topic: topics.Raw(s), Partition: int32(i % 3), Key: []byte{byte(i)}, Value: []byte(s.String() + strconv.Itoa(i)),
				Headers: []stream.Header{{Key: stream.HeaderSignal, Value: []byte(s.String())}, {Key: stream.HeaderTenant, Value: []byte("team-a")}}})
			if err != nil {
				t.Fatal(err)
			}
			want++
		}
	}
	w, err := New(bus, Config{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, s := range stream.Signals {
			n += len(bus.Records(topics.Processed(s)))
		}
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, s := range stream.Signals {
		raw, out := bus.Records(topics.Raw(s)), bus.Records(topics.Processed(s))
		if len(out) != len(raw) {
			t.Fatalf("%s: %d processed records, want %d", s, len(out), len(raw))
		}
		for i := range raw {
			r, o := raw[i], out[i]
			if string(r.Value) != string(o.Value) || r.Partition != o.Partition || string(r.Key) != string(o.Key) ||
				string(o.Header(stream.HeaderTenant)) != "team-a" {
				t.Errorf("%s record %d: got %+v, want a copy of %+v", s, i, o, r)
			}
		}
	}
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "sluice-worker", Topics: []string{topics.Raw(stream.Metrics), topics.Raw(stream.Logs), topics.Raw(stream.Traces)}})
	if lag, _ := c.Lag(ctx); lag != 0 {
		t.Errorf("worker group lag = %d, want 0", lag)
	}
}
