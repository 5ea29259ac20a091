package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-dev/sluice/stream"
)

// TestLostToRetention: retention overtakes a stalled group (a sink that
// committed A, then stopped while B was written and aged out); when the
// group comes back it reads C, and the records it never got are reported
// to OnLost, per partition: lost = written - read.
func TestLostToRetention(t *testing.T) {
	b := newBus(t, Config{})
	skipUnlessRetentionChecksOften(t, b)
	const partitions = 2
	name := topic(t, b, partitions)
	var mu sync.Mutex
	lost := map[int32]int64{}
	cfg := stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}, OnLost: func(topic string, p int32, n int64) {
		if topic != name {
			t.Errorf("OnLost of topic %s, want %s", topic, name)
		}
		mu.Lock()
		lost[p] += n
		mu.Unlock()
	}}
	ctx := context.Background()

	// A: read and committed; then the group stalls (its only member leaves).
	written, read := 0, 0
	first := consume(t, b, cfg)
	produce(t, b, values(name, "a", 10, partitions)...)
	written += 10
	got := pollN(t, first, 10, 30*time.Second)
	if err := first.Commit(ctx, got...); err != nil {
		t.Fatal(err)
	}
	read += len(got)
	first.Close()

	// B: written while nobody reads, and removed by retention.
	produce(t, b, values(name, "b", 20, partitions)...)
	written += 20
	setRetention(t, b, name, "100")
	eventually(t, 60*time.Second, func() error {
		starts, err := b.admin.ListStartOffsets(ctx, name)
		if err != nil {
			return err
		}
		var errs []string
		starts.Each(func(o kadm.ListedOffset) {
			if o.Err != nil || o.Offset < 15 { // 5 of A and 10 of B per partition
				errs = append(errs, fmt.Sprintf("partition %d starts at %d (%v)", o.Partition, o.Offset, o.Err))
			}
		})
		if len(errs) > 0 {
			return fmt.Errorf("retention has not removed B yet: %s", strings.Join(errs, ", "))
		}
		return nil
	})
	setRetention(t, b, name, "")

	// C: written after; the group comes back and reads it.
	produce(t, b, values(name, "c", 6, partitions)...)
	written += 6
	second := consume(t, b, cfg)
	got = pollN(t, second, 6, 30*time.Second)
	read += len(got)
	for _, r := range got {
		if !strings.HasPrefix(string(r.Value), "c") {
			t.Errorf("read %q after the loss, want only C", r.Value)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	var sum int64
	for p, n := range lost {
		sum += n
		if n != 10 {
			t.Errorf("partition %d: %d records lost, want 10", p, n)
		}
	}
	if sum != int64(written-read) {
		t.Errorf("written %d, read %d, counted lost %d (%v): want lost = written - read = %d", written, read, sum, lost, written-read)
	}
}

// setRetention sets the topic's retention.ms ("" goes back to the default).
func setRetention(t *testing.T, b *Bus, topic, ms string) {
	t.Helper()
	alter := kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "retention.ms"}
	if ms != "" {
		alter = kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr(ms)}
	}
	resp, err := b.admin.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{alter}, topic)
	if err == nil {
		_, err = resp.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("retention.ms of %s: %v", topic, err)
	}
}

// skipUnlessRetentionChecksOften skips a test that waits for retention on
// a broker that enforces it only every few minutes (scripts/kafka/broker.sh
// and internal/kafkatest set 500 ms).
func skipUnlessRetentionChecksOften(t *testing.T, b *Bus) {
	t.Helper()
	rcs, err := b.admin.DescribeBrokerConfigs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != "log.retention.check.interval.ms" {
				continue
			}
			if ms, err := strconv.Atoi(c.MaybeValue()); err != nil || ms > 5000 {
				t.Skipf("the broker enforces retention every %s ms: start it with scripts/kafka/broker.sh", c.MaybeValue())
			}
			return
		}
	}
}
