package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// templates is how many distinct requests a logs or traces profile cycles
// through.
const templates = 64

// LogsConfig shapes a logs profile: PerRequest log records from Pods pods
// of 10 services, bodies of a log-normal size around BodyMedian bytes
// (BodySigma its spread: 1 makes a tenth of the bodies over 3.6× the
// median), severities as a service logs them (mostly INFO).
type LogsConfig struct {
	Pods, PerRequest int
	BodyMedian       int
	BodySigma        float64
	Seed             uint64
	Start            time.Time
}

// NewLogs builds a logs profile.
func NewLogs(c LogsConfig) (Profile, error) {
	if c.Pods <= 0 || c.PerRequest <= 0 || c.BodyMedian <= 0 || c.BodySigma < 0 {
		return nil, fmt.Errorf("logs: pods, records per request and body median must be positive")
	}
	if c.Start.IsZero() {
		c.Start = time.Now()
	}
	r := rand.New(rand.NewPCG(c.Seed, 0x6c6f6773))
	pods := podResources(r, c.Pods)
	words := strings.Fields("request served user cart checkout payment order item session cache miss hit retry timeout connection upstream downstream handler queue worker job completed failed started database query rows latency status")
	sevs := []struct {
		n    logs.SeverityNumber
		text string
		w    int
	}{{logs.SeverityNumber_SEVERITY_NUMBER_DEBUG, "DEBUG", 10}, {logs.SeverityNumber_SEVERITY_NUMBER_INFO, "INFO", 75}, {logs.SeverityNumber_SEVERITY_NUMBER_WARN, "WARN", 10}, {logs.SeverityNumber_SEVERITY_NUMBER_ERROR, "ERROR", 5}}
	p := &templated{sig: otlpwire.Logs, start: c.Start.UnixNano(), every: time.Millisecond,
		desc: fmt.Sprintf("logs: %d pods of 10 services, %d records per request, bodies log-normal around %d bytes (sigma %.1f), seed %d", c.Pods, c.PerRequest, c.BodyMedian, c.BodySigma, c.Seed)}
	for range templates {
		req := &collogs.ExportLogsServiceRequest{}
		var cur *logs.ScopeLogs
		for i := range c.PerRequest {
			if i%50 == 0 { // runs of 50 records from one pod
				cur = &logs.ScopeLogs{Scope: &common.InstrumentationScope{Name: "app"}}
				req.ResourceLogs = append(req.ResourceLogs, &logs.ResourceLogs{Resource: pods[r.IntN(len(pods))], ScopeLogs: []*logs.ScopeLogs{cur}})
			}
			size := max(8, int(lognormal(r, float64(c.BodyMedian), c.BodySigma)))
			var body strings.Builder
			for body.Len() < size {
				if body.Len() > 0 {
					body.WriteByte(' ')
				}
				body.WriteString(words[r.IntN(len(words))])
				if r.IntN(4) == 0 {
					fmt.Fprintf(&body, "=%d", r.IntN(100000))
				}
			}
			w, sev := r.IntN(100), sevs[0]
			for _, s := range sevs {
				if w < s.w {
					sev = s
					break
				}
				w -= s.w
			}
			ts := sentinelTime | uint64(i)
			cur.LogRecords = append(cur.LogRecords, &logs.LogRecord{TimeUnixNano: ts, ObservedTimeUnixNano: ts,
				SeverityNumber: sev.n, SeverityText: sev.text, Body: strValue(body.String()),
				Attributes: kvs("http.request.method", []string{"GET", "POST", "PUT"}[r.IntN(3)], "http.route", []string{"/", "/cart", "/checkout", "/items/{id}"}[r.IntN(4)])})
		}
		t, err := newTemplate(req, c.PerRequest)
		if err != nil {
			return nil, err
		}
		if len(t.times) != 2*c.PerRequest {
			return nil, fmt.Errorf("logs: found %d of the %d times to patch", len(t.times), 2*c.PerRequest)
		}
		p.tmpl = append(p.tmpl, t)
	}
	return p, nil
}

// TracesConfig shapes a traces profile: traces of SpansPerTrace spans (a
// server span and its children: client calls, database queries) from
// Pods pods, PerRequest spans per request (whole traces), durations
// log-normal around 20 ms.
type TracesConfig struct {
	Pods, PerRequest, SpansPerTrace int
	Seed                            uint64
	Start                           time.Time
}

