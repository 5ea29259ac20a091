package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

func TestTracker(t *testing.T) {
	tr := tracker{parts: map[topicPartition]*pending{}}
	poll := func(topic string, partition int32, offsets ...int64) []*stream.Record {
		var out []*stream.Record
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, o := range offsets {
			r := &kgo.Record{Topic: topic, Partition: partition, Offset: o, LeaderEpoch: 3}
			tr.polled(r)
			out = append(out, &stream.Record{Topic: topic, Partition: partition, Offset: o, Handle: r})
		}
		return out
	}
	// position returns the committed position that commit(recs) yields
	// for topic/partition, -1 if it does not move.
	position := func(topic string, partition int32, recs ...*stream.Record) int64 {
		t.Helper()
		marks, err := tr.commit(recs)
		if err != nil {
			t.Fatal(err)
		}
		if eo, ok := marks[topic][partition]; ok {
			if eo.Epoch != 3 {
				t.Errorf("epoch %d, want 3", eo.Epoch)
			}
			return eo.Offset
		}
		return -1
	}

	a := poll("a", 0, 10, 11, 12, 15, 16) // offsets may have gaps
	if got := position("a", 0, a[1]); got != -1 {
		t.Errorf("commit of 11 before 10: position %d, want none", got)
	}
	if got := position("a", 0, a[0]); got != 12 {
		t.Errorf("then 10: position %d, want 12", got)
	}
	if got := position("a", 0, a[4], a[3]); got != -1 {
		t.Errorf("15 and 16 with 12 open: position %d, want none", got)
	}
	b := poll("a", 1, 0, 1)
	marks, err := tr.commit([]*stream.Record{a[2], b[0], b[1]})
	if err != nil {
		t.Fatal(err)
	}
	if marks["a"][0].Offset != 17 || marks["a"][1].Offset != 2 {
		t.Errorf("commit across partitions: %v, want a/0 at 17, a/1 at 2", marks)
	}
	if got := position("a", 0, a...); got != -1 {
		t.Errorf("committing again: position %d, want none", got)
	}

	// More records after the position, then the partition is revoked:
	// late commits of its records are ignored.
	c := poll("a", 0, 17, 18)
	tr.drop(map[string][]int32{"a": {0}})
	if got := position("a", 0, c...); got != -1 {
		t.Errorf("commit after revocation: position %d, want none", got)
	}
	// Reassigned and polled again from the committed position.
	c = poll("a", 0, 17, 18)
	if got := position("a", 0, c...); got != 19 {
		t.Errorf("after reassignment: position %d, want 19", got)
	}
	// A rewind (reset after data loss) forgets what was pending.
	poll("a", 1, 2, 3)
	d := poll("a", 1, 1, 2)
	if got := position("a", 1, d...); got != 3 {
		t.Errorf("after a rewind: position %d, want 3", got)
	}

	if _, err := tr.commit([]*stream.Record{{Topic: "a"}}); err == nil {
		t.Error("record without handle: no error")
	}
}

func BenchmarkTracker(b *testing.B) {
	tr := tracker{parts: map[topicPartition]*pending{}}
	const batch = 1000
	kr := make([]kgo.Record, batch)
	recs := make([]*stream.Record, batch)
	for i := range recs {
		recs[i] = &stream.Record{Handle: &kr[i]}
	}
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		tr.mu.Lock()
		for i := range kr {
			kr[i] = kgo.Record{Topic: "t", Partition: int32(i % 4), Offset: off}
			off++
			tr.polled(&kr[i])
		}
		tr.mu.Unlock()
		if _, err := tr.commit(recs); err != nil {
			b.Fatal(err)
		}
	}
}
