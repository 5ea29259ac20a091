package schemas

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/stream"
)

func kvs(kv ...string) []*common.KeyValue {
	var out []*common.KeyValue
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &common.KeyValue{Key: kv[i], Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: kv[i+1]}}})
	}
	return out
}

// metricsCorpus: 10 resources x 100 metrics x 100 series with 6 attributes,
// random-walk values (so that compression does not see identical metrics).
var metricsCorpus = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	req := &colmetrics.ExportMetricsServiceRequest{}
	for res := range 10 {
		sm := &metrics.ScopeMetrics{Scope: &common.InstrumentationScope{Name: "bench", Version: "1.0.0"}}
		for m := range 100 {
			var pts []*metrics.NumberDataPoint
			for p := range 100 {
				pts = append(pts, &metrics.NumberDataPoint{
					Attributes: kvs("route", fmt.Sprintf("/api/v1/items/%d", p), "method", []string{"GET", "POST", "PUT"}[p%3],
						"status", []string{"200", "404", "500"}[p%3], "region", "eu-west-1", "zone", "a", "pod", fmt.Sprintf("pod-%d", p%5)),
					StartTimeUnixNano: 1_700_000_000_000_000_000,
					TimeUnixNano:      1_700_000_060_000_000_000 + uint64(r.IntN(1000)),
					Value:             &metrics.NumberDataPoint_AsDouble{AsDouble: float64(r.IntN(100000)) / 10},
				})
			}
			sm.Metrics = append(sm.Metrics, &metrics.Metric{Name: fmt.Sprintf("http_server_requests_%d_total", m), Unit: "1",
				Data: &metrics.Metric_Sum{Sum: &metrics.Sum{DataPoints: pts, AggregationTemporality: 2, IsMonotonic: true}}})
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metrics.ResourceMetrics{
			Resource:     &resource.Resource{Attributes: kvs("service.name", fmt.Sprintf("svc-%d", res), "host.name", fmt.Sprintf("node-%d", res), "k8s.namespace.name", "prod", "service.instance.id", fmt.Sprintf("inst-%d", res))},
			ScopeMetrics: []*metrics.ScopeMetrics{sm},
		})
	}
	b, _ := proto.Marshal(req)
	return b
})

// logsCorpus: 10 resources x 1000 log records of ~300 bytes whose bodies vary
// the way access and application logs do (ids, latencies, addresses, request
// ids), a severity mix, a few attributes, times a few ms apart, and trace
// context on a third of the records: zstd cannot collapse it to nothing.
var logsCorpus = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(3, 4))
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	sev := []struct {
		n    logs.SeverityNumber
		text string
	}{{9, "INFO"}, {9, "INFO"}, {9, "INFO"}, {9, "INFO"}, {9, "INFO"}, {9, "INFO"}, {9, "INFO"}, {5, "DEBUG"}, {5, "DEBUG"}, {13, "WARN"}, {17, "ERROR"}}
	req := &collogs.ExportLogsServiceRequest{}
	t := uint64(1_700_000_000_000_000_000)
	for res := range 10 {
		sl := &logs.ScopeLogs{Scope: &common.InstrumentationScope{Name: "app.logger", Version: "2.3.1"}}
		for range 1000 {
			t += uint64(r.IntN(5_000_000))
			s := sev[r.IntN(len(sev))]
			m := methods[r.IntN(len(methods))]
			status := []int{200, 200, 200, 200, 201, 204, 304, 400, 404, 500}[r.IntN(10)]
			route := fmt.Sprintf("/api/v1/%s/%d", []string{"items", "users", "orders", "carts"}[r.IntN(4)], r.IntN(100000))
			var body string
			switch {
			case s.text == "ERROR":
				body = fmt.Sprintf("request failed: %s %s: upstream %s:%d returned %d after %dms (attempt %d/3, request_id=%016x)",
					m, route, []string{"inventory", "payments", "search"}[r.IntN(3)], 8080+r.IntN(3), status, r.IntN(5000), 1+r.IntN(3), r.Uint64())
			case s.text == "DEBUG":
				body = fmt.Sprintf("cache %s for key %s:%d (ttl=%ds, size=%d bytes, shard=%d)",
					[]string{"hit", "miss"}[r.IntN(2)], []string{"user", "item", "session"}[r.IntN(3)], r.IntN(1000000), 30*r.IntN(20), r.IntN(65536), r.IntN(16))
			default:
				body = fmt.Sprintf("%s %s completed with status %d in %dms for user %d from 10.%d.%d.%d request_id=%016x bytes=%d",
					m, route, status, r.IntN(500), r.IntN(50000), r.IntN(4), r.IntN(256), r.IntN(256), r.Uint64(), r.IntN(100000))
			}
			lr := &logs.LogRecord{
				TimeUnixNano: t, ObservedTimeUnixNano: t + uint64(r.IntN(2_000_000)),
				SeverityNumber: s.n, SeverityText: s.text,
				Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: body}},
				Attributes: append(kvs("http.method", m, "http.route", "/api/v1/{resource}/{id}", "thread.name", fmt.Sprintf("worker-%d", r.IntN(16))),
					&common.KeyValue{Key: "http.status_code", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(status)}}}),
			}
			if r.IntN(3) == 0 {
				lr.TraceId, lr.SpanId = make([]byte, 16), make([]byte, 8)
				for i := range lr.TraceId {
					lr.TraceId[i] = byte(r.Uint32())
				}
				for i := range lr.SpanId {
					lr.SpanId[i] = byte(r.Uint32())
				}
				lr.Flags = 1
			}
			sl.LogRecords = append(sl.LogRecords, lr)
		}
		req.ResourceLogs = append(req.ResourceLogs, &logs.ResourceLogs{
			Resource:  &resource.Resource{Attributes: kvs("service.name", fmt.Sprintf("svc-%d", res), "host.name", fmt.Sprintf("node-%d", res), "k8s.namespace.name", "prod", "service.instance.id", fmt.Sprintf("inst-%d", res))},
			ScopeLogs: []*logs.ScopeLogs{sl},
		})
	}
	b, _ := proto.Marshal(req)
	return b
})

