package sinkmetrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewIsIdempotentPerRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := New(reg).For("loki")
	b := New(reg).For("loki") // a second sink package on the same registry
	a.ItemsSent.Add(2)
	b.ItemsSent.Add(3)
	a.Requests("200").Inc()
	b.Requests("429").Inc()
	b.Duration.Observe(0.1)
	b.Rejected.Inc()
	if got := testutil.ToFloat64(New(reg).ItemsSent.WithLabelValues("loki")); got != 5 {
		t.Errorf("items sent = %v, want 5 on one shared collector", got)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_sink_requests_total", "sluice_sink_items_sent_total",
		"sluice_sink_request_duration_seconds", "sluice_sink_items_rejected_total"); err != nil || n != 5 {
		t.Errorf("series = %d, %v", n, err)
	}
	New(nil).For("x").Requests("ok").Inc() // unregistered works too

	// Another definition under one of the names (other help text): no
	// panic, the error is told, the collectors still work.
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_requests_total", Help: "other"}, []string{"sink", "code"}))
	m := New(other)
	if m.Err == nil {
		t.Error("conflict not reported")
	}
	m.For("y").Requests("200").Inc()
	if New(reg).Err != nil {
		t.Error(New(reg).Err)
	}
}
