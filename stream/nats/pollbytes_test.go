package nats

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// MaxPollBytes bounds the message bytes of one Poll: 100 records of 64 KiB
// come in polls of at most 256 KiB (plus one message); without the bound
// one poll takes them all.
func TestMaxPollBytes(t *testing.T) {
	b, err := NewEmbedded(EmbeddedConfig{DataDir: t.TempDir(), MaxPayload: 128 << 10}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ensure(t, b, stream.TopicSpec{Name: "in", Partitions: 2})
	const n, size, limit = 100, 64 << 10, 256 << 10
	for i := range n {
		v := make([]byte, size)
		rand.Read(v)
		produce(t, b, &stream.Record{Topic: "in", Partition: int32(i % 2), Value: v})
	}
	largest := func(cfg stream.ConsumerConfig) int {
		c := consume(t, b, cfg)
		defer c.Close()
		got, most := 0, 0
		deadline := time.Now().Add(30 * time.Second)
		for got < n && time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			recs, err := c.Poll(ctx)
			cancel()
			if err != nil {
				t.Fatalf("poll after %d records: %v", got, err)
			}
			bytes := 0
			for _, r := range recs {
				bytes += len(r.Value)
			}
			got, most = got+len(recs), max(most, bytes)
			if err := c.Commit(context.Background(), recs...); err != nil {
				t.Fatal(err)
			}
		}
		if got != n {
			t.Fatalf("%d of %d records", got, n)
		}
		return most
	}
	if most := largest(stream.ConsumerConfig{Group: "bounded", Topics: []string{"in"}, MaxPollBytes: limit}); most > limit+size {
		t.Errorf("with MaxPollBytes %d a poll returned %d bytes", limit, most)
	}
	if most := largest(stream.ConsumerConfig{Group: "unbounded", Topics: []string{"in"}}); most <= limit+size {
		t.Errorf("without MaxPollBytes the largest poll was %d bytes: the test shows nothing", most)
	}
}