// NewTraces builds a traces profile. Trace and span ids differ in every
// request.
func NewTraces(c TracesConfig) (Profile, error) {
	if c.Pods <= 0 || c.SpansPerTrace <= 0 || c.PerRequest < c.SpansPerTrace {
		return nil, fmt.Errorf("traces: pods and spans per trace must be positive, and a request must hold a trace")
	}
	if c.Start.IsZero() {
		c.Start = time.Now()
	}
	per := c.PerRequest / c.SpansPerTrace * c.SpansPerTrace
	r := rand.New(rand.NewPCG(c.Seed, 0x7472616365))
	pods := podResources(r, c.Pods)
	names := []string{"GET /cart", "POST /checkout", "SELECT orders", "redis GET", "HTTP GET inventory", "publish order.created", "render", "auth"}
	p := &templated{sig: otlpwire.Traces, start: c.Start.UnixNano(), every: time.Millisecond,
		desc: fmt.Sprintf("traces: %d pods, traces of %d spans, %d spans per request, seed %d", c.Pods, c.SpansPerTrace, per, c.Seed)}
	for range templates {
		req := &coltrace.ExportTraceServiceRequest{}
		ids := uint64(0)
		id := func(n int) []byte { // a sentinel id, patched per request
			ids++
			b := make([]byte, n)
			v := sentinelID | ids
			for i := range 8 {
				b[i] = byte(v >> (8 * i))
			}
			return b
		}
		for range per / c.SpansPerTrace {
			ss := &trace.ScopeSpans{Scope: &common.InstrumentationScope{Name: "io.opentelemetry.http"}}
			req.ResourceSpans = append(req.ResourceSpans, &trace.ResourceSpans{Resource: pods[r.IntN(len(pods))], ScopeSpans: []*trace.ScopeSpans{ss}})
			traceID := id(16)
			var root []byte
			startMs := uint64(r.IntN(1000))
			for k := range c.SpansPerTrace {
				spanID := id(8)
				dur := uint64(max(1, lognormal(r, 20, 1)))
				span := &trace.Span{TraceId: traceID, SpanId: spanID, Name: names[r.IntN(len(names))],
					StartTimeUnixNano: sentinelTime | startMs, EndTimeUnixNano: sentinelTime | (startMs + dur),
					Kind: trace.Span_SPAN_KIND_CLIENT, Attributes: kvs("net.peer.name", []string{"db", "redis", "inventory", "payments"}[r.IntN(4)])}
				if k == 0 {
					root, span.Kind = spanID, trace.Span_SPAN_KIND_SERVER
					span.Attributes = kvs("http.request.method", "GET", "http.route", "/cart")
				} else {
					span.ParentSpanId = root
				}
				if r.IntN(50) == 0 {
					span.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "upstream timeout"}
				}
				ss.Spans = append(ss.Spans, span)
			}
		}
		t, err := newTemplate(req, per)
		if err != nil {
			return nil, err
		}
		// every span holds its trace id and its own id, every child its parent's
		if len(t.times) != 2*per || len(t.ids) != 3*per-per/c.SpansPerTrace {
			return nil, fmt.Errorf("traces: found %d times and %d ids to patch", len(t.times), len(t.ids))
		}
		p.tmpl = append(p.tmpl, t)
	}
	return p, nil
}

// podResources makes the resources of n pods of 10 services.
func podResources(r *rand.Rand, n int) []*resource.Resource {
	out := make([]*resource.Resource, n)
	for i := range out {
		svc := fmt.Sprintf("svc-%d", i%10)
		out[i] = &resource.Resource{Attributes: kvs("service.name", svc, "service.namespace", "shop",
			"k8s.pod.name", fmt.Sprintf("%s-7d9f8b-%05d", svc, i), "k8s.namespace.name", "prod", "service.instance.id", fmt.Sprintf("%016x", r.Uint64()))}
	}
	return out
}

func strValue(s string) *common.AnyValue {
	return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: s}}
}

func kvs(kv ...string) []*common.KeyValue {
	out := make([]*common.KeyValue, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &common.KeyValue{Key: kv[i], Value: strValue(kv[i+1])})
	}
	return out
}
