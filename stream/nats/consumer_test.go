package nats

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/stream"
)

// A batch held longer than AckWait (a sink retrying) stays with the
// member that polled it: in-progress acks keep the server from handing it
// to another member of the group. Once the member closes without
// committing, the batch goes to the other member, with its offsets.
func TestHeldBatchIsNotDeliveredAgain(t *testing.T) {
	const ackWait = 500 * time.Millisecond
	b := newEmbedded(t, Config{AckWait: ackWait})
	const topic = "held"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 2})
	in := values(topic, "r", 10)
	produce(t, b, in...)

	cfg := stream.ConsumerConfig{Group: "g", Topics: []string{topic}}
	holder := consume(t, b, cfg)
	first := pollN(t, holder, 10, 5*time.Second)

	// The other member polls for 4 AckWaits while the batch is held:
	// without in-progress acks every record comes to it (duplicates).
	other := consume(t, b, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 4*ackWait)
	defer cancel()
	var dups []*stream.Record
	for ctx.Err() == nil {
		recs, err := other.Poll(ctx)
		dups = append(dups, recs...)
		if errors.Is(err, context.DeadlineExceeded) {
			break // Poll gives up a moment before ctx.Err() says so
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(dups) > 0 {
		t.Errorf("%d of %d held records delivered to the other member: %v", len(dups), len(first), valueSet(dups))
	}
	commit(t, other, dups...)

	// The holder commits 6 and closes with 4 in hand: those 4, and only
	// they, go to the other member after AckWait.
	commit(t, holder, first[:6]...)
	holder.Close()
	again := pollN(t, other, 4, 5*time.Second)
	if want := valueSet(first[6:]); !maps.Equal(valueSet(again), want) {
		t.Errorf("after the holder closed: got %v, want %v", valueSet(again), want)
	}
	offsets := map[string]int64{}
	for _, r := range first {
		offsets[string(r.Value)] = r.Offset
	}
	for _, r := range again {
		if r.Offset != offsets[string(r.Value)] {
			t.Errorf("record %q: offset %d, first delivered at %d", r.Value, r.Offset, offsets[string(r.Value)])
		}
	}
	commit(t, other, again...)
	pollNone(t, other, 2*ackWait)
}

// A batch held past MaxHold (a stage that hangs: it neither commits nor
// fails) is let go: the other member of the group gets it, and its records
// are reported to OnHoldExpired. A batch committed within MaxHold, though
// held longer than AckWait, is not delivered again.
func TestHoldExpires(t *testing.T) {
	const ackWait, maxHold = time.Second, 4 * time.Second
	b := newEmbedded(t, Config{AckWait: ackWait, MaxHold: maxHold})
	const topic = "hung"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 2})
	var expired atomic.Int64
	cfg := stream.ConsumerConfig{Group: "g", Topics: []string{topic}, OnHoldExpired: func(tp string, n int64) {
		if tp != topic {
			t.Errorf("OnHoldExpired(%q), want %q", tp, topic)
		}
		expired.Add(n)
	}}
	holder := consume(t, b, cfg)
	other := consume(t, b, cfg)

	// Held for 2 AckWaits, committed within MaxHold.
	produce(t, b, values(topic, "a", 5)...)
	slow := pollN(t, holder, 5, 5*time.Second)
	time.Sleep(2 * ackWait)
	commit(t, holder, slow...)
	pollNone(t, other, 2*ackWait)

	// Never committed: the other member gets it once MaxHold has passed.
	produce(t, b, values(topic, "b", 10)...)
	hung := pollN(t, holder, 10, 5*time.Second)
	again := pollN(t, other, 10, maxHold+10*time.Second)
	if want := valueSet(hung); !maps.Equal(valueSet(again), want) {
		t.Errorf("after MaxHold the other member got %v, want %v", valueSet(again), want)
	}
	commit(t, other, again...)
	eventually(t, 5*time.Second, func() error {
		if n := expired.Load(); n != 10 {
			return fmt.Errorf("OnHoldExpired counted %d records, want 10", n)
		}
		return nil
	})
	pollNone(t, other, 2*ackWait)
	if n := expired.Load(); n != 10 {
		t.Errorf("OnHoldExpired counted %d records, want 10 (the committed batch is not counted)", n)
	}
}