// sizeCorpora are the corpora of the size target: one processed value per
// whole request, compared with the request compressed as a whole.
func sizeCorpora() []corpus {
	c := corpora()
	return append([]corpus{c[0], {"logs-varied", stream.Logs, logsCorpus(), 10_000}}, c[1:]...)
}

type corpus struct {
	name  string
	sig   stream.Signal
	body  []byte
	items int
}

func corpora() []corpus {
	logs := otlptest.Shape{Resources: 10, Items: 1000}
	spans := otlptest.Shape{Resources: 10, Items: 1000}
	return []corpus{
		{"metrics", stream.Metrics, metricsCorpus(), 100_000},
		{"logs", stream.Logs, otlptest.Request(stream.Logs, logs), logs.ItemCount(stream.Logs)},
		{"traces", stream.Traces, otlptest.Request(stream.Traces, spans), spans.ItemCount(stream.Traces)},
	}
}

func report(b *testing.B, items int) {
	n := float64(b.N) * float64(items)
	b.ReportMetric(n/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			bld := NewBuilder(c.sig, memory.NewGoAllocator())
			defer bld.Release()
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := bld.Append(c.body); err != nil {
					b.Fatal(err)
				}
				bld.Build().Release()
			}
			report(b, c.items)
		})
	}
}

func BenchmarkToOTLP(b *testing.B) {
	for _, c := range corpora() {
		b.Run(c.name, func(b *testing.B) {
			bld := NewBuilder(c.sig, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var dst []byte
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = ToOTLP(batch, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
			report(b, c.items)
		})
	}
}

// BenchmarkIPCSize reports the processed-topic value size (WriteIPC) against
// the raw OTLP protobuf and the raw OTLP compressed with zstd (default level,
// whole request), per item; ratio = otlp-zstd / ipc (the target is >= 3).
// items/s is the speed of WriteIPC.
func BenchmarkIPCSize(b *testing.B) {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	for _, c := range sizeCorpora() {
		b.Run(c.name, func(b *testing.B) {
			bld := NewBuilder(c.sig, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := WriteIPC(&buf, batch); err != nil {
					b.Fatal(err)
				}
			}
			report(b, c.items)
			z := enc.EncodeAll(c.body, nil)
			b.ReportMetric(float64(len(c.body))/float64(c.items), "otlp-B/item")
			b.ReportMetric(float64(len(z))/float64(c.items), "otlp-zstd-B/item")
			b.ReportMetric(float64(buf.Len())/float64(c.items), "ipc-zstd-B/item")
			b.ReportMetric(float64(len(z))/float64(buf.Len()), "ratio")
		})
	}
}

// BenchmarkReadIPC: decoding a processed value back into a Batch, as every
// sink does.
func BenchmarkReadIPC(b *testing.B) {
	for _, c := range sizeCorpora() {
		b.Run(c.name, func(b *testing.B) {
			bld := NewBuilder(c.sig, memory.NewGoAllocator())
			defer bld.Release()
			if _, err := bld.Append(c.body); err != nil {
				b.Fatal(err)
			}
			batch := bld.Build()
			defer batch.Release()
			var buf bytes.Buffer
			if err := WriteIPC(&buf, batch); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				nb, err := ReadIPC(buf.Bytes(), nil)
				if err != nil {
					b.Fatal(err)
				}
				nb.Release()
			}
			report(b, c.items)
		})
	}
}
