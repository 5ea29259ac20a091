package nats

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

// Records go to the subject of their partition and are numbered by the
// stream's sequence (the rest of the round trip is in the conformance
// suite).
func TestSubjectsAndSequences(t *testing.T) {
	b := newEmbedded(t, Config{})
	const topic = "sluice.raw.metrics"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 4})
	st, err := b.js.Stream(context.Background(), "sluice_raw_metrics")
	if err != nil {
		t.Fatal(err)
	}
	wantSubjects := []string{topic + ".0", topic + ".1", topic + ".2", topic + ".3"}
	if got := st.CachedInfo().Config.Subjects; !slices.Equal(got, wantSubjects) {
		t.Fatalf("subjects = %v, want %v", got, wantSubjects)
	}

	in := []*stream.Record{
		{Topic: topic, Partition: 2, Value: []byte("explicit")},
		{Topic: topic, Partition: -1, Value: []byte("keyed"), Key: []byte("tenant-b")},
		{Topic: topic, Partition: -1, Value: []byte("binary key"), Key: []byte{0, 1, 0xff, '\n'}},
		{Topic: topic, Partition: 0, Value: []byte("p0")},
	}
	produce(t, b, in...)
	c := consume(t, b, stream.ConsumerConfig{Group: "rt", Topics: []string{topic}})
	out := pollN(t, c, len(in), 10*time.Second)
	slices.SortFunc(out, func(a, b *stream.Record) int { return int(a.Offset - b.Offset) })
	for i, r := range out {
		want := in[i]
		if r.Offset != int64(i+1) || !bytes.Equal(r.Value, want.Value) {
			t.Errorf("record %q: Offset = %d, want %q at %d (stream sequence)", r.Value, r.Offset, want.Value, i+1)
		}
		wantPart := want.Partition
		if wantPart < 0 {
			wantPart = int32(fnv1a(want.Key) % 4)
		}
		if r.Partition != wantPart {
			t.Errorf("record %q: Partition = %d, want %d", r.Value, r.Partition, wantPart)
		}
		if subj := r.Handle.(jetstream.Msg).Subject(); subj != wantSubjects[r.Partition] {
			t.Errorf("record %q: subject %q, want %q", r.Value, subj, wantSubjects[r.Partition])
		}
	}
}

func TestProducePartitioning(t *testing.T) {
	b := newEmbedded(t, Config{})
	const topic = "part"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 3})

	var recs []*stream.Record
	for range 5 {
		recs = append(recs, &stream.Record{Topic: topic, Partition: -1, Key: []byte("same-key"), Value: []byte("k")})
	}
	recs = append(recs, values(topic, "rr", 30)...)
	produce(t, b, recs...)

	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	out := pollN(t, c, len(recs), 10*time.Second)
	perPartition := make([]int, 3)
	keyed := map[int32]bool{}
	for _, r := range out {
		if string(r.Key) == "same-key" {
			keyed[r.Partition] = true
		} else {
			perPartition[r.Partition]++
		}
	}
	if len(keyed) != 1 {
		t.Errorf("one key went to partitions %v, want one", keyed)
	}
	if !slices.Equal(perPartition, []int{10, 10, 10}) {
		t.Errorf("round robin spread %v, want 10 each", perPartition)
	}
}

func TestProduceUnknownTopic(t *testing.T) {
	b := newEmbedded(t, Config{PublishTimeout: 2 * time.Second})
	err := b.Produce(context.Background(), &stream.Record{Topic: "nope", Partition: -1})
	if !errors.Is(err, errUnknownTopic) || stream.IsRetryable(err) {
		t.Errorf("err = %v, want errUnknownTopic, not retryable", err)
	}
	err = b.Produce(context.Background(), &stream.Record{Topic: "bad.*", Partition: -1})
	if err == nil || stream.IsRetryable(err) {
		t.Errorf("wildcard topic: err = %v, want a permanent error", err)
	}
}

func TestProduceReservedHeaders(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "h", Partitions: 1})
	for _, key := range []string{headerKey, headerTimestamp, "Nats-Rollup", "nats-msg-id"} {
		err := b.Produce(context.Background(), &stream.Record{Topic: "h", Headers: []stream.Header{{Key: key, Value: []byte("x")}}})
		if err == nil || stream.IsRetryable(err) {
			t.Errorf("header %q: err = %v, want a permanent error", key, err)
		}
	}
}

// A record above the server's max payload is refused like one above the
// topic's limit (which the suite checks).
func TestRecordAboveMaxPayload(t *testing.T) {
	b, err := NewEmbedded(EmbeddedConfig{DataDir: t.TempDir(), MaxPayload: 64 << 10}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ensure(t, b, stream.TopicSpec{Name: "big", Partitions: 1})
	err = b.Produce(context.Background(), &stream.Record{Topic: "big", Value: make([]byte, 100<<10)})
	if !errors.Is(err, stream.ErrRecordTooLarge) || stream.IsRetryable(err) {
		t.Fatalf("err = %v, want ErrRecordTooLarge, not retryable", err)
	}
	// The bus still works after the rejection.
	produce(t, b, &stream.Record{Topic: "big", Value: []byte(strings.Repeat("x", 100))})
}

func TestEnsureTopicsExisting(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "a.b", Partitions: 4, Retention: time.Hour, MaxRecordBytes: 4096})

	// A second bus on the same server sees the existing stream, whatever
	// it asks for, and knows no partitions before it asks (the suite
	// checks the rest after a restart).
	other, err := connect(Config{Logger: testLogger(t)}, b.srv)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got := other.Partitions("a.b"); got != 0 {
		t.Errorf("Partitions before EnsureTopics = %d, want 0", got)
	}
	ensure(t, other, stream.TopicSpec{Name: "a.b", Partitions: 8})
	if got := other.Partitions("a.b"); got != 4 {
		t.Errorf("Partitions = %d, want the existing 4", got)
	}
	info, err := other.js.Stream(context.Background(), "a_b")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := info.CachedInfo().Config; cfg.MaxAge != time.Hour || cfg.MaxMsgSize != 4096 ||
		cfg.Storage != jetstream.FileStorage || cfg.Discard != jetstream.DiscardOld {
		t.Errorf("stream config %+v", cfg)
	}
	if err := b.EnsureTopics(context.Background(), stream.TopicSpec{Name: "a..b"}); err == nil {
		t.Error("topic with an empty token accepted")
	}
}
