package nats

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// The gauges of the embedded server's JetStream store. Consuming frees no
// space in it: the streams keep records by limits (MaxAge, the topics'
// retention) so that a group can replay them, and a full store refuses
// writes.
var (
	storeUsedDesc = prometheus.NewDesc("sluice_bus_store_used_bytes",
		"Bytes the embedded bus's JetStream store holds, all streams together. Consuming frees nothing: records stay until bus.retention removes them.", nil, nil)
	storeLimitDesc = prometheus.NewDesc("sluice_bus_store_limit_bytes",
		"Bytes the embedded bus's JetStream store may hold (bus.embedded.max_store, or the share of the disk nats-server chose); writes fail beyond it.", nil, nil)
	streamBytesDesc = prometheus.NewDesc("sluice_bus_stream_bytes",
		"Bytes one stream of the embedded bus holds (a topic, or a state store's KV_ stream).", []string{"stream"}, nil)
	positionsResetDesc = prometheus.NewDesc("sluice_bus_positions_reset_total",
		"Groups' consumers of the embedded bus found missing or moved at start although the last stop was clean: nats-server lost or misread their state (o.dat), so records are delivered again or skipped. Counted once per start; see the warning in the log.", []string{"stream", "consumer"}, nil)
	storeFailingDesc = prometheus.NewDesc("sluice_bus_store_write_failing",
		"1 while the embedded bus's store cannot be written (a full disk, an I/O or permission error: writes are refused until sluice restarts JetStream once the disk takes writes again), else 0.", nil, nil)
)

// storeCollector reads the gauges from the server at each scrape: the
// server keeps the figures in memory, so this costs no I/O.
type storeCollector struct {
	srv *server.Server
	// resets are the groups whose position nats-server lost while the
	// process was stopped, found at start (checkPositions).
	resets []positionReset
	bus    *Bus // its fault, what the store watch found
}

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeUsedDesc
	ch <- storeLimitDesc
	ch <- streamBytesDesc
	ch <- positionsResetDesc
	ch <- storeFailingDesc
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.resets {
		ch <- prometheus.MustNewConstMetric(positionsResetDesc, prometheus.CounterValue, 1, r.stream, r.consumer)
	}
	failing := 0.0
	if c.bus.fault.Load() != nil {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(storeFailingDesc, prometheus.GaugeValue, failing)
	info, err := c.srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil || info.Disabled {
		return // shut down: nothing to report
	}
	ch <- prometheus.MustNewConstMetric(storeUsedDesc, prometheus.GaugeValue, float64(info.Store))
	ch <- prometheus.MustNewConstMetric(storeLimitDesc, prometheus.GaugeValue, float64(info.Config.MaxStore))
	// One account in sluice's embedded server; summed by name all the
	// same, so that two accounts' streams of one name make one series.
	byStream := map[string]uint64{}
	for _, acc := range info.AccountDetails {
		for _, st := range acc.Streams {
			byStream[st.Name] += st.State.Bytes
		}
	}
	for name, n := range byStream {
		ch <- prometheus.MustNewConstMetric(streamBytesDesc, prometheus.GaugeValue, float64(n), name)
	}
}
