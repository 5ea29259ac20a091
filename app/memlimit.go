package app

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/config"
)

// memLimit is the soft memory limit the process sets (memory_limit). With
// auto in a process that runs an aggregator, the limit follows the
// aggregation state: the base limit has room for config.AutoStateAllowance
// of it, and every byte of state beyond that raises the limit by two (the
// state's estimate leaves out the runtime's overhead of its tables, and
// the garbage it makes grows with it). The state is live data that the
// collector cannot free, so a fixed limit under a growing state leaves
// less and less room for garbage: the collector then runs back to back
// (up to half the CPU, the runtime's cap), the worker falls behind, its
// raw partitions drift apart in point time, the watermark (the slowest
// partition's) holds more intervals open, and the state grows further.
// The limit still bounds the rest of the heap, as it does without an
// aggregator.
type memLimit struct {
	base  int64
	held  func() int64 // the aggregation state, bytes; nil: fixed
	set   func(int64) int64
	cur   int64
	gauge prometheus.Gauge
	log   *slog.Logger
}

func newMemLimit(base int64, reg prometheus.Registerer, log *slog.Logger) *memLimit {
	m := &memLimit{base: base, set: debug.SetMemoryLimit, log: log,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_memory_limit_bytes",
			Help: "The soft memory limit sluice set for the Go runtime (memory_limit); auto follows the aggregation state."})}
	reg.MustRegister(m.gauge)
	return m
}

// update sets the limit for the state held now, and returns it.
func (m *memLimit) update() int64 {
	l := m.base
	if m.held != nil {
		l += 2 * max(0, m.held()-config.AutoStateAllowance)
	}
	if l == m.cur {
		return l
	}
	if m.cur != 0 && m.log != nil && (l > m.cur+m.cur/8 || l < m.cur-m.cur/8) {
		m.log.Info("soft memory limit follows the aggregation state", "bytes", l, "was", m.cur)
	}
	m.set(l)
	m.cur = l
	m.gauge.Set(float64(l))
	return l
}

// follow updates the limit every interval until ctx ends.
func (m *memLimit) follow(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.update()
		}
	}
}
