package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

var testTopics = stream.Topics{Prefix: "test"}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newBus returns a memory bus with the raw topics created, partitions each.
func newBus(t testing.TB, partitions int32) *memory.Bus {
	b := memory.New()
	for _, sig := range otlpwire.Signals {
		if err := b.EnsureTopics(context.Background(), stream.TopicSpec{Name: testTopics.Raw(sig), Partitions: partitions}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func newIngester(t testing.TB, cfg Config, bus Bus) *Ingester {
	t.Helper()
	cfg.Topics = testTopics
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	ing, err := New(cfg, bus)
	if err != nil {
		t.Fatal(err)
	}
	return ing
}

// startServer runs both protocols on loopback ports until the test ends.
func startServer(t testing.TB, ing *Ingester) *Server {
	t.Helper()
	s := NewServer(ing, ServerConfig{GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func resource(i int) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
		strAttr("service.name", fmt.Sprintf("svc-%d", i)),
		strAttr("host.name", fmt.Sprintf("host-%d", i)),
		strAttr("k8s.pod.name", fmt.Sprintf("pod-%d-abcdef", i)),
	}}
}

var scope = &commonpb.InstrumentationScope{Name: "sluice.test", Version: "1.0.0"}

// metricsRequest has res resources × ms gauge metrics × pts data points,
// each point with two attributes.
func metricsRequest(res, ms, pts int) *colmetricspb.ExportMetricsServiceRequest {
	req := &colmetricspb.ExportMetricsServiceRequest{}
	for r := range res {
		sm := &metricspb.ScopeMetrics{Scope: scope}
		for m := range ms {
			g := &metricspb.Gauge{}
			for p := range pts {
				g.DataPoints = append(g.DataPoints, &metricspb.NumberDataPoint{
					Attributes:   []*commonpb.KeyValue{strAttr("method", "GET"), strAttr("route", "/api/v1/item/"+strconv.Itoa(p))},
					TimeUnixNano: 1_700_000_000_000_000_000 + uint64(p),
					Value:        &metricspb.NumberDataPoint_AsDouble{AsDouble: float64(p)},
				})
			}
			sm.Metrics = append(sm.Metrics, &metricspb.Metric{Name: fmt.Sprintf("metric_%d", m), Unit: "1", Data: &metricspb.Metric_Gauge{Gauge: g}})
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metricspb.ResourceMetrics{Resource: resource(r), ScopeMetrics: []*metricspb.ScopeMetrics{sm}})
	}
	return req
}

func logsRequest(res, n int) *collogspb.ExportLogsServiceRequest {
	req := &collogspb.ExportLogsServiceRequest{}
	for r := range res {
		sl := &logspb.ScopeLogs{Scope: scope}
		for i := range n {
			sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{
				TimeUnixNano:   1_700_000_000_000_000_000 + uint64(i),
				SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
				Body:           &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("request %d served in 12ms", i)}},
				Attributes:     []*commonpb.KeyValue{strAttr("http.method", "GET")},
				TraceId:        traceID(i),
				SpanId:         []byte{1, 2, 3, 4, 5, 6, 7, byte(i)},
			})
		}
		req.ResourceLogs = append(req.ResourceLogs, &logspb.ResourceLogs{Resource: resource(r), ScopeLogs: []*logspb.ScopeLogs{sl}})
	}
	return req
}

func tracesRequest(res, n int) *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	for r := range res {
		ss := &tracepb.ScopeSpans{Scope: scope}
		for i := range n {
			ss.Spans = append(ss.Spans, &tracepb.Span{
				TraceId:           traceID(i / 4),
				SpanId:            []byte{1, 2, 3, 4, 5, 6, byte(r), byte(i)},
				Name:              "GET /api/v1/item",
				Kind:              tracepb.Span_SPAN_KIND_SERVER,
				StartTimeUnixNano: 1_700_000_000_000_000_000,
				EndTimeUnixNano:   1_700_000_000_012_000_000,
				Attributes:        []*commonpb.KeyValue{strAttr("http.method", "GET"), strAttr("http.route", "/api/v1/item")},
			})
		}
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{Resource: resource(r), ScopeSpans: []*tracepb.ScopeSpans{ss}})
	}
	return req
}

func traceID(i int) []byte {
	return []byte{0xa, 0xb, 0xc, 0xd, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, byte(i >> 8), byte(i)}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// busItems checks every record of sig's raw topic (headers, item count) and
// returns the total items.
func busItems(t testing.TB, bus *memory.Bus, sig otlpwire.Signal, tenant string) int {
	t.Helper()
	total := 0
	for _, r := range bus.Records(testTopics.Raw(sig)) {
		n, err := otlpwire.Count(sig, r.Value)
		if err != nil {
			t.Fatalf("record value: %v", err)
		}
		if got := string(r.Header(stream.HeaderItems)); got != strconv.Itoa(n) {
			t.Errorf("%s header %q, record holds %d items", stream.HeaderItems, got, n)
		}
		if got := string(r.Header(stream.HeaderContentType)); got != stream.ContentTypeOTLPProto {
			t.Errorf("content-type %q", got)
		}
		if got := string(r.Header(stream.HeaderSignal)); got != sig.String() {
			t.Errorf("signal header %q, want %s", got, sig)
		}
		if tenant != "" && string(r.Header(stream.HeaderTenant)) != tenant {
			t.Errorf("tenant header %q, want %q", r.Header(stream.HeaderTenant), tenant)
		}
		if len(r.Header(stream.HeaderReceivedAt)) == 0 {
			t.Errorf("no %s header", stream.HeaderReceivedAt)
		}
		total += n
	}
	return total
}

// gateBus holds every Produce until release is closed, after saying so on
// entered.
type gateBus struct {
	Bus
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGateBus(b Bus) *gateBus {
	return &gateBus{Bus: b, entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gateBus) Produce(ctx context.Context, recs ...*stream.Record) error {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Bus.Produce(ctx, recs...)
}

func (g *gateBus) open() { g.once.Do(func() { close(g.release) }) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// mustTokens is NewTokens that fails the test on error.
func mustTokens(t testing.TB, toks ...Token) *Tokens {
	t.Helper()
	set, err := NewTokens(toks...)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func readTestdata(path string) ([]byte, error) { return os.ReadFile(path) }
