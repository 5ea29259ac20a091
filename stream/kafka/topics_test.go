package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// The suite checks that EnsureTopics is idempotent and leaves existing
// topics as they are; here, what Kafka makes of a spec.
func TestEnsureTopics(t *testing.T) {
	b := newBus(t, Config{})
	a, c, d := topicName(t), topicName(t), topicName(t)
	specs := []stream.TopicSpec{
		{Name: a, Partitions: 3, Retention: 2 * time.Hour, MaxRecordBytes: 123456},
		{Name: c, Partitions: 1},
		{Name: d}, // the broker's num.partitions (1)
	}
	ensure(t, b, specs...)
	for name, want := range map[string]int32{a: 3, c: 1, d: 1, "no-such-topic-" + a: 0} {
		if got := b.Partitions(name); got != want {
			t.Errorf("Partitions(%s) = %d, want %d", name, got, want)
		}
	}

	// Partitions asks the cluster for a topic it was not told about.
	if got := newBus(t, Config{}).Partitions(c); got != 1 {
		t.Errorf("Partitions of a topic created elsewhere: %d, want 1", got)
	}

	configs, err := b.admin.DescribeTopicConfigs(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := configs.On(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"retention.ms": "7200000", "max.message.bytes": "123456"}
	for _, kv := range rc.Configs {
		if w, ok := want[kv.Key]; ok {
			if kv.MaybeValue() != w {
				t.Errorf("%s = %s, want %s", kv.Key, kv.MaybeValue(), w)
			}
			delete(want, kv.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("configs not found: %v", want)
	}

	// Invalid topics are all reported; the valid one is created.
	e := topicName(t)
	err = b.EnsureTopics(context.Background(),
		stream.TopicSpec{Name: "bad/name"},
		stream.TopicSpec{Name: e, Partitions: 2},
		stream.TopicSpec{Name: "bad*name"},
	)
	if err == nil || !strings.Contains(err.Error(), "bad/name") || !strings.Contains(err.Error(), "bad*name") {
		t.Errorf("invalid topics: %v, want both reported", err)
	}
	if got := b.Partitions(e); got != 2 {
		t.Errorf("valid topic beside invalid ones: %d partitions, want 2", got)
	}
}

// waitReady looks at the metadata after 20ms, then twice as long each
// time, up to 250ms.
func TestReadyBackoff(t *testing.T) {
	want := []time.Duration{20, 40, 80, 160, 250, 250}
	retry := readyBackoff()
	for i, w := range want {
		if got := retry.NextBackOff(); got != w*time.Millisecond {
			t.Errorf("wait %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
}
