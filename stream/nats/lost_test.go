package nats

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// TestLostToMaxAge: the stream's MaxAge removes records two groups have
// not read: one whose member stalls (stays, does not poll) and one whose
// member leaves and comes back. Each reads A, loses B, reads C, and
// reports lost = written - read to OnLost.
func TestLostToMaxAge(t *testing.T) {
	b := newEmbedded(t, Config{})
	name := "sluice.lost." + strings.ReplaceAll(t.Name(), "/", "_")
	ensure(t, b, stream.TopicSpec{Name: name, Partitions: 2})
	ctx := context.Background()

	var mu sync.Mutex
	lost := map[string]int64{}
	cfg := func(group string) stream.ConsumerConfig {
		return stream.ConsumerConfig{Group: group, Topics: []string{name}, OnLost: func(topic string, p int32, n int64) {
			if topic != name || p != -1 {
				t.Errorf("OnLost(%s, %d), want (%s, -1)", topic, p, name)
			}
			mu.Lock()
			lost[group] += n
			mu.Unlock()
		}}
	}
	stalled := consume(t, b, cfg("stalled"))
	leaving := consume(t, b, cfg("leaving"))

	written := 0
	read := map[string]int{}
	produce(t, b, values(name, "a", 10)...)
	written += 10
	for group, c := range map[string]stream.Consumer{"stalled": stalled, "leaving": leaving} {
		got := pollN(t, c, 10, 10*time.Second)
		commit(t, c, got...)
		read[group] += len(got)
	}
	leaving.Close()

	// B: written while neither group reads, and aged out.
	produce(t, b, values(name, "b", 20)...)
	written += 20
	setMaxAge(t, b, name, 100*time.Millisecond)
	st, err := b.js.Stream(ctx, streamName(name))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("MaxAge has not removed A and B yet: %d records left", info.State.Msgs)
		}
		return nil
	})
	setMaxAge(t, b, name, 0)

	// C: the groups read again.
	produce(t, b, values(name, "c", 6)...)
	written += 6
	back := consume(t, b, cfg("leaving"))
	for group, c := range map[string]stream.Consumer{"stalled": stalled, "leaving": back} {
		got := pollN(t, c, 6, 10*time.Second)
		commit(t, c, got...)
		read[group] += len(got)
		for _, r := range got {
			if !strings.HasPrefix(string(r.Value), "c") {
				t.Errorf("%s read %q after the loss, want only C", group, r.Value)
			}
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, group := range []string{"stalled", "leaving"} {
		if want := int64(written - read[group]); lost[group] != want || want != 20 {
			t.Errorf("group %s: written %d, read %d, counted lost %d; want lost = written - read = 20", group, written, read[group], lost[group])
		}
	}
}

func setMaxAge(t *testing.T, b *Bus, topic string, age time.Duration) {
	t.Helper()
	ctx := context.Background()
	st, err := b.js.Stream(ctx, streamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxAge = age
	if age > 0 && cfg.Duplicates > age {
		cfg.Duplicates = age // JetStream wants the duplicate window within MaxAge
	}
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("MaxAge %s of %s: %v", age, topic, err)
	}
}
