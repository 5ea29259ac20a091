package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// Positions are stream sequences under stream.AllPartitions, found by the
// time the server stored the records; ReadRange reads [from, to) of the
// sequences, across partitions, and ends with io.EOF.
func TestRanges(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "r", Partitions: 2})
	before := time.Now()
	recs := values("r", "v", 10)
	for i, r := range recs {
		r.Partition, r.Timestamp = int32(i%2), before.Add(-time.Hour)
	}
	produce(t, b, recs...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{time.Time{}, 11},
		{before.Add(-time.Minute), 1}, // stored after it, whatever their own timestamps
		{time.Now().Add(time.Hour), 11},
	} {
		got, err := b.PositionsAt(ctx, "r", tc.at)
		if err != nil || len(got) != 1 || got[stream.AllPartitions] != tc.want {
			t.Errorf("PositionsAt(%s) = %v, %v; want %d under AllPartitions", tc.at, got, err, tc.want)
		}
	}
	rd, err := b.ReadRange(ctx, "r", stream.Positions{stream.AllPartitions: 3}, stream.Positions{stream.AllPartitions: 7}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []string
	for {
		recs, err := rd.Poll(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s@%d/p%d", r.Value, r.Offset, r.Partition))
			if !r.Timestamp.Equal(before.Add(-time.Hour)) {
				t.Errorf("record %s: timestamp %s, want its own", r.Value, r.Timestamp)
			}
		}
	}
	if want := "[v2@3/p0 v3@4/p1 v4@5/p0 v5@6/p1]"; fmt.Sprint(got) != want {
		t.Errorf("read %v, want %s", got, want)
	}
	if _, err := b.ReadRange(ctx, "r", stream.Positions{0: 3}, stream.Positions{0: 7}, 0); err == nil {
		t.Error("a range by partition on NATS")
	}
}
