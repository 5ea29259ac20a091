package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

// kafkaConfig is an ingest-only config on the Kafka brokers, with a
// topic prefix of its own.
func kafkaConfig(t *testing.T, brokers []string) *config.Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), "")
	cfg.Bus.Kind = "kafka"
	cfg.Bus.Kafka.Brokers = brokers
	cfg.Bus.TopicPrefix = kafkatest.Topic(t, "sdk")
	cfg.Bus.ProduceTimeout = 3 * time.Second
	cfg.Ingest.RetryAfter = time.Second
	cfg.Sinks = nil
	return cfg
}

// topicItems reads every record of the raw topic of sig from the start with
// a new group until want items arrived (or a minute passed), and returns
// the item count and the records.
func topicItems(t *testing.T, brokers []string, topic string, sig otlpwire.Signal, want int) (int, []*stream.Record) {
	t.Helper()
	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	c, err := bus.Consume(stream.ConsumerConfig{Group: kafkatest.Topic(t, "count"), Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var all []*stream.Record
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for n < want {
		recs, err := c.Poll(ctx)
		if err != nil {
			break
		}
		for _, r := range recs {
			k, err := otlpwire.Count(sig, r.Value)
			if err != nil {
				t.Fatalf("record %d@%d: %v", r.Partition, r.Offset, err)
			}
			n += k
			all = append(all, r)
		}
	}
	// Anything beyond want would be a duplicate: read a little longer.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if recs, err := c.Poll(ctx2); err == nil {
		for _, r := range recs {
			k, _ := otlpwire.Count(sig, r.Value)
			n += k
			all = append(all, r)
		}
	}
	return n, all
}

// The OpenTelemetry Go SDK's OTLP exporters, gRPC and HTTP, send to the
// ingester on the real Kafka broker; every item is on the topics, with the
// tenant header.
func TestSDKExportersToKafka(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	cfg := kafkaConfig(t, brokers)
	cfg.Ingest.TrustTenantHeader = true // the exporters name their tenant in X-Scope-OrgID
	p, err := Start(context.Background(), cfg, Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	ctx := context.Background()
	headers := map[string]string{"X-Scope-OrgID": "team-sdk"}
	const spans, logs, series = 300, 200, 50

	for _, proto := range []string{"grpc", "http"} {
		// Traces.
		var texp sdktrace.SpanExporter
		if proto == "grpc" {
			texp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(p.GRPCAddr()), otlptracegrpc.WithInsecure(), otlptracegrpc.WithHeaders(headers))
		} else {
			texp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(p.HTTPAddr()), otlptracehttp.WithInsecure(), otlptracehttp.WithHeaders(headers))
		}
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp, sdktrace.WithMaxExportBatchSize(64)))
		for i := range spans {
			_, s := tp.Tracer("sdk-test").Start(ctx, fmt.Sprintf("op-%d", i))
			s.End()
		}
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatalf("%s trace export: %v", proto, err)
		}

		// Logs.
		var lexp sdklog.Exporter
		if proto == "grpc" {
			lexp, err = otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(p.GRPCAddr()), otlploggrpc.WithInsecure(), otlploggrpc.WithHeaders(headers))
		} else {
			lexp, err = otlploghttp.New(ctx, otlploghttp.WithEndpoint(p.HTTPAddr()), otlploghttp.WithInsecure(), otlploghttp.WithHeaders(headers))
		}
		if err != nil {
			t.Fatal(err)
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp, sdklog.WithExportMaxBatchSize(50))))
		logger := lp.Logger("sdk-test")
		for i := range logs {
			var r otellog.Record
			r.SetBody(attribute.StringValue(fmt.Sprintf("log line %d", i)))
			r.SetSeverity(otellog.SeverityInfo)
			logger.Emit(ctx, r)
		}
		if err := lp.Shutdown(ctx); err != nil {
			t.Fatalf("%s log export: %v", proto, err)
		}

		// Metrics: one counter with `series` attribute sets, exported once.
		var mexp sdkmetric.Exporter
		if proto == "grpc" {
			mexp, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(p.GRPCAddr()), otlpmetricgrpc.WithInsecure(), otlpmetricgrpc.WithHeaders(headers))
		} else {
			mexp, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(p.HTTPAddr()), otlpmetrichttp.WithInsecure(), otlpmetrichttp.WithHeaders(headers))
		}
		if err != nil {
			t.Fatal(err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(time.Hour))))
		counter, _ := mp.Meter("sdk-test").Int64Counter("requests")
		for i := range series {
			counter.Add(ctx, 1, metric.WithAttributes(attribute.Int("series", i)))
		}
		if err := mp.Shutdown(ctx); err != nil {
			t.Fatalf("%s metric export: %v", proto, err)
		}
	}

	topics := stream.Topics{Prefix: cfg.Bus.TopicPrefix}
	for sig, want := range map[otlpwire.Signal]int{otlpwire.Traces: 2 * spans, otlpwire.Logs: 2 * logs, otlpwire.Metrics: 2 * series} {
		got, recs := topicItems(t, brokers, topics.Raw(sig), sig, want)
		if got != want {
			t.Errorf("%s: %d items on the topic, want %d", sig, got, want)
		}
		for _, r := range recs {
			if string(r.Header(stream.HeaderTenant)) != "team-sdk" || string(r.Header(stream.HeaderContentType)) != stream.ContentTypeOTLPProto {
				t.Fatalf("%s record headers %v", sig, r.Headers)
			}
		}
	}
}

