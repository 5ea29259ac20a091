package kafka

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
)

// MaxPollBytes bounds what one Poll returns (and what the client fetches):
// 100 incompressible records of 64 KiB, each its own batch, come in polls of
// at most 256 KiB (plus the one batch a broker returns beyond the limit);
// without the bound the first poll takes all of a partition's 1 MiB fetch.
// The same for the transactional consumer (worker.exactly_once).
func TestMaxPollBytes(t *testing.T) {
	b := newBus(t, Config{Compression: "none"})
	name := topic(t, b, 2)
	const n, size, limit = 100, 64 << 10, 256 << 10
	for i := range n {
		v := make([]byte, size)
		rand.Read(v)
		produce(t, b, &stream.Record{Topic: name, Partition: int32(i % 2), Value: v}) // one batch each
	}
	for _, tx := range []bool{false, true} {
		largest := func(cfg stream.ConsumerConfig) int {
			if !tx {
				c := consume(t, b, cfg)
				defer c.Close()
				return bustest.LargestPoll(t, c, n, false)
			}
			// A transactional Poll gives back what the last did not
			// commit: its first poll with records tells.
			c, err := b.ConsumeTransactional(cfg, "sluice-test-"+cfg.Group)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				recs, err := c.Poll(ctx)
				cancel()
				if err != nil && ctx.Err() == nil {
					t.Fatal(err)
				}
				size := 0
				for _, r := range recs {
					size += len(r.Value)
				}
				if size > 0 {
					return size
				}
			}
			t.Fatal("no records polled")
			return 0
		}
		if most := largest(stream.ConsumerConfig{Group: groupName(t) + fmt.Sprint(tx, 1), Topics: []string{name}, MaxPollBytes: limit}); most > limit+size {
			t.Errorf("transactional %v: with MaxPollBytes %d a poll returned %d bytes", tx, limit, most)
		}
		if most := largest(stream.ConsumerConfig{Group: groupName(t) + fmt.Sprint(tx, 2), Topics: []string{name}}); most <= limit+size {
			t.Errorf("transactional %v: without MaxPollBytes the largest poll was %d bytes: the test shows nothing", tx, most)
		}
	}
}
