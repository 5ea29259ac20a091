package otlpwire

import "fmt"

// Signal is one of the three OpenTelemetry signals.
type Signal uint8

const (
	Metrics Signal = iota
	Logs
	Traces
)

// Signals lists every signal in a fixed order.
var Signals = [...]Signal{Metrics, Logs, Traces}

// Valid reports whether s is one of Signals.
func (s Signal) Valid() bool { return s <= Traces }

func (s Signal) String() string {
	switch s {
	case Metrics:
		return "metrics"
	case Logs:
		return "logs"
	case Traces:
		return "traces"
	}
	return fmt.Sprintf("signal(%d)", uint8(s))
}

// The requests of the three signals nest alike down to the items, with the
// same field numbers at each level, and so do the five data messages of a
// Metric and the four kinds of data point in the fields they share. Code
// that walks any signal uses these names; TestSignalsShareFieldNums checks
// that the numbers agree. ResourceX is ResourceMetrics, ResourceLogs or
// ResourceSpans, ScopeX likewise, Data is Gauge, Sum, Histogram,
// ExponentialHistogram or Summary, DataPoint their data points.
const (
	RequestResourceX   = ExportMetricsServiceRequestResourceMetrics // resource_metrics, resource_logs, resource_spans
	ResourceXResource  = ResourceMetricsResource
	ResourceXScopeX    = ResourceMetricsScopeMetrics // scope_metrics, scope_logs, scope_spans
	ResourceXSchemaURL = ResourceMetricsSchemaURL
	ScopeXScope        = ScopeMetricsScope
	ScopeXItems        = ScopeMetricsMetrics // metrics, log_records, spans
	ScopeXSchemaURL    = ScopeMetricsSchemaURL

	DataPoints                 = GaugeDataPoints
	DataAggregationTemporality = SumAggregationTemporality // not in Gauge and Summary

	DataPointStartTimeUnixNano = NumberDataPointStartTimeUnixNano
	DataPointTimeUnixNano      = NumberDataPointTimeUnixNano
)

// ParseSignal is the inverse of Signal.String.
func ParseSignal(s string) (Signal, error) {
	switch s {
	case "metrics":
		return Metrics, nil
	case "logs":
		return Logs, nil
	case "traces":
		return Traces, nil
	}
	return 0, fmt.Errorf("unknown signal %q (valid: metrics, logs, traces)", s)
}
