package nats

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

func TestGroupsShareAndFanOut(t *testing.T) {
	b := newEmbedded(t, Config{})
	const topic = "share"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 4})
	in := values(topic, "r", 200)
	produce(t, b, in...)

	// Two members of one group: disjoint, together everything.
	cfg := stream.ConsumerConfig{Group: "workers", Topics: []string{topic}, MaxPollRecords: 7}
	members := []stream.Consumer{consume(t, b, cfg), consume(t, b, cfg)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := make([]map[string]int, len(members))
	total := 0
	var wg sync.WaitGroup
	for i, c := range members {
		got[i] = map[string]int{}
		wg.Go(func() {
			for {
				mu.Lock()
				done := total >= len(in)
				mu.Unlock()
				if done {
					return
				}
				pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
				recs, err := c.Poll(pctx)
				pcancel()
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if err := c.Commit(ctx, recs...); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range recs {
					got[i][string(r.Value)]++
				}
				total += len(recs)
				mu.Unlock()
				time.Sleep(time.Millisecond) // give the other member a chance
			}
		})
	}
	wg.Wait()
	if len(got[0]) == 0 || len(got[1]) == 0 {
		t.Errorf("members got %d and %d records, want both some", len(got[0]), len(got[1]))
	}
	union := maps.Clone(got[0])
	for v, n := range got[1] {
		union[v] += n
	}
	if want := valueSet(in); !maps.Equal(union, want) {
		t.Errorf("members together got %d distinct records (%d total), want each of %d once", len(union), total, len(want))
	}
	for _, c := range members {
		pollNone(t, c, 300*time.Millisecond)
	}

	// Another group gets everything again.
	other := consume(t, b, stream.ConsumerConfig{Group: "sinks", Topics: []string{topic}})
	if out := pollN(t, other, len(in), 10*time.Second); !maps.Equal(valueSet(out), valueSet(in)) {
		t.Error("second group did not get every record")
	}
}

func TestRedelivery(t *testing.T) {
	b := newEmbedded(t, Config{AckWait: time.Second})
	const topic = "redeliver"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 2})
	produce(t, b, values(topic, "r", 10)...)

	cfg := stream.ConsumerConfig{Group: "g", Topics: []string{topic}}
	c := consume(t, b, cfg)
	polled := time.Now() // the records are delivered after this
	first := pollN(t, c, 10, 5*time.Second)
	committed := map[string]bool{}
	for _, r := range first[:6] {
		committed[string(r.Value)] = true
	}
	commit(t, c, first[:6]...)

	// The 4 uncommitted come again after AckWait, with the same offsets.
	again := pollN(t, c, 4, 5*time.Second)
	if d := time.Since(polled); d < 900*time.Millisecond {
		t.Errorf("redelivered %s after the first poll, before AckWait", d)
	}
	offsets := map[string]int64{}
	for _, r := range first {
		offsets[string(r.Value)] = r.Offset
	}
	for _, r := range again {
		if committed[string(r.Value)] {
			t.Errorf("committed record %q delivered again", r.Value)
		}
		if r.Offset != offsets[string(r.Value)] {
			t.Errorf("record %q: offset %d, first delivered at %d", r.Value, r.Offset, offsets[string(r.Value)])
		}
	}

	// Closing without committing: a new member gets them once more.
	c.Close()
	if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Poll after Close: %v, want ErrClosed", err)
	}
	if err := c.Commit(context.Background(), again...); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}
	c2 := consume(t, b, cfg)
	third := pollN(t, c2, 4, 5*time.Second)
	if !maps.Equal(valueSet(third), valueSet(again)) {
		t.Errorf("after reopening got %v, want %v", valueSet(third), valueSet(again))
	}
	commit(t, c2, third...)
	commit(t, c2, third...) // twice is harmless
	pollNone(t, c2, 1500*time.Millisecond)
}

