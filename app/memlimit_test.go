package app

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/internal/config"
)

// The auto limit keeps its base while the aggregation state fits in the
// allowance, then grows by two bytes a byte of state, and comes back down
// with it; the gauge shows what was set.
func TestMemLimitFollowsState(t *testing.T) {
	const base = config.AutoWorkerMemoryLimit
	var state, set int64
	m := newMemLimit(base, prometheus.NewRegistry(), nil)
	m.set = func(l int64) int64 { prev := set; set = l; return prev }
	m.held = func() int64 { return state }
	for _, c := range []struct{ state, want int64 }{
		{0, base},
		{config.AutoStateAllowance, base},
		{config.AutoStateAllowance + 100<<20, base + 200<<20},
		{config.AutoStateAllowance + 1, base + 2},
		{10 << 20, base},
	} {
		state = c.state
		if got := m.update(); got != c.want || set != c.want {
			t.Errorf("state %d: limit %d, set %d; want %d", c.state, got, set, c.want)
		}
		if g := testutil.ToFloat64(m.gauge); g != float64(c.want) {
			t.Errorf("state %d: gauge %v, want %d", c.state, g, c.want)
		}
	}
	// Without an aggregator the limit is fixed.
	fixed := newMemLimit(base, prometheus.NewRegistry(), nil)
	fixed.set = func(int64) int64 { return 0 }
	if got := fixed.update(); got != base {
		t.Errorf("fixed limit %d, want %d", got, base)
	}
}
