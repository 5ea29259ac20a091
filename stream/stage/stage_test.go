package stage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

func produce(t *testing.T, bus *memory.Bus, topic string, n int) {
	t.Helper()
	for i := range n {
		err := bus.Produce(context.Background(), &stream.Record{Topic: topic, Partition: -1, Value: []byte(strconv.Itoa(i)),
			Headers: []stream.Header{{Key: stream.HeaderItems, Value: []byte("10")}}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func lag(t *testing.T, bus *memory.Bus, group, topic string) int64 {
	t.Helper()
	c, err := bus.Consume(stream.ConsumerConfig{Group: group, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := c.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A failing batch is retried until it goes through, and only then
// committed; every record is handed over.
func TestRetriesUntilDeliveredThenCommits(t *testing.T) {
	bus := memory.New()
	bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: "in", Partitions: 2})
	produce(t, bus, "in", 50)
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})

	var mu sync.Mutex
	seen := map[string]int{}
	var fails atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s, err := New(Config{Name: "test", Consumer: c, Metrics: m, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Handle: func(_ context.Context, recs []*stream.Record) error {
			if fails.Add(1) <= 3 {
				return errors.New("backend down")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				seen[string(r.Value)]++
			}
			if len(seen) == 50 {
				cancel()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 50 {
		t.Fatalf("delivered %d distinct records, want 50", len(seen))
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s delivered %d times", v, n)
		}
	}
	if l := lag(t, bus, "g", "in"); l != 0 {
		t.Errorf("lag after run = %d, want 0", l)
	}
	if got := counter(m.handleErrors.WithLabelValues("test")); got != 3 {
		t.Errorf("handle errors = %v, want 3", got)
	}
	if got := counter(m.items.WithLabelValues("test")); got != 500 {
		t.Errorf("items = %v, want 500", got)
	}
}

// A stage stopped while its batch keeps failing commits nothing: the
// records are read again by the next member of the group.
func TestStopWithUndeliveredBatchCommitsNothing(t *testing.T) {
	bus := memory.New()
	produce(t, bus, "in", 20)
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	s, _ := New(Config{Name: "test", Consumer: c, MinBackoff: time.Millisecond, DrainTimeout: 10 * time.Millisecond,
		Handle: func(context.Context, []*stream.Record) error {
			if calls.Add(1) == 5 {
				cancel()
			}
			return errors.New("backend down")
		}})
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if l := lag(t, bus, "g", "in"); l != 20 {
		t.Errorf("lag = %d, want all 20 records uncommitted", l)
	}
}

// On shutdown the batch in hand finishes (within the drain timeout) and is
// committed.
func TestShutdownDrainsBatchInHand(t *testing.T) {
	bus := memory.New()
	produce(t, bus, "in", 5)
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
	ctx, cancel := context.WithCancel(context.Background())
	s, _ := New(Config{Name: "test", Consumer: c, DrainTimeout: time.Minute,
		Handle: func(hctx context.Context, recs []*stream.Record) error {
			cancel() // shutdown begins while the batch is being delivered
			select {
			case <-hctx.Done():
				return hctx.Err()
			case <-time.After(50 * time.Millisecond):
				return nil
			}
		}})
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if l := lag(t, bus, "g", "in"); l != 0 {
		t.Errorf("lag = %d, want the drained batch committed", l)
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

type retryAfter time.Duration

func (r retryAfter) Error() string             { return "come back later" }
func (r retryAfter) RetryAfter() time.Duration { return time.Duration(r) }

// An error that says when to come back is honoured over the backoff.
func TestHonoursRetryAfter(t *testing.T) {
	bus := memory.New()
	produce(t, bus, "in", 1)
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
	ctx, cancel := context.WithCancel(context.Background())
	var first, second time.Time
	s, _ := New(Config{Name: "test", Consumer: c, MinBackoff: time.Millisecond,
		Handle: func(context.Context, []*stream.Record) error {
			if first.IsZero() {
				first = time.Now()
				return fmt.Errorf("backend: %w", retryAfter(300*time.Millisecond))
			}
			second = time.Now()
			cancel()
			return nil
		}})
	s.Run(ctx)
	if gap := second.Sub(first); gap < 300*time.Millisecond {
		t.Errorf("retried after %v, before the 300ms the backend asked for", gap)
	}
}

// With BatchMaxWait, records that arrive close together are handed on as
// one batch; without it, each poll is a batch.
func TestBatchesByTime(t *testing.T) {
	for _, wait := range []time.Duration{0, time.Second} {
		bus := memory.New()
		c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
		ctx, cancel := context.WithCancel(context.Background())
		var sizes []int
		total := 0
		s, _ := New(Config{Name: "test", Consumer: c, BatchMinRecords: 3, BatchMaxWait: wait,
			Handle: func(_ context.Context, recs []*stream.Record) error {
				sizes = append(sizes, len(recs))
				if total += len(recs); total >= 3 {
					cancel()
				}
				return nil
			}})
		go func() {
			for range 3 {
				produce(t, bus, "in", 1)
				time.Sleep(50 * time.Millisecond)
			}
		}()
		s.Run(ctx)
		if wait > 0 && (len(sizes) != 1 || sizes[0] != 3) {
			t.Errorf("with a wait: batches %v, want one of 3", sizes)
		}
		if wait == 0 && len(sizes) < 2 {
			t.Errorf("without a wait: batches %v, want one per poll", sizes)
		}
	}
}

// A batch holding more than BatchMaxItems items is handed on in parts of at
// most that many (a larger record alone), each committed once handled: a
// handler that fails on the second part leaves the first committed.
func TestBatchMaxItemsSplitsAndCommitsEachPart(t *testing.T) {
	bus := memory.New()
	bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: "in", Partitions: 1})
	sizes := []string{"10", "10", "10", "45", "10", "10"}
	for i, n := range sizes {
		err := bus.Produce(context.Background(), &stream.Record{Topic: "in", Partition: 0, Value: []byte(strconv.Itoa(i)),
			Headers: []stream.Header{{Key: stream.HeaderItems, Value: []byte(n)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var parts [][]string
	s, err := New(Config{Name: "test", Consumer: c, BatchMaxItems: 25, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
		Handle: func(_ context.Context, recs []*stream.Record) error {
			var part []string
			for _, r := range recs {
				part = append(part, string(r.Value))
			}
			parts = append(parts, part)
			if len(parts) == 2 {
				// The second part fails once: by then the first is
				// committed, the rest is not.
				if l := lag(t, bus, "g", "in"); l != 4 {
					t.Errorf("lag %d while the second part is handled, want 4", l)
				}
				return errors.New("not now")
			}
			if len(parts) == 5 {
				cancel()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.Run(ctx)
	want := "[[0 1] [2] [2] [3] [4 5]]"
	if got := fmt.Sprint(parts); got != want {
		t.Errorf("parts %s, want %s", got, want)
	}
	if l := lag(t, bus, "g", "in"); l != 0 {
		t.Errorf("lag %d after every part was handled", l)
	}
}

// A failing batch waits MinBackoff, then twice as long each time, up to
// MaxBackoff (sleep adds the jitter).
func TestBackoffDoublesUpToMax(t *testing.T) {
	c, err := memory.New().Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Name: "test", Consumer: c, Handle: func(context.Context, []*stream.Record) error { return nil },
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	retry := s.backoff()
	for i, w := range want {
		if got := retry.NextBackOff(); got != w*time.Millisecond {
			t.Errorf("delay %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
}

// A stateful stage commits what it handled only after a checkpoint
// succeeded: while checkpoints fail nothing is committed; checkpoints run
// on time with no records arriving; stopping checkpoints once more.
func TestCheckpointGatesCommits(t *testing.T) {
	bus := memory.New()
	bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: "in", Partitions: 2})
	produce(t, bus, "in", 30)
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})

	var handled, checkpoints atomic.Int64
	var failing atomic.Bool
	failing.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(Config{Name: "agg", Consumer: c, LagInterval: -1, CheckpointInterval: 20 * time.Millisecond,
		Handle: func(_ context.Context, recs []*stream.Record) error {
			handled.Add(int64(len(recs)))
			return nil
		},
		Checkpoint: func(context.Context) error {
			checkpoints.Add(1)
			if failing.Load() {
				return errors.New("store down")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	waitFor(t, func() bool { return handled.Load() == 30 && checkpoints.Load() >= 3 })
	if n := lag(t, bus, "g", "in"); n != 30 {
		t.Fatalf("lag %d while checkpoints fail, want all 30 uncommitted", n)
	}
	failing.Store(false)
	waitFor(t, func() bool { return lag(t, bus, "g", "in") == 0 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Stopping a stateful stage checkpoints and commits what it handled.
func TestStopCheckpoints(t *testing.T) {
	bus := memory.New()
	bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: "in", Partitions: 1})
	produce(t, bus, "in", 7)
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
	var handled, checkpoints atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	s, _ := New(Config{Name: "agg", Consumer: c, LagInterval: -1, CheckpointInterval: time.Hour,
		Handle:     func(_ context.Context, recs []*stream.Record) error { handled.Add(int64(len(recs))); return nil },
		Checkpoint: func(context.Context) error { checkpoints.Add(1); return nil }})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, func() bool { return handled.Load() == 7 })
	if n := lag(t, bus, "g", "in"); n != 7 || checkpoints.Load() != 0 {
		t.Fatalf("before stopping: lag %d, %d checkpoints; want 7 and 0", n, checkpoints.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := lag(t, bus, "g", "in"); n != 0 || checkpoints.Load() != 1 {
		t.Errorf("after stopping: lag %d, %d checkpoints; want 0 and 1", n, checkpoints.Load())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With CheckpointItems, a stateful stage also checkpoints as soon as it
// handled that many items since the last checkpoint, whatever the
// interval: what it holds between checkpoints follows the bound.
func TestCheckpointByItems(t *testing.T) {
	bus := memory.New()
	bus.EnsureTopics(context.Background(), stream.TopicSpec{Name: "in", Partitions: 1})
	produce(t, bus, "in", 30) // 10 items each
	c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}, MaxPollRecords: 3})
	var handled, checkpointed atomic.Int64
	var sizes []int64 // items handled between two checkpoints
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(Config{Name: "agg", Consumer: c, LagInterval: -1, CheckpointInterval: time.Hour, CheckpointItems: 50,
		Handle: func(_ context.Context, recs []*stream.Record) error { handled.Add(10 * int64(len(recs))); return nil },
		Checkpoint: func(context.Context) error {
			sizes = append(sizes, handled.Load()-checkpointed.Load())
			checkpointed.Store(handled.Load())
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, func() bool { return checkpointed.Load() == 300 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Polls of 3 records (30 items): a checkpoint after every second one,
	// and the last at the stop, with nothing new.
	if got := fmt.Sprint(sizes); got != "[60 60 60 60 60 0]" {
		t.Errorf("items between checkpoints %s, want [60 60 60 60 60 0]", got)
	}
	if n := lag(t, bus, "g", "in"); n != 0 {
		t.Errorf("lag %d after the checkpoints", n)
	}
}

// recycling is a consumer that clears what Commit takes, as a consumer
// that reuses committed records' memory would: a stage that reads a
// record after committing it finds nothing.
type recycling struct{ stream.Consumer }

func (c recycling) Commit(ctx context.Context, recs ...*stream.Record) error {
	err := c.Consumer.Commit(ctx, recs...)
	for _, r := range recs {
		r.Key, r.Value, r.Headers = nil, nil, nil
	}
	return err
}

// The stage reads nothing of a record after committing it: its items are
// counted before, with and without checkpoints.
func TestNothingReadAfterCommit(t *testing.T) {
	for _, stateful := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpoint=%v", stateful), func(t *testing.T) {
			bus := memory.New()
			produce(t, bus, "in", 50)
			c, _ := bus.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{"in"}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m := NewMetrics(nil)
			var seen atomic.Int32
			cfg := Config{Name: "test", Consumer: recycling{c}, Metrics: m, BatchMaxItems: 70,
				Handle: func(_ context.Context, recs []*stream.Record) error {
					if seen.Add(int32(len(recs))) == 50 {
						cancel()
					}
					return nil
				}}
			if stateful {
				cfg.Checkpoint = func(context.Context) error { return nil }
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if got := counter(m.records.WithLabelValues("test")); got != 50 {
				t.Errorf("records = %v, want 50", got)
			}
			if got := counter(m.items.WithLabelValues("test")); got != 500 {
				t.Errorf("items = %v, want 500", got)
			}
		})
	}
}