func TestStartPositions(t *testing.T) {
	b := newEmbedded(t, Config{})
	const topic = "start"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 3})
	produce(t, b, values(topic, "old", 5)...)
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	produce(t, b, values(topic, "new", 5)...)

	earliest := consume(t, b, stream.ConsumerConfig{Group: "earliest", Topics: []string{topic}})
	all := pollN(t, earliest, 10, 5*time.Second)

	atTime := consume(t, b, stream.ConsumerConfig{Group: "time", Topics: []string{topic},
		Start: stream.Start{Kind: stream.StartAtTime, Time: mid}})
	if got, want := valueSet(pollN(t, atTime, 5, 5*time.Second)), valueSet(values(topic, "new", 5)); !maps.Equal(got, want) {
		t.Errorf("AtTime: got %v, want %v", got, want)
	}

	var seq7 int64
	for _, r := range all {
		if string(r.Value) == "new1" {
			seq7 = r.Offset
		}
	}
	atOffset := consume(t, b, stream.ConsumerConfig{Group: "offset", Topics: []string{topic},
		Start: stream.Start{Kind: stream.StartAtOffset, Offset: seq7}})
	if got, want := valueSet(pollN(t, atOffset, 4, 5*time.Second)), valueSet(values(topic, "new", 5)[1:]); !maps.Equal(got, want) {
		t.Errorf("AtOffset %d: got %v, want %v", seq7, got, want)
	}

	latest := consume(t, b, stream.ConsumerConfig{Group: "latest", Topics: []string{topic},
		Start: stream.Start{Kind: stream.StartLatest}})
	pollNone(t, latest, 200*time.Millisecond)
	produce(t, b, values(topic, "later", 3)...)
	if got, want := valueSet(pollN(t, latest, 3, 5*time.Second)), valueSet(values(topic, "later", 3)); !maps.Equal(got, want) {
		t.Errorf("Latest: got %v, want %v", got, want)
	}

	// An existing group keeps its position whatever Start says.
	commit(t, latest)
	latest.Close()
	again := consume(t, b, stream.ConsumerConfig{Group: "latest", Topics: []string{topic},
		Start: stream.Start{Kind: stream.StartEarliest}})
	pollNone(t, again, 200*time.Millisecond)
}

func TestLag(t *testing.T) {
	b := newEmbedded(t, Config{})
	const topic = "lag"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 2}, stream.TopicSpec{Name: "lag2", Partitions: 1})
	produce(t, b, values(topic, "r", 10)...)
	produce(t, b, values("lag2", "s", 3)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic, "lag2"}, MaxPollRecords: 100})

	wantLag := func(want int64) {
		t.Helper()
		eventually(t, 5*time.Second, func() error {
			lag, err := c.Lag(context.Background())
			if err != nil {
				return err
			}
			if lag != want {
				return fmt.Errorf("lag %d, want %d", lag, want)
			}
			return nil
		})
	}
	wantLag(13)
	recs := pollN(t, c, 13, 5*time.Second)
	wantLag(13) // polled is not committed
	commit(t, c, recs[:4]...)
	wantLag(9)
	commit(t, c, recs[4:]...)
	wantLag(0)
}

func TestPollSeveralTopics(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "one", Partitions: 1}, stream.TopicSpec{Name: "two", Partitions: 1})
	produce(t, b, values("one", "a", 30)...)
	produce(t, b, values("two", "b", 30)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"one", "two"}, MaxPollRecords: 10})

	// Both topics are served although each alone could fill every poll.
	seen := map[string]int{}
	for range 4 {
		recs := pollN(t, c, 10, 5*time.Second)
		for _, r := range recs {
			seen[r.Topic]++
		}
		commit(t, c, recs...)
	}
	if seen["one"] == 0 || seen["two"] == 0 {
		t.Errorf("records per topic %v, want both", seen)
	}
	pollN(t, c, 20, 5*time.Second)

	// A record on an idle topic arrives while Poll is waiting.
	go func() {
		time.Sleep(300 * time.Millisecond)
		produce(t, b, values("two", "late", 1)...)
	}()
	start := time.Now()
	recs := pollN(t, c, 1, 5*time.Second)
	if recs[0].Topic != "two" || string(recs[0].Value) != "late0" {
		t.Errorf("got %s/%q", recs[0].Topic, recs[0].Value)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("late record took %s", d)
	}
}

