// Package otlptest builds OTLP Export*ServiceRequest messages for tests and
// benchmarks: requests of a known Shape (Metrics, Logs, Traces, Message,
// Request), the benchmark Corpora, and random requests of every field and
// shape (Gen) for property tests and fuzz seeds.
//
// It imports internal/otlpwire for Signal, so the tests of otlpwire are in
// package otlpwire_test.
package otlptest

import (
	"fmt"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Shape says how many of each level a request has.
type Shape struct {
	Resources int // resources per request
	Items     int // metrics, log records or spans per resource
	Points    int // data points per metric (metrics only)
	// Seed makes resources of different requests differ.
	Seed int
}

// ItemCount is the number of data points, log records or spans a request of
// this shape holds for sig.
func (s Shape) ItemCount(sig otlpwire.Signal) int {
	if sig == otlpwire.Metrics {
		return s.Resources * s.Items * s.Points
	}
	return s.Resources * s.Items
}

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

func res(seed, r int) *resource.Resource {
	return &resource.Resource{Attributes: []*common.KeyValue{
		str("service.name", fmt.Sprintf("svc-%d", r%7)),
		str("service.instance.id", fmt.Sprintf("inst-%d-%d", seed, r)),
		str("k8s.namespace.name", "prod"),
		str("host.name", fmt.Sprintf("node-%d", r)),
	}}
}

var scope = &common.InstrumentationScope{Name: "otlptest", Version: "1.0.0"}

// Metrics returns a metrics request: gauges with Points data points of six
// attributes each.
func Metrics(s Shape) *colmetrics.ExportMetricsServiceRequest {
	req := &colmetrics.ExportMetricsServiceRequest{}
	for r := 0; r < s.Resources; r++ {
		sm := &metrics.ScopeMetrics{Scope: scope}
		for m := 0; m < s.Items; m++ {
			g := &metrics.Gauge{}
			for p := 0; p < s.Points; p++ {
				g.DataPoints = append(g.DataPoints, &metrics.NumberDataPoint{
					Attributes: []*common.KeyValue{
						str("route", fmt.Sprintf("/api/v1/items/%d", p)), str("method", "GET"), str("status", "200"),
						str("region", "eu-west-1"), str("zone", "a"), str("pod", fmt.Sprintf("pod-%d", p%5)),
					},
					TimeUnixNano: uint64(1_700_000_000_000_000_000 + p),
					Value:        &metrics.NumberDataPoint_AsDouble{AsDouble: float64(p) + 0.5},
				})
			}
			sm.Metrics = append(sm.Metrics, &metrics.Metric{Name: fmt.Sprintf("test_metric_%d", m), Unit: "1", Data: &metrics.Metric_Gauge{Gauge: g}})
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metrics.ResourceMetrics{Resource: res(s.Seed, r), ScopeMetrics: []*metrics.ScopeMetrics{sm}})
	}
	return req
}

// Logs returns a logs request with log records of about 300 bytes.
func Logs(s Shape) *collogs.ExportLogsServiceRequest {
	req := &collogs.ExportLogsServiceRequest{}
	for r := 0; r < s.Resources; r++ {
		sl := &logs.ScopeLogs{Scope: scope}
		for i := 0; i < s.Items; i++ {
			sl.LogRecords = append(sl.LogRecords, &logs.LogRecord{
				TimeUnixNano:   uint64(1_700_000_000_000_000_000 + i),
				SeverityNumber: logs.SeverityNumber(1 + i%24),
				SeverityText:   "INFO",
				Body:           &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: fmt.Sprintf("GET /api/v1/items/%d completed with status 200 in 12ms for user %d from 10.0.0.%d", i, i*7, i%255)}},
				Attributes:     []*common.KeyValue{str("http.route", "/api/v1/items/{id}"), str("http.method", "GET")},
			})
		}
		req.ResourceLogs = append(req.ResourceLogs, &logs.ResourceLogs{Resource: res(s.Seed, r), ScopeLogs: []*logs.ScopeLogs{sl}})
	}
	return req
}

// Traces returns a traces request; every span has its own trace id.
func Traces(s Shape) *coltrace.ExportTraceServiceRequest {
	req := &coltrace.ExportTraceServiceRequest{}
	for r := 0; r < s.Resources; r++ {
		ss := &trace.ScopeSpans{Scope: scope}
		for i := 0; i < s.Items; i++ {
			tid := make([]byte, 16)
			sid := make([]byte, 8)
			for j := range tid {
				tid[j] = byte(s.Seed*31 + r*17 + i + j + 1)
			}
			for j := range sid {
				sid[j] = byte(i + j + 1)
			}
			ss.Spans = append(ss.Spans, &trace.Span{
				TraceId: tid, SpanId: sid, Name: "GET /api/v1/items/{id}", Kind: trace.Span_SPAN_KIND_SERVER,
				StartTimeUnixNano: 1_700_000_000_000_000_000, EndTimeUnixNano: 1_700_000_000_012_000_000,
				Attributes: []*common.KeyValue{str("http.route", "/api/v1/items/{id}"), str("http.method", "GET")},
			})
		}
		req.ResourceSpans = append(req.ResourceSpans, &trace.ResourceSpans{Resource: res(s.Seed, r), ScopeSpans: []*trace.ScopeSpans{ss}})
	}
	return req
}

// Message returns the request of sig with shape s.
func Message(sig otlpwire.Signal, s Shape) proto.Message {
	switch sig {
	case otlpwire.Metrics:
		return Metrics(s)
	case otlpwire.Logs:
		return Logs(s)
	}
	return Traces(s)
}

// Request returns the marshalled request of sig with shape s.
func Request(sig otlpwire.Signal, s Shape) []byte {
	b, err := proto.Marshal(Message(sig, s))
	if err != nil {
		panic(err)
	}
	return b
}
