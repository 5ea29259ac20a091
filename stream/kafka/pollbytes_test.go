package kafka

import (
	"crypto/rand"
	"testing"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
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
		return bustest.LargestPoll(t, c, n, false)
	}
	if most := largest(stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}, MaxPollBytes: limit}); most > limit+size {
		t.Errorf("with MaxPollBytes %d a poll returned %d bytes", limit, most)
	}
	if most := largest(stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}}); most <= limit+size {
		t.Errorf("without MaxPollBytes the largest poll was %d bytes: the test shows nothing", most)
	}
}
