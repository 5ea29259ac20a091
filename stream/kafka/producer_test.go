package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

func TestRoundTrip(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 3)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC) // Kafka keeps milliseconds
	in := []*stream.Record{
		{Topic: name, Partition: 2, Value: []byte("explicit"), Timestamp: ts,
			Headers: []stream.Header{{Key: stream.HeaderTenant, Value: []byte("acme")}, {Key: "empty"}, {Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}}},
		{Topic: name, Partition: -1, Key: []byte("k1"), Value: []byte("keyed-a"), Timestamp: ts.Add(time.Second)},
		{Topic: name, Partition: -1, Key: []byte("k1"), Value: []byte("keyed-b"), Timestamp: ts.Add(2 * time.Second)},
		{Topic: name, Partition: -1, Key: []byte{0, 0xff, '\n'}, Value: nil},
		{Topic: name, Partition: 0, Value: []byte("p0-1")},
		{Topic: name, Partition: 0, Value: []byte("p0-2")},
	}
	before := time.Now().Add(-time.Second)
	produce(t, b, in...)

	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}})
	out := pollN(t, c, len(in), 20*time.Second)
	byValue := map[string]*stream.Record{}
	lastOffset := map[int32]int64{}
	for _, r := range out {
		byValue[string(r.Value)] = r
		if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
			t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, last)
		}
		lastOffset[r.Partition] = r.Offset
		if r.Topic != name || r.Handle == nil {
			t.Errorf("record %q: topic %q, handle %v", r.Value, r.Topic, r.Handle)
		}
	}

	got := byValue["explicit"]
	if got.Partition != 2 || !got.Timestamp.Equal(ts) {
		t.Errorf("explicit: partition %d, timestamp %v; want 2, %v", got.Partition, got.Timestamp, ts)
	}
	if !slices.EqualFunc(got.Headers, in[0].Headers, func(a, b stream.Header) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
	}) {
		t.Errorf("headers: got %q, want %q", got.Headers, in[0].Headers)
	}
	a, bb := byValue["keyed-a"], byValue["keyed-b"]
	if a.Partition != bb.Partition || !bytes.Equal(a.Key, []byte("k1")) || a.Offset >= bb.Offset {
		t.Errorf("same key: partitions %d, %d, offsets %d, %d", a.Partition, bb.Partition, a.Offset, bb.Offset)
	}
	if want := int32(kgo.StickyKeyPartitioner(nil).ForTopic(name).Partition(&kgo.Record{Key: []byte("k1")}, 3)); a.Partition != want {
		t.Errorf("key k1 went to partition %d, the Java client's choice is %d", a.Partition, want)
	}
	if r := byValue[""]; !bytes.Equal(r.Key, []byte{0, 0xff, '\n'}) || r.Timestamp.Before(before) {
		t.Errorf("binary key %q, timestamp %v (want the time of Produce)", r.Key, r.Timestamp)
	}
	if p0 := []*stream.Record{byValue["p0-1"], byValue["p0-2"]}; p0[0].Partition != 0 || p0[1].Offset != p0[0].Offset+1 {
		t.Errorf("p0 records at %d/%d and %d/%d", p0[0].Partition, p0[0].Offset, p0[1].Partition, p0[1].Offset)
	}
	commit(t, c, out...)
}

func TestProduceSpreadsUnkeyedRecords(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 4)
	// KIP-794: franz-go moves unkeyed records to another partition after
	// 64 KiB.
	recs := values(name, "r", 100, 0)
	for _, r := range recs {
		r.Key = nil
		r.Headers = []stream.Header{{Key: "pad", Value: make([]byte, 16<<10)}}
	}
	produce(t, b, recs...)
	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}})
	parts := map[int32]int{}
	for _, r := range pollN(t, c, 100, 20*time.Second) {
		parts[r.Partition]++
	}
	if len(parts) < 2 {
		t.Errorf("unkeyed records all went to %v", parts)
	}
}

func TestProduceErrors(t *testing.T) {
	b := newBus(t, Config{MaxRecordBytes: 64 << 10})
	small := topicName(t)
	ensure(t, b, stream.TopicSpec{Name: small, Partitions: 1, MaxRecordBytes: 2000})
	ctx := context.Background()

	// Above the topic's max.message.bytes: the broker refuses it.
	random := make([]byte, 4000) // incompressible
	rand.Read(random)
	err := b.Produce(ctx, &stream.Record{Topic: small, Partition: -1, Value: random})
	if !errors.Is(err, stream.ErrRecordTooLarge) || stream.IsRetryable(err) {
		t.Errorf("record above the topic's limit: %v, want ErrRecordTooLarge, not retryable", err)
	}
	// Above Config.MaxRecordBytes: franz-go refuses it without sending.
	err = b.Produce(ctx, &stream.Record{Topic: small, Partition: -1, Value: make([]byte, 100<<10)})
	if !errors.Is(err, stream.ErrRecordTooLarge) || stream.IsRetryable(err) {
		t.Errorf("record above the producer's limit: %v, want ErrRecordTooLarge, not retryable", err)
	}
	produce(t, b, &stream.Record{Topic: small, Partition: -1, Value: make([]byte, 1000)}) // still fine

	if err := b.Produce(ctx, &stream.Record{Topic: small, Partition: 7, Value: []byte("x")}); err == nil {
		t.Error("produce to partition 7 of 1: no error")
	}
	if err := b.Produce(ctx); err != nil {
		t.Errorf("produce nothing: %v", err)
	}

	b.Close()
	if err := b.Produce(ctx, &stream.Record{Topic: small, Partition: -1}); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("produce after Close: %v, want ErrClosed", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("ping after Close: %v, want ErrClosed", err)
	}
}

func TestProduceConcurrently(t *testing.T) {
	b := newBus(t, Config{Compression: "lz4"})
	name := topic(t, b, 2)
	const producers, batches, size = 8, 10, 20
	errs := make(chan error, producers)
	for p := range producers {
		go func() {
			var err error
			for i := range batches {
				if err = b.Produce(context.Background(), values(name, string(rune('a'+p))+string(rune('a'+i)), size, 0)...); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range producers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}})
	got := valueSet(pollN(t, c, producers*batches*size, 30*time.Second))
	if len(got) != producers*batches*size {
		t.Errorf("got %d distinct records, want %d", len(got), producers*batches*size)
	}
	if n := slices.Max(slices.Collect(maps.Values(got))); n != 1 {
		t.Errorf("a record came %d times", n)
	}
}
