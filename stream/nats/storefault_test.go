package nats

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// nats-server disables JetStream by itself when a write of the store is
// refused (a permission error: server/stream.go, "disabling JetStream").
// The store watch starts it again once the disk takes a probe write: the
// records and the group's position are kept, producing works again, and
// meanwhile Produce and Ping fail with stream.ErrUnavailable. (A full disk,
// the stream's sticky write error, is app's TestEmbeddedDiskFullRecovers.)
func TestEmbeddedJetStreamDisabledIsRestarted(t *testing.T) {
	b := newEmbedded(t, Config{PublishTimeout: 5 * time.Second})
	const topic = "sluice.restart"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 1})
	produce(t, b, values(topic, "before", 3)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	commit(t, c, pollN(t, c, 3, 10*time.Second)...)

	if err := b.srv.ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	var refused int
	eventually(t, 30*time.Second, func() error {
		err := b.Produce(context.Background(), values(topic, "during", 1)...)
		if err == nil {
			return nil
		}
		refused++
		if !errors.Is(err, stream.ErrUnavailable) {
			t.Fatalf("Produce while JetStream is down: %v, want stream.ErrUnavailable", err)
		}
		return err
	})
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
	produce(t, b, values(topic, "after", 3)...)
	want := map[string]int{"during0": 1, "after0": 1, "after1": 1, "after2": 1}
	recs := pollN(t, c, 4, 20*time.Second)
	if got := valueSet(recs); !maps.Equal(got, want) {
		t.Errorf("polled after the restart: %v, want %v (the committed records not again)", got, want)
	}
	commit(t, c, recs...)
	t.Logf("%d produces refused while JetStream was down", refused)
}
