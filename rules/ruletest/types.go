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