func TestMaxHoldAtLeastAckWait(t *testing.T) {
	if err := (Config{AckWait: time.Minute, MaxHold: 30 * time.Second}).withDefaults().validate(); err == nil {
		t.Error("MaxHold below AckWait accepted")
	}
	if c := (Config{AckWait: time.Hour}).withDefaults(); c.MaxHold != 2*time.Hour {
		t.Errorf("default MaxHold with AckWait 1h: %s, want 2h", c.MaxHold)
	}
	if c := (Config{}).withDefaults(); c.MaxHold != 10*time.Minute {
		t.Errorf("default MaxHold: %s, want 10m", c.MaxHold)
	}
}

// StartAtOffset is a stream sequence, which numbers every partition's
// records together: the group starts there in every partition.
func TestStartAtSequence(t *testing.T) {
	b := newEmbedded(t, Config{})
	const topic = "start"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 3})
	in := values(topic, "r", 9)
	produce(t, b, in...)
	c := consume(t, b, stream.ConsumerConfig{Group: "offset", Topics: []string{topic},
		Start: stream.Start{Kind: stream.StartAtOffset, Offset: 4}})
	got := pollN(t, c, 6, 5*time.Second)
	if want := valueSet(in[3:]); !maps.Equal(valueSet(got), want) {
		t.Errorf("from sequence 4: got %v, want %v", valueSet(got), want)
	}
	parts := map[int32]bool{}
	for _, r := range got {
		parts[r.Partition] = true
	}
	if len(parts) != 3 {
		t.Errorf("from sequence 4: partitions %v, want all 3", parts)
	}
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

// InOrder: a member joining a group whose consumer has records pending
// (polled by a member that crashed) gets them first, in order, before the
// newer records; without it the newer ones overtake them until AckWait.
func TestInOrderAfterCrash(t *testing.T) {
	for _, inOrder := range []bool{true, false} {
		b := newEmbedded(t, Config{AckWait: 20 * time.Second})
		const topic = "inorder"
		ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 1})
		produce(t, b, values(topic, "a", 10)...)
		cfg := stream.ConsumerConfig{Group: "g", Topics: []string{topic}, InOrder: inOrder}
		crashed := consume(t, b, cfg)
		first := pollN(t, crashed, 10, 5*time.Second)
		commit(t, crashed, first[:3]...) // then it dies: 7 left pending

		produce(t, b, values(topic, "b", 5)...)
		next := consume(t, b, cfg)
		if !inOrder {
			if got := pollN(t, next, 5, 5*time.Second); string(got[0].Value) != "b0" {
				t.Fatalf("without InOrder the first record is %q, want b0: the pending ones wait for AckWait", got[0].Value)
			}
			continue
		}
		got := pollN(t, next, 12, 5*time.Second)
		var order []string
		for i, r := range got {
			order = append(order, string(r.Value))
			if i > 0 && r.Offset <= got[i-1].Offset {
				t.Errorf("offset %d after %d", r.Offset, got[i-1].Offset)
			}
		}
		if order[0] != "a3" || order[6] != "a9" || order[7] != "b0" {
			t.Errorf("InOrder: records came as %v, want a3..a9 then b0..b4", order)
		}
	}
}

// A record another client published with JetStream's own headers (here
// Nats-Msg-Id, for deduplication) comes without them, so that it can be
// produced again, e.g. as a dead letter with its headers.
func TestPollDropsJetStreamHeaders(t *testing.T) {
	b := newEmbedded(t, Config{})
	ensure(t, b, stream.TopicSpec{Name: "in", Partitions: 1}, stream.TopicSpec{Name: "dlq", Partitions: 1})
	msg := natsgo.NewMsg("in.0")
	msg.Data = []byte("not otlp")
	msg.Header.Set("Nats-Msg-Id", "id-1")
	msg.Header.Set(stream.HeaderTenant, "team-a")
	if _, err := b.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
	r := pollN(t, c, 1, 5*time.Second)[0]
	if len(r.Headers) != 1 || r.Headers[0].Key != stream.HeaderTenant || string(r.Headers[0].Value) != "team-a" {
		t.Errorf("headers %v, want only %s", r.Headers, stream.HeaderTenant)
	}
	dead := &stream.Record{Topic: "dlq", Partition: -1, Value: r.Value, Headers: append(r.Headers, stream.ErrorHeader("bad"))}
	if err := b.Produce(context.Background(), dead); err != nil {
		t.Errorf("producing the polled record again: %v", err)
	}
	commit(t, c, r)
}
