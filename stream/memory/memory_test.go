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

// GroupLag counts, per partition, the records after the group's committed
// position; a group that never consumed the topic has every record as lag.
func TestGroupLag(t *testing.T) {
	ctx := context.Background()
	b := New()
	if err := b.EnsureTopics(ctx, stream.TopicSpec{Name: "t", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 0, 1} {
		if err := b.Produce(ctx, &stream.Record{Topic: "t", Partition: p, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	lags := func(group string) []stream.PartitionLag {
		t.Helper()
		l, err := b.GroupLag(ctx, group, "t")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, l := range lags("g") {
		if l.Committed != -1 || l.Lag != l.End || l.End != []int64{2, 1}[l.Partition] {
			t.Errorf("before the group consumed: %+v", l)
		}
	}
	c, err := b.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recs, err := c.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Partition == 0 && r.Offset == 0 {
			if err := c.Commit(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []stream.PartitionLag{{Group: "g", Topic: "t", Partition: 0, Committed: 1, End: 2, Lag: 1}, {Group: "g", Topic: "t", Partition: 1, Committed: 0, End: 1, Lag: 1}}
	if got := lags("g"); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("after one commit: %+v, want %+v", got, want)
	}
	if _, err := b.GroupLag(ctx, "g", "missing"); err == nil {
		t.Error("the lag in a topic that does not exist: no error")
	}
}
