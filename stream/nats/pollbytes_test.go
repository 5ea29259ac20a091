package nats

import (
	"crypto/rand"
	"testing"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
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
		return bustest.LargestPoll(t, c, n, true)
	}
	if most := largest(stream.ConsumerConfig{Group: "bounded", Topics: []string{"in"}, MaxPollBytes: limit}); most > limit+size {
		t.Errorf("with MaxPollBytes %d a poll returned %d bytes", limit, most)
	}
	if most := largest(stream.ConsumerConfig{Group: "unbounded", Topics: []string{"in"}}); most <= limit+size {
		t.Errorf("without MaxPollBytes the largest poll was %d bytes: the test shows nothing", most)
	}
}
