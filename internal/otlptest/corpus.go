package otlptest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// Corpus is a fixed request of the benchmarks (the worker's speed and size
// targets): its encoding and how many items it holds.
type Corpus struct {
	Name   string
	Signal otlpwire.Signal
	Body   []byte
	Items  int
}

// Corpora are the benchmark corpora: metrics, logs-varied (realistic bodies),
// logs (repetitive, Shape-made), traces (Shape-made) and metrics-k8s
// (realistic Kubernetes metrics with an attribute unique per series).
func Corpora() []Corpus {
	logs := Shape{Resources: 10, Items: 1000}
	spans := Shape{Resources: 10, Items: 1000}
	return []Corpus{
		{"metrics", otlpwire.Metrics, metricsCorpus(), 100_000},
		{"logs-varied", otlpwire.Logs, logsCorpus(), 10_000},
		{"logs", otlpwire.Logs, Request(otlpwire.Logs, logs), logs.ItemCount(otlpwire.Logs)},
		{"traces", otlpwire.Traces, Request(otlpwire.Traces, spans), spans.ItemCount(otlpwire.Traces)},
		{"metrics-k8s", otlpwire.Metrics, k8sCorpus(), 10_000},
	}
}

func kvs(kv ...string) []*common.KeyValue {
	var out []*common.KeyValue
	for i := 0; i < len(kv); i += 2 {
		out = append(out, str(kv[i], kv[i+1]))
	}
	return out
}

// metricsCorpus: 10 resources x 100 metrics x 100 series with 6 attributes
// (a route with an id, k8s.pod.name: the example rules tidy and rename
// them), random values (so that compression does not see identical metrics).
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
						"status", []string{"200", "404", "500"}[p%3], "region", "eu-west-1", "zone", "a", "k8s.pod.name", fmt.Sprintf("pod-%d", p%5)),
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

// k8sCorpus: what 100 pods' SDKs send in one collection interval, batched by
// an agent into one request: 100 resources (service.name,
// service.namespace, k8s.pod.name, k8s.namespace.name, service.instance.id)
// x 100 gauge series of 6 attributes: http.route (10 values),
// http.request.method, http.response.status_code, region, env and
// debug_id, 16 hex digits unique to the series (the kind of label people
// aggregate away). Every series' time is its own; values are random.
var k8sCorpus = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(5, 6))
	routes := []string{"/", "/cart", "/checkout", "/login", "/logout", "/search", "/items/{id}", "/users/{id}", "/orders/{id}", "/health"}
	req := &colmetrics.ExportMetricsServiceRequest{}
	for pod := range 100 {
		svc := fmt.Sprintf("svc-%d", pod%10)
		var pts []*metrics.NumberDataPoint
		for s := range 100 {
			attrs := append(kvs("http.route", routes[s%10], "http.request.method", []string{"GET", "POST", "PUT", "DELETE"}[s%4]),
				&common.KeyValue{Key: "http.response.status_code", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: []int64{200, 201, 404, 500, 503}[s%5]}}})
			attrs = append(attrs, kvs("region", []string{"eu-west-1", "us-east-1"}[pod%2], "env", "prod", "debug_id", fmt.Sprintf("%016x", r.Uint64()))...)
			pts = append(pts, &metrics.NumberDataPoint{
				Attributes:        attrs,
				StartTimeUnixNano: 1_700_000_000_000_000_000,
				TimeUnixNano:      1_700_000_060_000_000_000 + uint64(r.IntN(1_000_000_000)),
				Value:             &metrics.NumberDataPoint_AsDouble{AsDouble: float64(r.IntN(100000)) / 10},
			})
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metrics.ResourceMetrics{
			Resource: &resource.Resource{Attributes: kvs("service.name", svc, "service.namespace", "shop", "k8s.pod.name", fmt.Sprintf("%s-7d9f8b-%05d", svc, pod),
				"k8s.namespace.name", "prod", "service.instance.id", fmt.Sprintf("%016x", r.Uint64()))},
			ScopeMetrics: []*metrics.ScopeMetrics{{Scope: &common.InstrumentationScope{Name: "io.opentelemetry.http", Version: "1.30.0"},
				Metrics: []*metrics.Metric{{Name: "http.server.active_requests", Unit: "{request}",
					Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}}}}}},
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

// WithoutPointAttr returns the metrics request body without the point
// attribute key (in gauges and sums): what the workload's rules make of a
// corpus when they delete debug_id.
func WithoutPointAttr(body []byte, key string) ([]byte, error) {
	req := &colmetrics.ExportMetricsServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, err
	}
	drop := func(kv *common.KeyValue) bool { return kv.Key == key }
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.GetGauge().GetDataPoints() {
					p.Attributes = slices.DeleteFunc(p.Attributes, drop)
				}
				for _, p := range m.GetSum().GetDataPoints() {
					p.Attributes = slices.DeleteFunc(p.Attributes, drop)
				}
			}
		}
	}
	return proto.Marshal(req)
}
