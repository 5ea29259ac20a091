package promrw

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// BenchmarkBacklogKafka: a backlog of 300 processed records of the
// metrics-k8s corpus (10,000 series with Kubernetes resource attributes
// and the unique debug_id, timestamps 10s apart: 3 M points, 3.03 M
// samples with target_info) on the real Kafka broker, drained by the
// sink's runner (consumer group, batch_max_items 100,000) into a real
// Prometheus. cpu-s/M-samples is the CPU time of this process (the sink:
// Kafka fetch and decompression, ReadBatch, translation, snappy, HTTP)
// from the start of the drain until every sample was accepted, per
// million samples. One iteration takes tens of seconds, so it runs only
// with SLUICE_BENCH_BACKLOG=1 (not in make bench), and needs
// SLUICE_KAFKA_BROKERS (or SLUICE_KAFKA_LIBS) and prometheus:
//
//	SLUICE_BENCH_BACKLOG=1 SLUICE_KAFKA_BROKERS=127.0.0.1:29092 \
//	  go test ./sinks/promrw/ -run '^$' -bench BacklogKafka -benchtime 1x
func BenchmarkBacklogKafka(b *testing.B) {
	if os.Getenv("SLUICE_BENCH_BACKLOG") != "1" {
		b.Skip("set SLUICE_BENCH_BACKLOG=1 to drain a 3 M-point backlog")
	}
	brokers := kafkatest.Brokers(b)
	be := backendtest.Prometheus(b)
	const records, step = 300, 10 * time.Second
	req := &colmetricspb.ExportMetricsServiceRequest{}
	var corpus otlptest.Corpus
	for _, c := range otlptest.Corpora() {
		if c.Name == "metrics-k8s" {
			corpus = c
		}
	}
	if err := proto.Unmarshal(corpus.Body, req); err != nil {
		b.Fatal(err)
	}
	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	ctx := context.Background()

	for b.Loop() {
		topics := stream.Topics{Prefix: kafkatest.Topic(b, "promrw-backlog")}
		topic := topics.Processed(otlpwire.Metrics)
		if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topic, Partitions: 1}); err != nil {
			b.Fatal(err)
		}
		first := time.Now().Add(-5*time.Minute - records*step).Truncate(time.Second)
		var batch []*stream.Record
		var bytesOut int
		for k := range records {
			ts := uint64(first.Add(time.Duration(k) * step).UnixNano())
			for _, rm := range req.ResourceMetrics {
				for _, p := range rm.ScopeMetrics[0].Metrics[0].GetGauge().DataPoints {
					p.TimeUnixNano = ts + p.TimeUnixNano%1_000_000_000
				}
			}
			body, err := proto.Marshal(req)
			if err != nil {
				b.Fatal(err)
			}
			bld := schemas.NewBuilder(otlpwire.Metrics, nil)
			n, err := bld.Append(body)
			if err != nil {
				b.Fatal(err)
			}
			arrow := bld.Build()
			var buf bytes.Buffer
			if err := schemas.WriteBatch(&buf, arrow); err != nil {
				b.Fatal(err)
			}
			arrow.Release()
			bld.Release()
			bytesOut += buf.Len()
			batch = append(batch, &stream.Record{Topic: topic, Partition: -1, Value: buf.Bytes(), Headers: []stream.Header{
				{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
				{Key: stream.HeaderSignal, Value: []byte("metrics")},
				{Key: stream.HeaderItems, Value: []byte(strconv.Itoa(n))},
			}})
			if len(batch) == 20 || k == records-1 {
				if err := bus.Produce(ctx, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		b.Logf("backlog: %d records of %d points, %.1f MB", records, corpus.Items, float64(bytesOut)/1e6)

		s, err := New("prom", Config{Config: httpSinkConfig(be.WriteURL)}, sinks.Env{})
		if err != nil {
			b.Fatal(err)
		}
		entry := &config.Sink{Name: "prom", Type: Type, Signals: []string{"metrics"}, Group: kafkatest.Group(b, "promrw-backlog")}
		r, err := sinks.NewRunner(bus, entry, s, sinks.RunnerConfig{Topics: topics, MaxBackoff: time.Second,
			Start: stream.Start{Kind: stream.StartEarliest}})
		if err != nil {
			b.Fatal(err)
		}
		want := float64(records * (corpus.Items + 100)) // + target_info of 100 pods
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		cpu, start := processCPU(), time.Now()
		go func() { done <- r.Run(rctx) }()
		deadline := start.Add(5 * time.Minute) // bounds a hang; not an assertion
		for testutil.ToFloat64(s.m.samples.WithLabelValues("prom")) < want {
			if time.Now().After(deadline) {
				b.Fatalf("sent %v of %v samples", testutil.ToFloat64(s.m.samples.WithLabelValues("prom")), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		used, wall := processCPU()-cpu, time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		s.Close()
		got := backendtest.Query(b, be.URL, `count(count_over_time(http_server_active_requests[2h]))`, time.Time{})
		b.Logf("drained %.0f samples in %s (%.0f samples/s), %.2f CPU-s; Prometheus has %v series", want, wall.Round(time.Millisecond),
			want/wall.Seconds(), used.Seconds(), got)
		b.ReportMetric(used.Seconds()/want*1e6, "cpu-s/M-samples")
		b.ReportMetric(want/wall.Seconds(), "samples/s")
	}
}
