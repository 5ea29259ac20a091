package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// PositionsAt finds times in the brokers' time index by the records' own
// timestamps, per partition; ReadRange reads exactly [from, to) of each
// partition and ends with io.EOF.
func TestRanges(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 2)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	var recs []*stream.Record
	for p := range int32(2) {
		for i := range 10 {
			recs = append(recs, &stream.Record{Topic: name, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i), Timestamp: t0.Add(time.Duration(i) * time.Second)})
		}
	}
	produce(t, b, recs...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		at   time.Time
		want stream.Positions
	}{
		{time.Time{}, stream.Positions{0: 10, 1: 10}},
		{t0.Add(-time.Hour), stream.Positions{0: 0, 1: 0}},
		{t0.Add(3 * time.Second), stream.Positions{0: 3, 1: 3}},
		{t0.Add(3*time.Second + time.Millisecond), stream.Positions{0: 4, 1: 4}},
		{time.Now().Add(time.Hour), stream.Positions{0: 10, 1: 10}},
	} {
		got, err := b.PositionsAt(ctx, name, tc.at)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("PositionsAt(%s) = %v, %v; want %v", tc.at, got, err, tc.want)
		}
	}
	rd, err := b.ReadRange(ctx, name, stream.Positions{0: 3, 1: 3}, stream.Positions{0: 7, 1: 5}, 2)
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
			if want := fmt.Sprintf("%d-%d", r.Partition, r.Offset); string(r.Value) != want || !r.Timestamp.Equal(t0.Add(time.Duration(r.Offset)*time.Second)) {
				t.Errorf("record %s at %s, want %s at its own time", r.Value, r.Timestamp, want)
			}
			got = append(got, string(r.Value))
		}
	}
	if len(got) != 6 {
		t.Errorf("read %v, want 0-3..0-6 and 1-3..1-4", got)
	}
	if _, err := b.PositionsAt(ctx, name+"-missing", time.Time{}); err == nil {
		t.Error("positions of a missing topic")
	}
	empty, err := b.ReadRange(ctx, name, stream.Positions{0: 5}, stream.Positions{0: 5}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Poll(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("an empty range: %v, want io.EOF", err)
	}
}
