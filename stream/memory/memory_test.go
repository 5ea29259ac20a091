package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

func TestProduceConsumeCommitResume(t *testing.T) {
	ctx := context.Background()
	b := New()
	b.EnsureTopics(ctx, stream.TopicSpec{Name: "t", Partitions: 2, MaxRecordBytes: 10})
	if b.Partitions("t") != 2 {
		t.Fatalf("partitions = %d", b.Partitions("t"))
	}
	for i := range 6 {
		if err := b.Produce(ctx, &stream.Record{Topic: "t", Partition: int32(i % 2), Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Produce(ctx, &stream.Record{Topic: "t", Partition: -1, Value: make([]byte, 11)}); !errors.Is(err, stream.ErrRecordTooLarge) {
		t.Errorf("oversize record: %v", err)
	}
	c, _ := b.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"t"}, MaxPollRecords: 4})
	recs, err := c.Poll(ctx)
	if err != nil || len(recs) != 4 {
		t.Fatalf("poll: %d records, %v", len(recs), err)
	}
	c.Commit(ctx, recs[0]) // only the first record of partition 0
	if lag, _ := c.Lag(ctx); lag != 5 {
		t.Errorf("lag = %d, want 5", lag)
	}
	c.Close()
	// A new member resumes after the committed record.
	c2, _ := b.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"t"}})
	recs, _ = c2.Poll(ctx)
	if len(recs) != 5 {
		t.Errorf("resumed with %d records, want 5", len(recs))
	}
	// Poll blocks until the context ends when nothing is new.
	pctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c2.Poll(pctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("empty poll: %v", err)
	}
	b.Fail = stream.ErrUnavailable
	if err := b.Produce(ctx, &stream.Record{Topic: "t", Partition: -1}); !stream.IsRetryable(err) {
		t.Errorf("Fail not returned: %v", err)
	}
	b.Close()
	if _, err := c2.Poll(ctx); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("poll after close: %v", err)
	}
}
