package kafka

import (
	"log/slog"
	"testing"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

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

func topicName(t testing.TB) string { return kafkatest.Topic(t, "sluice") }
func groupName(t testing.TB) string { return kafkatest.Group(t, "g") }

// The helpers every bus's tests share.
var (
	consume = func(t testing.TB, b *Bus, cfg stream.ConsumerConfig) stream.Consumer {
		t.Helper()
		return bustest.Consume(t, b, cfg)
	}
	ensure     = func(t testing.TB, b *Bus, specs ...stream.TopicSpec) { t.Helper(); bustest.Ensure(t, b, specs...) }
	produce    = func(t testing.TB, b *Bus, recs ...*stream.Record) { t.Helper(); bustest.Produce(t, b, recs...) }
	pollN      = bustest.PollN
	values     = bustest.Values
	valueSet   = bustest.ValueSet
	eventually = bustest.Eventually
)

// testLogger logs to t until the test ends.
func testLogger(t testing.TB) *slog.Logger { return bustest.Logger(t, slog.LevelInfo) }
