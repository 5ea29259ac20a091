package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/config"
)

// The bug of issue 9: OpenTelemetry SDK counters from 5 pods × 20 routes
// go through a rule that deletes the pod; each pair of (route) series
// used to reach Prometheus as one series holding one pod's value. Now the
// pods' counters are summed: 20 series, each the sum of its 5 inputs, and
// the increases of a second export are added. Prometheus rejects nothing.
func TestDeletedLabelSumsInPrometheus(t *testing.T) {
	prom := backendtest.Prometheus(t)
	p, err := Start(context.Background(), promConfig(t, prom.WriteURL, `
  - name: no-pod
    signal: metrics
    delete: ['resource["k8s.pod.name"]']
`), All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	ctx := context.Background()
	const pods, routes = 5, 20
	type pod struct {
		mp      *sdkmetric.MeterProvider
		counter metric.Int64Counter
	}
	var ps []pod
	for i := range pods {
		exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(p.GRPCAddr()), otlpmetricgrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("k8s.pod.name", fmt.Sprintf("checkout-%d", i)))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
		c, _ := mp.Meter("shop").Int64Counter("requests", metric.WithUnit("1"))
		ps = append(ps, pod{mp, c})
		defer mp.Shutdown(ctx)
	}
	round := func(add int64) {
		for _, pd := range ps {
			for r := range routes {
				pd.counter.Add(ctx, add, metric.WithAttributes(attribute.String("http.route", fmt.Sprintf("/r%d", r))))
			}
			if err := pd.mp.ForceFlush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(want float64) {
		t.Helper()
		waitProm(t, prom.URL, `sum(requests_total{job="checkout"})`, pods*routes*want)
		if got := promValue(t, prom.URL, `count(requests_total{job="checkout"})`); got != routes {
			t.Errorf("%v series, want %d", got, routes)
		}
		if got := promValue(t, prom.URL, `requests_total{job="checkout",http_route="/r7"}`); got != pods*want {
			t.Errorf("/r7 = %v, want %v", got, pods*want)
		}
	}
	round(2)
	check(2)
	round(3) // the counters are at 5 now: the increases add up
	check(5)

	if n, ok := metricSum(t, prom.URL, "prometheus_tsdb_out_of_order_samples_total"); !ok || n != 0 {
		t.Errorf("Prometheus rejected %v out-of-order samples (%v)", n, ok)
	}
	if n, _ := metricSum(t, "http://"+p.AdminAddr(), "sluice_sink_rejected_total"); n != 0 {
		t.Errorf("Prometheus refused %v records for good", n)
	}
}

// merge: none: deleting a label unique per series writes each point as it
// came, with its own timestamp (not the end of a merge interval), and
// nothing goes through the aggregator.
func TestMergeNoneKeepsPointsAsTheyCome(t *testing.T) {
	prom := backendtest.Prometheus(t)
	p, err := Start(context.Background(), promConfigFile(t, prom.WriteURL, `merge: none
rules:
  - name: no-debug-id
    signal: metrics
    delete: ['attributes["debug_id"]']
`), All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	const series = 20
	ts := time.Now().Add(-2 * time.Second).Truncate(time.Second).Add(437 * time.Millisecond) // not on an interval's end
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	var pts []*metricspb.NumberDataPoint
	for i := range series {
		pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: uint64(ts.UnixNano()),
			Attributes: []*commonpb.KeyValue{str("route", fmt.Sprintf("/r%d", i)), str("debug_id", fmt.Sprintf("%016x", i*7919))},
			Value:      &metricspb.NumberDataPoint_AsDouble{AsDouble: float64(i)}})
	}
	body, _ := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource:     &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "api")}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: "queue_depth", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: pts}}}}}},
	}}})
	resp, err := http.Post("http://"+p.HTTPAddr()+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST: %s", resp.Status)
	}
	waitProm(t, prom.URL, `count(queue_depth)`, series)
	for _, s := range backendtest.Query(t, prom.URL, `timestamp(queue_depth)`, time.Time{}) {
		if s.Metric["debug_id"] != "" {
			t.Errorf("%v: debug_id not deleted", s.Metric)
		}
		if want := float64(ts.UnixMilli()) / 1e3; s.Value != want {
			t.Errorf("%v: timestamp %v, want the point's own %v", s.Metric, s.Value, want)
		}
	}
	admin := "http://" + p.AdminAddr()
	if n, _ := metricSum(t, admin, "sluice_aggregator_points_in_total"); n != 0 {
		t.Errorf("the aggregator took in %v points", n)
	}
	// The pipeline's end-to-end delay of the record, receipt to delivery.
	n, _ := metricSum(t, admin, `sluice_sink_delivery_delay_seconds_count{sink="prom"}`)
	sum, _ := metricSum(t, admin, `sluice_sink_delivery_delay_seconds_sum{sink="prom"}`)
	if n < 1 || sum <= 0 || sum/n > 30 {
		t.Errorf("sluice_sink_delivery_delay_seconds: count %v, sum %v", n, sum)
	}
}

