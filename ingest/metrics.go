package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Protocols, for the protocol label.
const (
	protoGRPC = iota
	protoHTTP
)

var protocolNames = [...]string{protoGRPC: "grpc", protoHTTP: "http"}

// metrics of one Ingester. The children used on every request are resolved
// once here.
type metrics struct {
	requests *prometheus.CounterVec // protocol, signal, code
	items    [len(otlpwire.Signals)]prometheus.Counter
	records  [len(otlpwire.Signals)]prometheus.Counter
	bytes    [len(otlpwire.Signals)]prometheus.Counter
	rejected *prometheus.CounterVec // signal, reason
	errors   *prometheus.CounterVec // signal, reason
	produce  [len(otlpwire.Signals)]prometheus.Observer
	inflight prometheus.GaugeFunc

	// Reloads of the tokens file and the TLS files (Reloader), by file:
	// "tokens" or "tls".
	reloads       *prometheus.CounterVec // file, result
	reloadSuccess *prometheus.GaugeVec   // file
	reloadTime    *prometheus.GaugeVec   // file

	ok         [len(protocolNames)][len(otlpwire.Signals)]prometheus.Counter
	collectors []prometheus.Collector
}

func newMetrics(inflight func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_requests_total",
			Help: "OTLP export requests answered, by protocol, signal and status code (HTTP status or gRPC code).",
		}, []string{"protocol", "signal", "code"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_rejected_items_total",
			Help: "Items (data points, log records, spans) of accepted requests that were rejected and reported as partial success.",
		}, []string{"signal", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_errors_total",
			Help: "Requests that failed, by reason.",
		}, []string{"signal", "reason"}),
		inflight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_ingest_inflight_bytes",
			Help: "Request bytes being split and produced.",
		}, inflight),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_reloads_total",
			Help: "Reloads of the tokens file (file=\"tokens\") and the TLS certificate, key and CA (file=\"tls\"), by result (ok or error; an error keeps the previous ones in use).",
		}, []string{"file", "result"}),
		reloadSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_ingest_reload_success",
			Help: "1 if the last load of the file (tokens or tls) succeeded, 0 if it failed and the previous one is still in use.",
		}, []string{"file"}),
		reloadTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_ingest_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful load of the file (tokens or tls), at start or on reload.",
		}, []string{"file"}),
	}
	items := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ingest_items_total",
		Help: "Items (data points, log records, spans) written to the bus.",
	}, []string{"signal"})
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ingest_records_total",
		Help: "Records written to the bus (acknowledged). Concurrent requests bound for one partition share records.",
	}, []string{"signal"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ingest_bytes_total",
		Help: "Request bytes received, as sent on the wire (compressed).",
	}, []string{"signal"})
	produce := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_ingest_produce_duration_seconds",
		Help:    "Time from Produce to the bus acknowledgement, per request.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"signal"})
	for _, sig := range otlpwire.Signals {
		s := sig.String()
		m.items[sig] = items.WithLabelValues(s)
		m.records[sig] = records.WithLabelValues(s)
		m.bytes[sig] = bytes.WithLabelValues(s)
		m.produce[sig] = produce.WithLabelValues(s)
		for p, pn := range protocolNames {
			m.ok[p][sig] = m.requests.WithLabelValues(pn, s, okCode(p))
		}
	}
	m.collectors = []prometheus.Collector{m.requests, items, records, bytes, m.rejected, m.errors, produce, m.inflight,
		m.reloads, m.reloadSuccess, m.reloadTime}
	return m
}

func okCode(protocol int) string {
	if protocol == protoGRPC {
		return "OK"
	}
	return "200"
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// request counts one answered request. code is the gRPC code name or the
// HTTP status.
func (m *metrics) request(protocol int, sig otlpwire.Signal, code string) {
	if sig <= otlpwire.Traces && code == okCode(protocol) {
		m.ok[protocol][sig].Inc()
		return
	}
	m.requests.WithLabelValues(protocolNames[protocol], signalLabel(sig), code).Inc()
}

func signalLabel(sig otlpwire.Signal) string {
	if sig > otlpwire.Traces {
		return "unknown"
	}
	return sig.String()
}

// Values of the result label of sluice_ingest_reloads_total, as those of
// sluice_rules_reloads_total.
const (
	reloadOK    = "ok"
	reloadError = "error"
)

// loaded records the first load of file, done before the Reloader
// watches it: the file's series start at success, with no reloads.
func (m *metrics) loaded(file string) {
	m.reloads.WithLabelValues(file, reloadOK)
	m.reloads.WithLabelValues(file, reloadError)
	m.reloadSuccess.WithLabelValues(file).Set(1)
	m.reloadTime.WithLabelValues(file).SetToCurrentTime()
}

// reloaded records a reload of file that failed with err, or succeeded.
func (m *metrics) reloaded(file string, err error) {
	if err != nil {
		m.reloads.WithLabelValues(file, reloadError).Inc()
		m.reloadSuccess.WithLabelValues(file).Set(0)
		return
	}
	m.reloads.WithLabelValues(file, reloadOK).Inc()
	m.reloadSuccess.WithLabelValues(file).Set(1)
	m.reloadTime.WithLabelValues(file).SetToCurrentTime()
}
