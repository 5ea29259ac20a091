package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/app/status"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/cardinality"
)

// hostileTenant is markup that runs script wherever it is not escaped,
// as the tenant header of a record another client of the bus wrote.
const hostileTenant = `<img src=x onerror="document.title='pwned'">`

// The traffic of statusPipeline.
const (
	statusSpans     = 100
	statusInfoLogs  = 30
	statusDebugLogs = 10 // dropped by the rule drop-debug
	statusSeries    = 20
)

// statusPipeline runs `sluice run` on the embedded bus with one rule
// (drop-debug: logs under severity 9), sends real OTLP with the
// OpenTelemetry SDK's exporters (spans over gRPC, logs over HTTP, metric
// points over gRPC) and two raw records that the worker dead-letters (one
// names a hostile tenant, one does not decode) and a point the ingester
// refuses, and waits until the
// pipeline has drained them all. The traffic has stopped when it returns.
// before, if not nil, runs once the pipeline is up, before the traffic.
func statusPipeline(t *testing.T, before func(*Process)) *Process {
	t.Helper()
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	os.WriteFile(filepath.Join(rulesDir, "logs.yaml"), []byte(`rules:
  - name: drop-debug
    signal: logs
    when: severity_number < 9
    drop: true
`), 0o644)
	cfg := testConfig(t, dir, "rules:\n  dir: "+rulesDir+"\nworker:\n  cardinality:\n    window: 1h\n")
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	ctx := context.Background()
	if before != nil {
		before(p)
	}

	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(p.GRPCAddr()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp, sdktrace.WithMaxExportBatchSize(40)))
	for i := range statusSpans {
		_, s := tp.Tracer("status-test").Start(ctx, fmt.Sprintf("op-%d", i))
		s.End()
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("trace export: %v", err)
	}

	lexp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(p.HTTPAddr()), otlploghttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp, sdklog.WithExportMaxBatchSize(16))))
	for i := range statusInfoLogs + statusDebugLogs {
		var r otellog.Record
		r.SetBody(attribute.StringValue(fmt.Sprintf("log line %d", i)))
		r.SetSeverity(otellog.SeverityInfo)
		if i < statusDebugLogs {
			r.SetSeverity(otellog.SeverityDebug)
		}
		lp.Logger("status-test").Emit(ctx, r)
	}
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatalf("log export: %v", err)
	}

	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(p.GRPCAddr()), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(time.Hour))))
	counter, _ := mp.Meter("status-test").Int64Counter("requests")
	for i := range statusSeries {
		counter.Add(ctx, 1, metric.WithAttributes(attribute.Int("series", i)))
	}
	if err := mp.Shutdown(ctx); err != nil {
		t.Fatalf("metric export: %v", err)
	}

	// A point the ingester refuses (an attribute key not UTF-8), answered
	// with a partial success: counted in, not out.
	pt := &metricspb.NumberDataPoint{Value: &metricspb.NumberDataPoint_AsInt{AsInt: 1},
		Attributes: []*commonpb.KeyValue{{Key: "BADKEY", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}}}}
	m := &metricspb.Metric{Name: "bad", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{pt}}}}
	bad := &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{
		{ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{m}}}}}}
	pb, err := proto.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, p: p}
	s.post("/v1/metrics", "application/x-protobuf", bytes.ReplaceAll(pb, []byte("BADKEY"), []byte("BAD\xffEY")))

	// Two records another client of the bus wrote to a raw topic: the
	// worker dead-letters them.
	raw := stream.Topics{Prefix: cfg.Bus.TopicPrefix}.Raw(otlpwire.Metrics)
	ct := stream.Header{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)}
	if err := p.Bus().Produce(ctx,
		&stream.Record{Topic: raw, Partition: 0, Value: []byte("not otlp"), Headers: []stream.Header{ct, {Key: stream.HeaderTenant, Value: []byte(hostileTenant)}}},
		&stream.Record{Topic: raw, Partition: 1, Value: []byte{0xff, 0xff, 0xff}, Headers: []stream.Header{ct, {Key: stream.HeaderTenant, Value: []byte("acme")}}},
	); err != nil {
		t.Fatal(err)
	}

	// Drained: every item through the worker and the sink, both dead
	// letters written, nothing left to read.
	in := float64(statusSpans + statusInfoLogs + statusDebugLogs + statusSeries)
	out := in - statusDebugLogs
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := getStatus(t, p)
		w, s := stageOf(st, "worker"), stageOf(st, "sink/archive")
		if w.Numbers["in"].Total == in && w.Numbers["out"].Total == out && w.Numbers["dead_letters"].Total == 2 &&
			s.Numbers["out"].Total == out && w.Lag != nil && *w.Lag == 0 && s.Lag != nil && *s.Lag == 0 {
			return p
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st.Stages, "", " ")
			t.Fatalf("pipeline not drained after 60s (want worker in %v, out %v, 2 dead letters, sink out %v, no lag):\n%s", in, out, out, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getStatus(t *testing.T, p *Process) status.Status {
	t.Helper()
	var st status.Status
	if err := json.Unmarshal(get(t, "http://"+p.AdminAddr()+"/api/v1/status"), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v %s", url, resp.StatusCode, err, b)
	}
	return b
}

func stageOf(st status.Status, name string) status.StageStatus {
	for _, s := range st.Stages {
		if s.Name == name {
			return s
		}
	}
	return status.StageStatus{}
}

// scrape reads /metrics.
func scrape(t *testing.T, p *Process) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(string(get(t, "http://"+p.AdminAddr()+"/metrics"))))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// sumOf sums the series of a scraped metric whose labels include want
// ("name", "value" pairs).
func sumOf(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	var sum float64
next:
	for _, m := range mfs[name].GetMetric() {
		for i := 0; i < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == want[i] && l.GetValue() == want[i+1])
			}
			if !found {
				continue next
			}
		}
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return sum
}