// promConfig is an all-in-one config on the embedded bus (3 partitions)
// with a Prometheus remote-write sink and a rules directory holding rules
// (a YAML list; none when empty), merged in 1s intervals.
func promConfig(t *testing.T, writeURL, rules string) *config.Config {
	t.Helper()
	if rules == "" {
		return promConfigFile(t, writeURL, "")
	}
	return promConfigFile(t, writeURL, "merge: {interval: 1s, grace: 1s}\nrules:"+rules)
}

// promConfigFile is promConfig with the whole rule file given.
func promConfigFile(t *testing.T, writeURL, file string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if file != "" {
		os.MkdirAll(rulesDir, 0o755)
		os.WriteFile(filepath.Join(rulesDir, "rules.yaml"), []byte(file), 0o644)
	}
	path := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(path, fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 3
ingest:
  grpc_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
rules:
  dir: %q
sinks:
  - name: prom
    type: prometheus_remote_write
    signals: [metrics]
    url: %s
log:
  level: warn
`, filepath.Join(dir, "data"), rulesDir, writeURL), 0o644)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// waitProm waits until the instant query q is want.
func waitProm(t *testing.T, base, q string, want float64) {
	t.Helper()
	var got []backendtest.Sample
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = backendtest.Query(t, base, q, time.Time{}); len(got) == 1 && got[0].Value == want {
			return
		}
	}
	t.Fatalf("%s = %+v, want %v", q, got, want)
}

// metricSum sums the samples of a metric (name, or name{labels} as
// exposed) at base + "/metrics"; ok says whether there were any.
func metricSum(t *testing.T, base, name string) (sum float64, ok bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum, ok = sum+v, true
	}
	return sum, ok
}

// limit: 20,000 series of a counter through a rule capping it at 10,000
// reach Prometheus as 10,000 series and one overflow series, whose value
// is the sum of the series it folded.
func TestLimitFoldsIntoOverflowSeries(t *testing.T) {
	prom := backendtest.Prometheus(t)
	p, err := Start(context.Background(), promConfig(t, prom.WriteURL, `
  - name: cap-jobs
    signal: metrics
    when: name == "jobs"
    limit:
      max_series: 10000
`), All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	const series, perRequest = 20000, 1000
	value := func(id int) int64 { return int64(id%7 + 1) }
	now := uint64(time.Now().UnixNano())
	for first := 0; first < series; first += perRequest {
		var pts []*metricspb.NumberDataPoint
		for id := first; id < first+perRequest; id++ {
			pts = append(pts, &metricspb.NumberDataPoint{StartTimeUnixNano: now - 1e9, TimeUnixNano: now,
				Attributes: []*commonpb.KeyValue{{Key: "id", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: strconv.Itoa(id)}}}},
				Value:      &metricspb.NumberDataPoint_AsInt{AsInt: value(id)}})
		}
		body, _ := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "batch"}}}}},
			ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: "jobs", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
				IsMonotonic: true, AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, DataPoints: pts}}}}}},
		}}})
		resp, err := http.Post("http://"+p.HTTPAddr()+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST: %s", resp.Status)
		}
	}
	var total int64
	for id := range series {
		total += value(id)
	}
	waitProm(t, prom.URL, `sum(jobs_total)`, float64(total))
	if got := promValue(t, prom.URL, `count(jobs_total)`); got != 10001 {
		t.Errorf("%v series, want 10,000 and the overflow series", got)
	}
	kept := backendtest.Query(t, prom.URL, `jobs_total{otel_metric_overflow=""}`, time.Time{})
	folded := total
	for _, s := range kept {
		id, err := strconv.Atoi(s.Metric["id"])
		if err != nil || float64(value(id)) != s.Value {
			t.Fatalf("series %v = %v", s.Metric, s.Value)
		}
		folded -= value(id)
	}
	if got := promValue(t, prom.URL, `jobs_total{otel_metric_overflow="true"}`); got != float64(folded) || len(kept) != 10000 {
		t.Errorf("overflow series = %v, want %d, the sum of the %d series not kept", got, folded, series-len(kept))
	}
	// The rule's metrics say what it folded (as of the last checkpoint).
	admin := "http://" + p.AdminAddr()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		n, _ := metricSum(t, admin, `sluice_aggregate_series_folded_total{merged_in="aggregator",rule="cap-jobs"}`)
		if n == series-10000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice_aggregate_series_folded_total = %v, want %d", n, series-10000)
		}
	}
	if got, _ := metricSum(t, admin, `sluice_aggregate_metric_series_folded_total{merged_in="aggregator",metric="jobs",rule="cap-jobs"}`); got != series-10000 {
		t.Errorf("sluice_aggregate_metric_series_folded_total = %v, want %d", got, series-10000)
	}
	if got, _ := metricSum(t, admin, `sluice_aggregate_output_series{merged_in="aggregator",rule="cap-jobs"}`); got != 10001 {
		t.Errorf("sluice_aggregate_output_series = %v, want 10001", got)
	}
}

// worker.aggregator: false runs the worker without a member of the
// aggregator group (for the worker processes of a NATS bus but one).
func TestAggregatorOff(t *testing.T) {
	for _, on := range []bool{true, false} {
		cfg := testConfig(t, t.TempDir(), fmt.Sprintf("worker:\n  aggregator: %v\n", on))
		p, err := Start(context.Background(), cfg, All, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		_, running := metricSum(t, "http://"+p.AdminAddr(), "sluice_aggregator_points_in_total")
		p.Stop()
		if running != on {
			t.Errorf("worker.aggregator: %v, but an aggregator running: %v", on, running)
		}
	}
}

// worker.local_merge on the embedded bus: SDK counters of 5 processes of
// one pod (one resource), told apart by a point attribute the rule
// deletes, are summed by the worker in the raw partition of their resource,
// with none through the aggregation topic: 20 series in Prometheus, each
// the sum of its 5 inputs, the increases of a second export added.
func TestLocalMergeSumsInPrometheus(t *testing.T) {
	prom := backendtest.Prometheus(t)
	cfg := promConfig(t, prom.WriteURL, `
  - name: no-process
    signal: metrics
    delete: ['attributes["process.id"]']
`)
	cfg.Worker.LocalMerge = true
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	ctx := context.Background()
	const procs, routes = 5, 20
	type proc struct {
		mp      *sdkmetric.MeterProvider
		counter metric.Int64Counter
		id      attribute.KeyValue
	}
	var ps []proc
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("k8s.pod.name", "checkout-0"))
	for i := range procs {
		exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(p.GRPCAddr()), otlpmetricgrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
		c, _ := mp.Meter("shop").Int64Counter("requests", metric.WithUnit("1"))
		ps = append(ps, proc{mp, c, attribute.Int("process.id", i)})
		defer mp.Shutdown(ctx)
	}
	round := func(add int64) {
		for _, pr := range ps {
			for r := range routes {
				pr.counter.Add(ctx, add, metric.WithAttributes(attribute.String("http.route", fmt.Sprintf("/r%d", r)), pr.id))
			}
			if err := pr.mp.ForceFlush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(want float64) {
		t.Helper()
		waitProm(t, prom.URL, `sum(requests_total{job="checkout"})`, procs*routes*want)
		if got := promValue(t, prom.URL, `count(requests_total{job="checkout"})`); got != routes {
			t.Errorf("%v series, want %d", got, routes)
		}
	}
	round(2)
	check(2)
	round(3)
	check(5)
	admin := "http://" + p.AdminAddr()
	if n, _ := metricSum(t, admin, "sluice_worker_points_merged_total"); n != 2*procs*routes {
		t.Errorf("sluice_worker_points_merged_total = %v, want %d", n, 2*procs*routes)
	}
	if n, _ := metricSum(t, admin, "sluice_worker_points_aggregated_total"); n != 0 {
		t.Errorf("%v points written to the aggregation topic, want none", n)
	}
	if n, ok := metricSum(t, prom.URL, "prometheus_tsdb_out_of_order_samples_total"); !ok || n != 0 {
		t.Errorf("Prometheus rejected %v out-of-order samples (%v)", n, ok)
	}
}