// The broker stops while clients send: they get retryable errors (gRPC
// UNAVAILABLE, HTTP 503 with Retry-After), the ingester stays up; the broker
// comes back and sending resumes. Every item that got a success answer is
// on the topic.
func TestBrokerDownWhileSending(t *testing.T) {
	broker := kafkatest.Start(t)
	brokers := []string{broker.Addr()}
	cfg := kafkaConfig(t, brokers)
	p, err := Start(context.Background(), cfg, Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	conn, err := grpc.NewClient(p.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := colmetrics.NewMetricsServiceClient(conn)

	shape := otlptest.Shape{Resources: 2, Items: 5, Points: 4}
	var (
		mu                       sync.Mutex
		okItems, failedRetryable int
		okSeeds                  = map[int]bool{}
		seed                     int
		unexpected               []error
	)
	send := func() {
		mu.Lock()
		seed++
		s := shape
		s.Seed = seed
		mu.Unlock()
		var err error
		if s.Seed%2 == 0 {
			_, err = client.Export(context.Background(), otlptest.Metrics(s))
			if st, _ := status.FromError(err); err != nil && st.Code() != codes.Unavailable {
				err = fmt.Errorf("gRPC: not retryable: %w", err)
			} else if err != nil {
				err = errRetryable
			}
		} else {
			resp, perr := http.Post("http://"+p.HTTPAddr()+"/v1/metrics", "application/x-protobuf", bytes.NewReader(otlptest.Request(otlpwire.Metrics, s)))
			switch {
			case perr != nil:
				err = perr
			case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
				err = errRetryable
			case resp.StatusCode != 200:
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			okItems += s.ItemCount(otlpwire.Metrics)
			okSeeds[s.Seed] = true
		case errors.Is(err, errRetryable):
			failedRetryable++
		default:
			unexpected = append(unexpected, err)
		}
	}
	// A phase sends from four clients at once for d.
	phase := func(d time.Duration) {
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for range 4 {
			wg.Go(func() {
				for time.Now().Before(end) {
					send()
				}
			})
		}
		wg.Wait()
	}
	phase(time.Second)
	before := okItems
	broker.Stop()
	phase(8 * time.Second) // longer than the produce timeout
	if failedRetryable == 0 {
		t.Fatal("no retryable error while the broker was down")
	}
	broker.Restart()
	resumed := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		n := okItems
		phase(time.Second)
		if okItems > n {
			resumed = true
			break
		}
	}
	if !resumed {
		t.Fatal("sending did not resume after the broker came back")
	}
	if len(unexpected) > 0 {
		t.Errorf("non-retryable errors: %v", unexpected)
	}
	t.Logf("items acknowledged: %d before the outage, %d in all; %d retryable failures", before, okItems, failedRetryable)

	// Count out ≥ count in: every acknowledged request's resources are on
	// the topic (failed requests may have landed in part: at least once).
	_, recs := topicItems(t, brokers, stream.Topics{Prefix: cfg.Bus.TopicPrefix}.Raw(otlpwire.Metrics), otlpwire.Metrics, okItems)
	seen := map[int]int{}
	for _, r := range recs {
		for s := range okSeeds {
			if bytes.Contains(r.Value, fmt.Appendf(nil, "inst-%d-", s)) {
				n, _ := otlpwire.Count(otlpwire.Metrics, r.Value)
				seen[s] += n
			}
		}
	}
	for s := range okSeeds {
		if seen[s] < shape.ItemCount(otlpwire.Metrics) {
			t.Errorf("request %d was acknowledged but only %d of its %d items are on the topic", s, seen[s], shape.ItemCount(otlpwire.Metrics))
		}
	}
}

var errRetryable = errors.New("retryable")
