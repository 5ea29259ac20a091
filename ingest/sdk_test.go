package ingest

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
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
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestSDKExporters points the OpenTelemetry Go SDK's OTLP exporters at the
// servers and checks that every item they send lands on the bus.
func TestSDKExporters(t *testing.T) {
	const n = 57
	headers := map[string]string{"X-Scope-OrgID": "sdk-tenant", "Authorization": "Bearer tok"}
	ctx := context.Background()

	emitMetrics := func(t *testing.T, exp sdkmetric.Exporter) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		c, err := mp.Meter("sluice.test").Int64Counter("requests")
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			c.Add(ctx, int64(i), metric.WithAttributes(attribute.Int("i", i)))
		}
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		if err := exp.Export(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		if err := exp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	emitTraces := func(t *testing.T, exp sdktrace.SpanExporter) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
		tr := tp.Tracer("sluice.test")
		for i := range n {
			_, span := tr.Start(ctx, fmt.Sprintf("op-%d", i))
			span.End()
		}
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	emitLogs := func(t *testing.T, exp sdklog.Exporter) {
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
		l := lp.Logger("sluice.test")
		for i := range n {
			var r otellog.Record
			r.SetBody(attribute.StringValue(fmt.Sprintf("line %d", i)))
			r.SetSeverity(otellog.SeverityInfo)
			l.Emit(ctx, r)
		}
		if err := lp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name string
		sig  otlpwire.Signal
		run  func(t *testing.T, s *Server)
	}{
		{"metrics/grpc", otlpwire.Metrics, func(t *testing.T, s *Server) {
			exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(s.GRPCAddr()), otlpmetricgrpc.WithInsecure(),
				otlpmetricgrpc.WithHeaders(headers), otlpmetricgrpc.WithCompressor("gzip"))
			if err != nil {
				t.Fatal(err)
			}
			emitMetrics(t, exp)
		}},
		{"metrics/http", otlpwire.Metrics, func(t *testing.T, s *Server) {
			exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(s.HTTPAddr()), otlpmetrichttp.WithInsecure(),
				otlpmetrichttp.WithHeaders(headers), otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
			if err != nil {
				t.Fatal(err)
			}
			emitMetrics(t, exp)
		}},
		{"traces/grpc", otlpwire.Traces, func(t *testing.T, s *Server) {
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.GRPCAddr()), otlptracegrpc.WithInsecure(), otlptracegrpc.WithHeaders(headers))
			if err != nil {
				t.Fatal(err)
			}
			emitTraces(t, exp)
		}},
		{"traces/http", otlpwire.Traces, func(t *testing.T, s *Server) {
			exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(s.HTTPAddr()), otlptracehttp.WithInsecure(), otlptracehttp.WithHeaders(headers))
			if err != nil {
				t.Fatal(err)
			}
			emitTraces(t, exp)
		}},
		{"logs/grpc", otlpwire.Logs, func(t *testing.T, s *Server) {
			exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(s.GRPCAddr()), otlploggrpc.WithInsecure(), otlploggrpc.WithHeaders(headers))
			if err != nil {
				t.Fatal(err)
			}
			emitLogs(t, exp)
		}},
		{"logs/http", otlpwire.Logs, func(t *testing.T, s *Server) {
			exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(s.HTTPAddr()), otlploghttp.WithInsecure(),
				otlploghttp.WithHeaders(headers), otlploghttp.WithCompression(otlploghttp.GzipCompression))
			if err != nil {
				t.Fatal(err)
			}
			emitLogs(t, exp)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := newBus(t, 4)
			s := startServer(t, newIngester(t, Config{Tokens: mustTokens(t, Token{Token: "tok", Tenant: "team-sdk", Tenants: []string{"sdk-tenant"}})}, bus))
			tc.run(t, s)
			if got := busItems(t, bus, tc.sig, "sdk-tenant"); got != n {
				t.Errorf("%d items on the bus, want %d", got, n)
			}
		})
	}
}
