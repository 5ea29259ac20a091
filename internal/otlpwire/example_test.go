package otlpwire_test

import (
	"fmt"
	"sync"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// The ingester keeps Splitters in a pool and turns each chunk into a record.
func ExampleSplitter_Split() {
	splitters := sync.Pool{New: func() any { return new(otlpwire.Splitter) }}

	req := &collogspb.ExportLogsServiceRequest{}
	for _, svc := range []string{"cart", "checkout", "search", "ads"} {
		req.ResourceLogs = append(req.ResourceLogs, &logspb.ResourceLogs{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{
				Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: svc}},
			}}},
			ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{SeverityText: "INFO"}, {SeverityText: "WARN"}}}},
		})
	}
	body, _ := proto.Marshal(req)

	s := splitters.Get().(*otlpwire.Splitter)
	defer splitters.Put(s) // only once the records are produced: they alias s
	res, err := s.Split(otlpwire.Logs, body, otlpwire.Options{Partitions: 4, MaxRecordBytes: 1 << 20})
	if err != nil {
		fmt.Println(err) // a *otlpwire.FormatError: reply 400 Bad Request
		return
	}
	for _, c := range res.Chunks {
		fmt.Printf("partition %d: %d log records\n", c.Partition, c.Items)
		// The ingester makes a stream.Record of each chunk: c.Value to
		// partition c.Partition, c.Items in the sluice-items header.
	}
	// Produce the records, and only then put s back.
	fmt.Println(res.Items, "accepted,", res.Rejected, "rejected")
	// Output:
	// partition 1: 2 log records
	// partition 2: 6 log records
	// 8 accepted, 0 rejected
}
