package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/stream"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// testLogger logs to t until the test ends (franz-go may log later, from
// its goroutines; that is dropped).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs after the bus's Close
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// newBus returns a Bus on the shared test broker (cfg.Brokers unset) or
// on cfg.Brokers, closed when the test ends.
func newBus(t testing.TB, cfg Config) *Bus {
	t.Helper()
	if cfg.Brokers == nil {
		cfg.Brokers = kafkatest.Brokers(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// topic creates a topic unique to the test.
func topic(t testing.TB, b *Bus, partitions int32) string {
	t.Helper()
	name := kafkatest.Topic(t, "sluice")
	ensure(t, b, stream.TopicSpec{Name: name, Partitions: partitions})
	return name
}

func ensure(t testing.TB, b *Bus, specs ...stream.TopicSpec) {
	t.Helper()
	if err := b.EnsureTopics(context.Background(), specs...); err != nil {
		t.Fatal(err)
	}
}

func produce(t testing.TB, b *Bus, recs ...*stream.Record) {
	t.Helper()
	if err := b.Produce(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// values builds n unkeyed records for topic with values prefix0..prefixN-1,
// spread over partitions (0: the bus chooses).
func values(topic, prefix string, n int, partitions int32) []*stream.Record {
	recs := make([]*stream.Record, n)
	for i := range recs {
		p := int32(-1)
		if partitions > 0 {
			p = int32(i) % partitions
		}
		recs[i] = &stream.Record{Topic: topic, Partition: p, Value: []byte(prefix + strconv.Itoa(i))}
	}
	return recs
}

func consume(t testing.TB, b *Bus, cfg stream.ConsumerConfig) stream.Consumer {
	t.Helper()
	c, err := b.Consume(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pollN polls until it has n records, failing after timeout.
func pollN(t testing.TB, c stream.Consumer, n int, timeout time.Duration) []*stream.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*stream.Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll: got %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	if len(out) > n {
		t.Fatalf("poll: got %d records, want %d", len(out), n)
	}
	return out
}

// pollNone checks that nothing comes within d.
func pollNone(t testing.TB, c stream.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	recs, err := c.Poll(ctx)
	if len(recs) > 0 {
		t.Fatalf("poll: got %d records (first %q), want none", len(recs), recs[0].Value)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("poll: %v, want deadline exceeded", err)
	}
}

func commit(t testing.TB, c stream.Consumer, recs ...*stream.Record) {
	t.Helper()
	if err := c.Commit(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

func valueSet(recs []*stream.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Value)]++
	}
	return m
}

// eventually retries f until it returns nil, failing after timeout.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func topicName(t testing.TB) string { return kafkatest.Topic(t, "sluice") }
func groupName(t testing.TB) string { return kafkatest.Group(t, "g") }
