package app

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sluice-dev/sluice/internal/backendtest"
)

// A newcomer's path: an application instrumented with the OpenTelemetry
// SDK sends metrics to `sluice run`, which writes them to a real
// Prometheus; PromQL finds them under the Prometheus names.
func TestRunToPrometheus(t *testing.T) {
	prom := backendtest.Prometheus(t)
	cfg := promConfig(t, prom.WriteURL, "")
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	ctx := context.Background()
	exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(p.GRPCAddr()), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("service.instance.id", "pod-7"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	meter := mp.Meter("shop")
	orders, _ := meter.Int64Counter("orders", metric.WithUnit("1"))
	latency, _ := meter.Float64Histogram("http.server.duration", metric.WithUnit("s"))
	orders.Add(ctx, 5, metric.WithAttributes(attribute.String("payment.method", "card")))
	latency.Record(ctx, 0.25, metric.WithAttributes(attribute.String("http.route", "/cart")))
	if err := mp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	for q, want := range map[string]float64{
		`orders_total{job="checkout",instance="pod-7",payment_method="card"}`:              5,
		`http_server_duration_seconds_count{job="checkout",http_route="/cart"}`:            1,
		`http_server_duration_seconds_sum{job="checkout",http_route="/cart"}`:              0.25,
		`http_server_duration_seconds_bucket{job="checkout",http_route="/cart",le="+Inf"}`: 1,
	} {
		if got := promValue(t, prom.URL, q); got != want {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
}

// promValue waits until the instant query q has one result and returns it.
func promValue(t *testing.T, base, q string) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r := backendtest.Query(t, base, q, time.Time{}); len(r) == 1 {
			return r[0].Value
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single result for %s", q)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
