package stage

import "github.com/sluice-dev/sluice/stream"

// OnLost is the stream.ConsumerConfig.OnLost of the consumer of stage
// name: it counts the records the bus removed before the group read them
// in sluice_bus_records_lost_total{stage, topic}. The bus logs each loss
// with its partition and positions. Safe on a nil *Metrics (counts into
// metrics that are not registered).
func (m *Metrics) OnLost(name string) func(topic string, partition int32, records int64) {
	if m == nil {
		m = NewMetrics(nil)
	}
	lost := m.lost
	return func(topic string, _ int32, records int64) {
		if records > 0 {
			lost.WithLabelValues(name, topic).Add(float64(records))
		}
	}
}

// OnHoldExpired is the stream.ConsumerConfig.OnHoldExpired of the
// consumer of stage name: it counts the records the stage held uncommitted
// for so long that the bus let them be delivered again (NATS JetStream:
// bus.max_hold, a stage that hangs) in
// sluice_bus_records_hold_expired_total{stage, topic}. Safe on a nil
// *Metrics.
func (m *Metrics) OnHoldExpired(name string) func(topic string, records int64) {
	if m == nil {
		m = NewMetrics(nil)
	}
	expired := m.holdExpired
	return func(topic string, records int64) {
		if records > 0 {
			expired.WithLabelValues(name, topic).Add(float64(records))
		}
	}
}

// ConsumerHooks returns cc with the hooks that count into the stage's
// metrics under the stage's name (OnLost, OnHoldExpired), so that a stage's name is
// written once, in its Config, for its consumer and its metrics alike:
//
//	scfg := stage.Config{Name: "worker", Handle: h, Metrics: m}
//	c, err := bus.Consume(scfg.ConsumerHooks(stream.ConsumerConfig{Group: g, Topics: topics}))
//	scfg.Consumer = c
//	st, err := stage.New(scfg)
func (c Config) ConsumerHooks(cc stream.ConsumerConfig) stream.ConsumerConfig {
	cc.OnLost = c.Metrics.OnLost(c.Name)
	cc.OnHoldExpired = c.Metrics.OnHoldExpired(c.Name)
	return cc
}
