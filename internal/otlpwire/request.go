package otlpwire

import (
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
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
