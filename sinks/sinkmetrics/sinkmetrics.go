// Package sinkmetrics holds the metrics every sink reports, defined once so
// that sinks registering on the same registry share the collectors:
//
//	sluice_sink_items_sent_total{sink}          items (data points, log records, spans) the destination accepted
//	sluice_sink_items_rejected_total{sink}      items refused for good (dead-lettered, or counted by an OTLP partial success)
//	sluice_sink_requests_total{sink,code}       requests by answer: an HTTP status, a gRPC code name, "ok"/"error"...
//	sluice_sink_request_duration_seconds{sink}  time per request, answered or not
//	sluice_sink_dead_letters_total{sink}        records the runner sent to the dead-letter topic
//	sluice_sink_config_refusals_total{sink,code} answers blaming the sink's credentials or URL (HTTP 401/403/404/405,
//	                                            gRPC Unauthenticated/PermissionDenied/NotFound/Unimplemented), retried
//	sluice_sink_retry_after_capped_total{sink}  Retry-After (or gRPC RetryInfo) delays longer than retry_after_max, cut to it
//	sluice_sink_delivery_delay_seconds{sink}    from the ingester's receipt of a record's items to their delivery
//
// New is idempotent per registry: the second call (from another sink, or
// another sink type) gets the collectors registered by the first.
package sinkmetrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the collectors of all sinks, labelled by sink name.
type Metrics struct {
	ItemsSent *prometheus.CounterVec   // {sink}
	Rejected  *prometheus.CounterVec   // {sink}
	Requests  *prometheus.CounterVec   // {sink, code}
	Duration  *prometheus.HistogramVec // {sink}
	// DeadLetters counts records sent to the dead-letter topic {sink}.
	DeadLetters *prometheus.CounterVec
	// ConfigRefusals counts answers that blame the sink's credentials or
	// URL rather than the data {sink, code}: the data is retried, not
	// dead-lettered, so this is what an alert watches.
	ConfigRefusals *prometheus.CounterVec
	// RetryAfterCapped counts server-requested delays cut to the sink's
	// retry_after_max {sink}.
	RetryAfterCapped *prometheus.CounterVec
	// DeliveryDelay is the time from the ingester's receipt of a
	// processed record's items (its sluice-received-at header) to their
	// delivery {sink}: the pipeline's end-to-end delay. Records of merged
	// points carry no receipt time and are not observed.
	DeliveryDelay *prometheus.HistogramVec
	// Err is what went wrong registering (a different metric under one of
	// the names, e.g. another help text): the collectors concerned then
	// work unregistered. Callers log it.
	Err error
}

// New returns the sink metrics registered on reg, registering them unless
// another call already did. A nil reg gives unregistered collectors. When
// reg holds a different metric under one of the names, that collector
// stays unregistered and Err says why.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ItemsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_items_sent_total",
			Help: "Items (data points, log records, spans) the sink's destination accepted.",
		}, []string{"sink"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_items_rejected_total",
			Help: "Items the sink's destination refused for good (dead-lettered, or reported by an OTLP partial success).",
		}, []string{"sink"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_requests_total",
			Help: "Requests to the sink's destination by answer (HTTP status, gRPC code, ok/error).",
		}, []string{"sink", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_sink_request_duration_seconds",
			Help:    "Time per request to the sink's destination.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms to 16s
		}, []string{"sink"}),
	}
	m.DeadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_sink_dead_letters_total",
		Help: "Records the sink's destination refused for good, sent to the dead-letter topic.",
	}, []string{"sink"})
	m.ConfigRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_sink_config_refusals_total",
		Help: "Answers blaming the sink's credentials or URL (HTTP 401, 403, 404, 405; gRPC Unauthenticated, PermissionDenied, NotFound, Unimplemented); the data is retried, not dead-lettered.",
	}, []string{"sink", "code"})
	m.RetryAfterCapped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_sink_retry_after_capped_total",
		Help: "Delays a backend asked for (Retry-After, gRPC RetryInfo) longer than the sink's retry_after_max, cut to it.",
	}, []string{"sink"})
	m.DeliveryDelay = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_sink_delivery_delay_seconds",
		Help:    "Time from the ingester's receipt of a record's items to their delivery by the sink (records of merged points are not observed).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12), // 5ms to 12min
	}, []string{"sink"})
	if reg == nil {
		return m
	}
	var errs []error
	m.ItemsSent = register(reg, m.ItemsSent, &errs)
	m.Rejected = register(reg, m.Rejected, &errs)
	m.Requests = register(reg, m.Requests, &errs)
	m.Duration = register(reg, m.Duration, &errs)
	m.DeadLetters = register(reg, m.DeadLetters, &errs)
	m.ConfigRefusals = register(reg, m.ConfigRefusals, &errs)
	m.RetryAfterCapped = register(reg, m.RetryAfterCapped, &errs)
	m.DeliveryDelay = register(reg, m.DeliveryDelay, &errs)
	m.Err = errors.Join(errs...)
	return m
}

// register registers c, or returns the collector registered before it.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
		err = fmt.Errorf("a collector of type %T is registered under the same name", are.ExistingCollector)
	}
	*errs = append(*errs, fmt.Errorf("sink metrics: %w", err))
	return c
}

// For returns the metrics of one sink (its entry name).
func (m *Metrics) For(sink string) Sink {
	return Sink{
		ItemsSent:        m.ItemsSent.WithLabelValues(sink),
		Rejected:         m.Rejected.WithLabelValues(sink),
		Duration:         m.Duration.WithLabelValues(sink),
		DeadLetters:      m.DeadLetters.WithLabelValues(sink),
		RetryAfterCapped: m.RetryAfterCapped.WithLabelValues(sink),
		DeliveryDelay:    m.DeliveryDelay.WithLabelValues(sink),
		requests:         m.Requests,
		refusals:         m.ConfigRefusals,
		sink:             sink,
	}
}

// Sink is the metrics of one sink.
type Sink struct {
	ItemsSent prometheus.Counter
	Rejected  prometheus.Counter
	Duration  prometheus.Observer
	// DeadLetters counts records sent to the dead-letter topic.
	DeadLetters prometheus.Counter
	// RetryAfterCapped counts server-requested delays cut to
	// retry_after_max.
	RetryAfterCapped prometheus.Counter
	// DeliveryDelay observes the pipeline's end-to-end delay per record.
	DeliveryDelay prometheus.Observer
	requests      *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	sink          string
}

// Requests is the request counter for one answer code.
func (s Sink) Requests(code string) prometheus.Counter {
	return s.requests.WithLabelValues(s.sink, code)
}

// ConfigRefusals is the counter of answers of one code that blame the
// sink's credentials or URL.
func (s Sink) ConfigRefusals(code string) prometheus.Counter {
	return s.refusals.WithLabelValues(s.sink, code)
}
