package ruletest

import (
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
)

type (
	metricsResource = metrics.ResourceMetrics
	metricsScope    = metrics.ScopeMetrics
	metricsMetric   = metrics.Metric
	logsResource    = logs.ResourceLogs
	logsScope       = logs.ScopeLogs
	traceResource   = trace.ResourceSpans
	traceScope      = trace.ScopeSpans
)

// points is the number of data points of m.
func points(m *metrics.Metric) int {
	switch d := m.Data.(type) {
	case *metrics.Metric_Gauge:
		return len(d.Gauge.GetDataPoints())
	case *metrics.Metric_Sum:
		return len(d.Sum.GetDataPoints())
	case *metrics.Metric_Histogram:
		return len(d.Histogram.GetDataPoints())
	case *metrics.Metric_ExponentialHistogram:
		return len(d.ExponentialHistogram.GetDataPoints())
	case *metrics.Metric_Summary:
		return len(d.Summary.GetDataPoints())
	}
	return 0
}