// metricsWant are the page's numbers as /metrics says them: stage|number
// (as the page's data-k attributes name them) to value.
func metricsWant(mfs map[string]*dto.MetricFamily) map[string]float64 {
	return map[string]float64{
		"ingest|in|total":                   sumOf(mfs, "sluice_ingest_items_total") + sumOf(mfs, "sluice_ingest_rejected_items_total"),
		"ingest|out|total":                  sumOf(mfs, "sluice_ingest_items_total"),
		"ingest|errors|total":               sumOf(mfs, "sluice_ingest_errors_total"),
		"worker|in|total":                   sumOf(mfs, "sluice_worker_items_in_total"),
		"worker|out|total":                  sumOf(mfs, "sluice_worker_items_out_total"),
		"worker|errors|total":               sumOf(mfs, "sluice_stage_handle_errors_total", "stage", "worker"),
		"worker|dead_letters|total":         sumOf(mfs, "sluice_worker_dead_letters_total"),
		"worker|lag":                        sumOf(mfs, "sluice_consumer_lag_records", "stage", "worker"),
		"aggregator|in|total":               sumOf(mfs, "sluice_aggregator_points_in_total"),
		"aggregator|out|total":              sumOf(mfs, "sluice_aggregator_points_out_total"),
		"aggregator|errors|total":           sumOf(mfs, "sluice_stage_handle_errors_total", "stage", "aggregator"),
		"aggregator|dead_letters|total":     sumOf(mfs, "sluice_aggregator_dead_letters_total"),
		"aggregator|lag":                    sumOf(mfs, "sluice_consumer_lag_records", "stage", "aggregator"),
		"sink/archive|in|total":             sumOf(mfs, "sluice_stage_items_total", "stage", "sink/archive"),
		"sink/archive|out|total":            sumOf(mfs, "sluice_sink_items_sent_total", "sink", "archive"),
		"sink/archive|errors|total":         sumOf(mfs, "sluice_stage_handle_errors_total", "stage", "sink/archive"),
		"sink/archive|dead_letters|total":   sumOf(mfs, "sluice_sink_dead_letters_total", "sink", "archive"),
		"sink/archive|lag":                  sumOf(mfs, "sluice_consumer_lag_records", "stage", "sink/archive"),
		"rule|drop-debug|matched|total":     sumOf(mfs, "sluice_rule_matched_total", "rule", "drop-debug"),
		"rule|drop-debug|dropped|total":     sumOf(mfs, "sluice_rule_dropped_total", "rule", "drop-debug"),
		"rule|drop-debug|changed|total":     sumOf(mfs, "sluice_rule_changed_total", "rule", "drop-debug"),
		"rule|drop-debug|errors|total":      sumOf(mfs, "sluice_rule_errors_total", "rule", "drop-debug"),
		"dead letters (worker, aggregator)": sumOf(mfs, "sluice_worker_dead_letters_total") + sumOf(mfs, "sluice_aggregator_dead_letters_total"),
	}
}

// statusGot are the same numbers as /api/v1/status says them.
func statusGot(st status.Status) map[string]float64 {
	got := map[string]float64{}
	for _, s := range st.Stages {
		for k, n := range s.Numbers {
			got[s.Name+"|"+k+"|total"] = n.Total
		}
		if s.Lag != nil {
			got[s.Name+"|lag"] = *s.Lag
		}
	}
	for _, r := range st.Rules {
		for k, n := range map[string]status.Number{"matched": r.Matched, "dropped": r.Dropped, "changed": r.Changed, "errors": r.Errors} {
			got["rule|"+r.Rule+"|"+k+"|total"] = n.Total
		}
	}
	var dead float64
	for _, d := range st.DeadLetters {
		if d.Stage == "worker" || d.Stage == "aggregator" {
			dead++
		}
	}
	got["dead letters (worker, aggregator)"] = dead
	return got
}

