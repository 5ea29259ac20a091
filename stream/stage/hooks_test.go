package stage

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/stream"
)

// OnLost counts into sluice_bus_records_lost_total by stage and topic.
func TestOnLost(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	sink, worker := m.OnLost("sink/archive"), m.OnLost("worker")
	sink("sluice.processed.metrics", 0, 10)
	sink("sluice.processed.metrics", 1, 5)
	sink("sluice.processed.logs", -1, 3)
	worker("sluice.raw.metrics", 2, 7)
	worker("sluice.raw.metrics", 2, 0)
	for _, c := range []struct {
		stage, topic string
		want         float64
	}{
		{"sink/archive", "sluice.processed.metrics", 15},
		{"sink/archive", "sluice.processed.logs", 3},
		{"worker", "sluice.raw.metrics", 7},
	} {
		if got := testutil.ToFloat64(m.lost.WithLabelValues(c.stage, c.topic)); got != c.want {
			t.Errorf("sluice_bus_records_lost_total{stage=%q,topic=%q} = %v, want %v", c.stage, c.topic, got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_bus_records_lost_total"); err != nil || n != 3 {
		t.Errorf("registered series: %d (%v), want 3", n, err)
	}
	var none *Metrics
	none.OnLost("worker")("t", 0, 1) // nil Metrics: counted nowhere, no panic
}

// ConsumerHooks counts under the stage's own name: the name written once,
// in stage.Config, labels what the consumer reports too.
func TestConsumerHooks(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	cc := Config{Name: "sink/archive", Metrics: m}.ConsumerHooks(stream.ConsumerConfig{Group: "g", Topics: []string{"t"}})
	if cc.Group != "g" || len(cc.Topics) != 1 {
		t.Errorf("ConsumerHooks changed the consumer's settings: %+v", cc)
	}
	cc.OnLost("t", -1, 4)
	if got := testutil.ToFloat64(m.lost.WithLabelValues("sink/archive", "t")); got != 4 {
		t.Errorf(`sluice_bus_records_lost_total{stage="sink/archive",topic="t"} = %v, want 4`, got)
	}
	cc.OnHoldExpired("t", 3)
	cc.OnHoldExpired("t", 0)
	cc.OnHoldExpired("u", 2)
	for topic, want := range map[string]float64{"t": 3, "u": 2} {
		if got := testutil.ToFloat64(m.holdExpired.WithLabelValues("sink/archive", topic)); got != want {
			t.Errorf(`sluice_bus_records_hold_expired_total{stage="sink/archive",topic=%q} = %v, want %v`, topic, got, want)
		}
	}
	var none *Metrics
	none.OnHoldExpired("worker")("t", 1) // nil Metrics: counted nowhere, no panic
}
