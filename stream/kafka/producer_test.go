package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

// The rest of producing is in the conformance suite (conformance_test.go).

// A keyed record goes where the Java client would put it (murmur2), so
// that other Kafka clients agree; the offsets of a partition are
// consecutive.
func TestPartitionsLikeTheJavaClient(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 3)
	in := []*stream.Record{
		{Topic: name, Partition: -1, Key: []byte("k1"), Value: []byte("keyed")},
		{Topic: name, Partition: 0, Value: []byte("p0-1")},
		{Topic: name, Partition: 0, Value: []byte("p0-2")},
	}
	produce(t, b, in...)
	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}})
	byValue := map[string]*stream.Record{}
	for _, r := range pollN(t, c, len(in), 20*time.Second) {
		byValue[string(r.Value)] = r
	}
	if want := int32(kgo.StickyKeyPartitioner(nil).ForTopic(name).Partition(&kgo.Record{Key: []byte("k1")}, 3)); byValue["keyed"].Partition != want {
		t.Errorf("key k1 went to partition %d, the Java client's choice is %d", byValue["keyed"].Partition, want)
	}
	if p1, p2 := byValue["p0-1"], byValue["p0-2"]; p2.Offset != p1.Offset+1 {
		t.Errorf("p0 records at offsets %d and %d", p1.Offset, p2.Offset)
	}
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

// A record above Config.MaxRecordBytes is refused by franz-go without
// being sent (the topic's own limit is in the suite).
func TestProducerRecordLimit(t *testing.T) {
	b := newBus(t, Config{MaxRecordBytes: 64 << 10})
	name := topic(t, b, 1)
	ctx := context.Background()
	err := b.Produce(ctx, &stream.Record{Topic: name, Partition: -1, Value: make([]byte, 100<<10)})
	if !errors.Is(err, stream.ErrRecordTooLarge) || stream.IsRetryable(err) {
		t.Errorf("record above the producer's limit: %v, want ErrRecordTooLarge, not retryable", err)
	}
	produce(t, b, &stream.Record{Topic: name, Partition: -1, Value: make([]byte, 1000)}) // still fine
	if err := b.Produce(ctx); err != nil {
		t.Errorf("produce nothing: %v", err)
	}
}

// Every compression codec round-trips.
func TestCompression(t *testing.T) {
	codecs := []string{"lz4", "snappy", "gzip", "none"}
	var topics []string
	for _, codec := range codecs {
		b := newBus(t, Config{Compression: codec})
		name := topic(t, b, 1)
		produce(t, b, values(name, codec, 20, 0)...)
		topics = append(topics, name)
	}
	c := consume(t, newBus(t, Config{}), stream.ConsumerConfig{Group: groupName(t), Topics: topics})
	got := valueSet(pollN(t, c, 20*len(codecs), 20*time.Second))
	for _, codec := range codecs {
		for v := range valueSet(values("", codec, 20, 0)) {
			if got[v] != 1 {
				t.Errorf("%s: record %q came %d times", codec, v, got[v])
			}
		}
	}
}

// ProduceEach tells each record's outcome: a record the producer refuses
// fails alone, the others are written.
func TestProduceEach(t *testing.T) {
	b := newBus(t, Config{MaxRecordBytes: 4096})
	name := topic(t, b, 2)
	in := []*stream.Record{
		{Topic: name, Partition: 0, Value: []byte("ok-1")},
		{Topic: name, Partition: 1, Value: make([]byte, 8192)}, // over MaxRecordBytes
		{Topic: name, Partition: 1, Value: []byte("ok-2")},
	}
	errs := make([]error, len(in))
	err := b.ProduceEach(context.Background(), errs, in...)
	if !errors.Is(err, stream.ErrRecordTooLarge) {
		t.Fatalf("ProduceEach: %v, want ErrRecordTooLarge", err)
	}
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], stream.ErrRecordTooLarge) {
		t.Fatalf("errs = %v; want only record 1 too large", errs)
	}
	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}})
	got := valueSet(pollN(t, c, 2, 20*time.Second))
	if len(got) != 2 || got["ok-1"] != 1 || got["ok-2"] != 1 {
		t.Fatalf("written: %v, want ok-1 and ok-2", got)
	}
	if err := b.ProduceEach(context.Background(), errs[:1], in...); err == nil {
		t.Fatal("ProduceEach with too few error slots: no error")
	}
}
