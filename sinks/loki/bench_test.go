package loki

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/stream"
)

// benchRecord: a processed (Arrow) logs record of 10 resources (service,
// namespace, pod, host) × 100 log records with a 100-byte body, severity,
// trace context and 3 attributes: 1000 entries in 10 streams.
func benchRecord(b *testing.B) (*stream.Record, int) {
	ts := uint64(time.Now().UnixNano())
	req := &collogs.ExportLogsServiceRequest{}
	for r := range 10 {
		res := &resource.Resource{Attributes: []*common.KeyValue{
			str("service.name", fmt.Sprintf("svc-%d", r%3)), str("k8s.namespace.name", "prod"),
			str("k8s.pod.name", fmt.Sprintf("pod-%d", r)), str("host.name", fmt.Sprintf("node-%d", r%4)),
		}}
		sl := &logspb.ScopeLogs{Scope: &common.InstrumentationScope{Name: "app", Version: "1.2"}}
		for i := range 100 {
			sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{
				TimeUnixNano: ts + uint64(i)*1000, SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO, SeverityText: "INFO",
				Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: fmt.Sprintf("GET /api/v1/orders/%06d 200 %dms user=%d %s", i*7919, i%50, i%97,
					"some more text to make the line about a hundred bytes long....")}},
				Attributes: []*common.KeyValue{str("http.method", "GET"), str("http.route", "/api/v1/orders/{id}"),
					{Key: "http.status_code", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: 200}}}},
				TraceId: bytes.Repeat([]byte{byte(i + 1)}, 16), SpanId: bytes.Repeat([]byte{byte(i + 2)}, 8),
			})
		}
		req.ResourceLogs = append(req.ResourceLogs, &logspb.ResourceLogs{Resource: res, ScopeLogs: []*logspb.ScopeLogs{sl}})
	}
	pb, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	bld := schemas.NewBuilder(otlpwire.Logs, nil)
	defer bld.Release()
	if _, err := bld.Append(pb); err != nil {
		b.Fatal(err)
	}
	batch := bld.Build()
	defer batch.Release()
	var ipc bytes.Buffer
	if err := schemas.WriteBatch(&ipc, batch); err != nil {
		b.Fatal(err)
	}
	return &stream.Record{Topic: "sluice.logs.processed", Value: ipc.Bytes(), Timestamp: time.Now(), Headers: []stream.Header{
		{Key: stream.HeaderSignal, Value: []byte("logs")},
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
	}}, 1000
}

// BenchmarkEncode: an Arrow record → Loki push request (protobuf), snappy
// compressed, as Write builds it before posting (decode, addDecoded,
// request). Run with -cpu 1 for the per-core rate.
func BenchmarkEncode(b *testing.B) {
	rec, n := benchRecord(b)
	s, err := New(Config{Config: httpsink.Config{URL: "http://127.0.0.1:1"}}, "bench", sinks.Env{})
	if err != nil {
		b.Fatal(err)
	}
	encode := func() httpsink.Request {
		req, err := s.decode(rec)
		if err != nil {
			b.Fatal(err)
		}
		p := newPush()
		s.addDecoded(p, req, rec)
		if p.entries != n {
			b.Fatalf("%d entries, want %d", p.entries, n)
		}
		return s.request(p)
	}
	var out int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out = len(encode().Body)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(testing.AllocsPerRun(1, func() { encode() })/float64(n), "allocs/entry")
	b.ReportMetric(float64(out)/float64(n), "snappy-bytes/entry")
}
