package otlpwire

import (
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// NewRequest returns an empty Export*ServiceRequest of sig, to unmarshal
// into.
func NewRequest(sig Signal) proto.Message {
	switch sig {
	case Metrics:
		return &colmetricspb.ExportMetricsServiceRequest{}
	case Logs:
		return &collogspb.ExportLogsServiceRequest{}
	}
	return &coltracepb.ExportTraceServiceRequest{}
}

// PointCount is the number of data points of m, an item count in the
// sense of the sluice-items header, for code that holds the generated
// structs (the rule test runner, the tests).
func PointCount(m *metricspb.Metric) int {
	switch d := m.GetData().(type) {
	case *metricspb.Metric_Gauge:
		return len(d.Gauge.GetDataPoints())
	case *metricspb.Metric_Sum:
		return len(d.Sum.GetDataPoints())
	case *metricspb.Metric_Histogram:
		return len(d.Histogram.GetDataPoints())
	case *metricspb.Metric_ExponentialHistogram:
		return len(d.ExponentialHistogram.GetDataPoints())
	case *metricspb.Metric_Summary:
		return len(d.Summary.GetDataPoints())
	}
	return 0
}