// stableMetrics scrapes /metrics around f until two scrapes agree on the
// page's numbers (the traffic has stopped, but a poll may still move a
// gauge), and returns them.
func stableMetrics(t *testing.T, p *Process, f func()) map[string]float64 {
	t.Helper()
	for range 20 {
		before := metricsWant(scrape(t, p))
		f()
		after := metricsWant(scrape(t, p))
		if fmt.Sprint(before) == fmt.Sprint(after) {
			return after
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("/metrics kept changing after the traffic stopped")
	return nil
}

// The status API says what /metrics says: after real OTLP through a whole
// pipeline, each stage's totals and lag, and each rule's counters, are the
// registry's; they also match the traffic (items in and out of each stage,
// the rule's drops). The dead letters the page lists are the ones on the
// dead-letter topic, with their reasons, origins and tenants; the
// cardinality view is the worker's report.
func TestStatusMatchesMetrics(t *testing.T) {
	p := statusPipeline(t, nil)
	var st status.Status
	want := stableMetrics(t, p, func() { st = getStatus(t, p) })
	got := statusGot(st)
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: status says %v (present %v), /metrics %v", k, g, ok, w)
		}
	}
	sent := float64(statusSpans + statusInfoLogs + statusDebugLogs + statusSeries)
	for k, w := range map[string]float64{"ingest|in|total": sent + 1, "ingest|out|total": sent, "worker|in|total": sent, "sink/archive|out|total": sent - statusDebugLogs,
		"rule|drop-debug|dropped|total": statusDebugLogs, "worker|dead_letters|total": 2} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v (the traffic sent)", k, got[k], w)
		}
	}
	if !st.Ready || len(st.NotReady) != 0 {
		t.Errorf("ready %v %v; /readyz says ready", st.Ready, st.NotReady)
	}
	if st.Bus != "embedded" || st.DeadLetterTopic != "sluice.dlq" || len(st.Stages) != 4 {
		t.Errorf("pipeline: bus %q, DLQ %q, %d stages", st.Bus, st.DeadLetterTopic, len(st.Stages))
	}
	if w := stageOf(st, "worker"); w.Group != "sluice-worker" || strings.Join(w.Reads, ",") != "sluice.raw.metrics,sluice.raw.logs,sluice.raw.traces" {
		t.Errorf("worker: group %q, reads %v", w.Group, w.Reads)
	}

	// The dead letters on the topic, read back with a group of our own.
	c, err := p.Bus().Consume(stream.ConsumerConfig{Group: "status-test", Topics: []string{st.DeadLetterTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	onTopic := map[string]*stream.Record{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(onTopic) < 2 {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("reading %s: %v (have %d)", st.DeadLetterTopic, err, len(onTopic))
		}
		for _, r := range recs {
			onTopic[string(r.Header(stream.HeaderOrigin))] = r
		}
	}
	if len(st.DeadLetters) != 2 || st.DeadLettersSeen != 2 {
		t.Fatalf("status lists %d dead letters (%d seen), want 2: %+v", len(st.DeadLetters), st.DeadLettersSeen, st.DeadLetters)
	}
	for _, d := range st.DeadLetters {
		r := onTopic[d.Origin]
		if r == nil {
			t.Errorf("dead letter from %s is not on the topic (%v)", d.Origin, onTopic)
			continue
		}
		if d.Reason != string(r.Header(stream.HeaderError)) || d.Tenant != string(r.Header(stream.HeaderTenant)) || d.Bytes != len(r.Value) || d.Stage != "worker" {
			t.Errorf("dead letter %s: status %+v; on the topic reason %q, tenant %q, %d bytes", d.Origin, d, r.Header(stream.HeaderError), r.Header(stream.HeaderTenant), len(r.Value))
		}
		if d.Reason == "" || d.Time.IsZero() {
			t.Errorf("dead letter %s without a reason or time: %+v", d.Origin, d)
		}
	}
	if d := st.DeadLetters; !strings.Contains(d[0].Reason+d[1].Reason, "invalid tenant") {
		t.Errorf("no reason names the invalid tenant: %q, %q", d[0].Reason, d[1].Reason)
	}

	var card cardinality.Report
	if err := json.Unmarshal(get(t, "http://"+p.AdminAddr()+"/api/v1/cardinality?top=10"), &card); err != nil {
		t.Fatal(err)
	}
	if st.Cardinality == nil || fmt.Sprint(st.Cardinality.Tenants) != fmt.Sprint(card.Tenants) {
		t.Errorf("cardinality: status %+v, /api/v1/cardinality %+v", st.Cardinality, card.Tenants)
	}
	if m, ok := metricOf(card, "anonymous", "requests"); !ok || m.SeriesBefore != statusSeries {
		t.Errorf("cardinality of requests: %+v, want %d series", m, statusSeries)
	}
}