func TestCloseStopsPoll(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "idle", Partitions: 1})
	for _, closeBus := range []bool{false, true} {
		c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"idle"}})
		errc := make(chan error, 1)
		go func() {
			_, err := c.Poll(context.Background())
			errc <- err
		}()
		time.Sleep(100 * time.Millisecond)
		if closeBus {
			b.Close()
		} else {
			c.Close()
		}
		select {
		case err := <-errc:
			if !errors.Is(err, stream.ErrClosed) {
				t.Errorf("closeBus=%v: Poll returned %v, want ErrClosed", closeBus, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("closeBus=%v: Poll still blocked after Close", closeBus)
		}
	}
	if err := b.Produce(context.Background(), values("idle", "x", 1)...); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Produce after Close: %v, want ErrClosed", err)
	}
	if err := b.Ping(context.Background()); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}

func TestConsumerName(t *testing.T) {
	for group, want := range map[string]string{
		"workers":      "workers",
		"sink-loki_1":  "sink-loki_1",
		"sluice.sinks": "sluice_sinks_",
		"a b/c":        "a_b_c_",
	} {
		got := consumerName(group)
		if len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("consumerName(%q) = %q, want prefix %q", group, got, want)
		}
	}
	if consumerName("a.b") == consumerName("a_b") {
		t.Error(`"a.b" and "a_b" share a consumer`)
	}
}

func TestMaxAckPending(t *testing.T) {
	b := newEmbedded(t, Config{MaxAckPending: 5})
	ensure(t, b, stream.TopicSpec{Name: "map", Partitions: 1})
	produce(t, b, values("map", "r", 12)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"map"}})

	first := pollN(t, c, 5, 5*time.Second)
	pollNone(t, c, 500*time.Millisecond) // the group holds the maximum
	commit(t, c, first...)
	second := pollN(t, c, 5, 5*time.Second)
	commit(t, c, second...)
	commit(t, c, pollN(t, c, 2, 5*time.Second)...)
}

func TestConsumerSettingsFollowConfig(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "cfg", Partitions: 1})
	consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"cfg"}}).Close()

	// A member started with other settings brings the group's consumer
	// to them; its position stays.
	other, err := connect(Config{AckWait: time.Second, MaxAckPending: 7, Logger: testLogger(t)}, b.srv)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	consume(t, other, stream.ConsumerConfig{Group: "g", Topics: []string{"cfg"}})
	cons, err := b.js.Consumer(context.Background(), "cfg", "g")
	if err != nil {
		t.Fatal(err)
	}
	if cc := cons.CachedInfo().Config; cc.AckWait != time.Second || cc.MaxAckPending != 7 {
		t.Errorf("consumer AckWait %s MaxAckPending %d, want 1s and 7", cc.AckWait, cc.MaxAckPending)
	}
}

// Polls with short deadlines while records trickle in: a record the
// server sends as a poll's deadline passes must not be dropped (it would
// come again only after AckWait, 30s here).
func TestShortPollsLoseNothing(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "trickle", Partitions: 2})
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"trickle"}})
	in := values("trickle", "r", 60)
	go func() {
		for i, r := range in {
			if err := b.Produce(context.Background(), r); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Duration(5+i%4*6) * time.Millisecond)
		}
	}()
	got := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; len(got) < len(in) && time.Now().Before(deadline); i++ {
		// Longer than gatherWait, so that Poll gets to wait for records.
		ctx, cancel := context.WithTimeout(context.Background(), gatherWait+time.Duration(1+i%9)*time.Millisecond)
		recs, err := c.Poll(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[string(r.Value)]++
		}
		commit(t, c, recs...)
	}
	if !maps.Equal(got, valueSet(in)) {
		t.Fatalf("got %d of %d records", len(got), len(in))
	}
}

// While the server cannot be reached, Poll waits 100ms between fetches,
// then twice as long each time, up to 2s.
func TestPollBackoff(t *testing.T) {
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	retry := pollBackoff()
	for i, w := range want {
		if got := retry.NextBackOff(); got != w*time.Millisecond {
			t.Errorf("wait %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
}
