package otlpwire_test

import (
	"fmt"
	"strconv"
	"sync"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
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
	var recs []*stream.Record
	for _, c := range res.Chunks {
		fmt.Printf("partition %d: %d log records\n", c.Partition, c.Items)
		recs = append(recs, &stream.Record{
			Topic:     "otlp.logs",
			Partition: c.Partition,
			Value:     c.Value,
			Headers:   []stream.Header{{Key: stream.HeaderItems, Value: strconv.AppendInt(nil, int64(c.Items), 10)}},
		})
	}
	// producer.Produce(ctx, recs...)
	fmt.Println(res.Items, "accepted,", res.Rejected, "rejected")
	// Output:
	// partition 1: 2 log records
	// partition 2: 6 log records
	// 8 accepted, 0 rejected
}
