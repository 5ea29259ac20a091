package kafka

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// MaxPollBytes bounds what one Poll returns (and what the client fetches):
// 100 incompressible records of 64 KiB, each its own batch, come in polls of
// at most 256 KiB (plus the one batch a broker returns beyond the limit);
// without the bound the first poll takes all of a partition's 1 MiB fetch.
func TestMaxPollBytes(t *testing.T) {
	b := newBus(t, Config{Compression: "none"})
	name := topic(t, b, 2)
	const n, size, limit = 100, 64 << 10, 256 << 10
	for i := range n {
		v := make([]byte, size)
		rand.Read(v)
		produce(t, b, &stream.Record{Topic: name, Partition: int32(i % 2), Value: v}) // one batch each
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
		}
		if got != n {
			t.Fatalf("%d of %d records", got, n)
		}
		return most
	}
	if most := largest(stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}, MaxPollBytes: limit}); most > limit+size {
		t.Errorf("with MaxPollBytes %d a poll returned %d bytes", limit, most)
	}
	if most := largest(stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}}); most <= limit+size {
		t.Errorf("without MaxPollBytes the largest poll was %d bytes: the test shows nothing", most)
	}
}
