package app

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

// agentConfig is a worker-and-sinks config on Kafka reading the agents'
// topics, with the file sink writing to dir/out.
func agentConfig(t *testing.T, dir string, brokers []string, prefix string, rawTopics [3]string, extra string) *config.Config {
	t.Helper()
	return loadYAML(t, dir, fmt.Sprintf(`bus:
  kind: kafka
  topic_prefix: %s
  partitions: 3
  produce_timeout: 3s
  kafka:
    brokers: [%s]
ingest:
  grpc_listen: ""
  http_listen: 127.0.0.1:0
worker:
  group: %s-worker
  raw_topics:
    metrics: %s
    logs: %s
    traces: %s
  tenant_header: X-Scope-OrgID
  default_tenant: agents
%s
rules:
  dir: %q
sinks:
  - name: archive
    type: file
    signals: [metrics, logs, traces]
    group: %s-sink
    path: %q
log:
  level: warn
`, prefix, strings.Join(brokers, ", "), prefix, rawTopics[0], rawTopics[1], rawTopics[2], extra,
		filepath.Join(dir, "no-rules"), prefix, filepath.Join(dir, "out")))
}

// resourceKey is the record key of the Collector's Kafka exporter with
// partition_metrics_by_resource_attributes: 16 bytes hashing the resource's
// attributes sorted by key (the exporter uses pdatautil.MapHash, xxh3-128;
// this uses two xxhash-64, so the bytes differ but not their shape; the
// worker reads no key).
func resourceKey(r *resourcepb.Resource) []byte {
	attrs := slices.Clone(r.GetAttributes())
	slices.SortFunc(attrs, func(a, b *commonpb.KeyValue) int { return strings.Compare(a.Key, b.Key) })
	var b bytes.Buffer
	for _, kv := range attrs {
		v, _ := proto.Marshal(kv.Value)
		b.WriteString(kv.Key)
		b.WriteByte(0)
		b.Write(v)
	}
	key := binary.BigEndian.AppendUint64(nil, xxhash.Sum64(b.Bytes()))
	return binary.BigEndian.AppendUint64(key, xxhash.Sum64String(b.String()+"\x01"))
}

// collectorRecords are the records the OpenTelemetry Collector's Kafka
// exporter (Alloy's otelcol.exporter.kafka is the same code) writes with
// encoding otlp_proto for one request of each signal, the same values its
// pdata ProtoMarshaler makes (the proto ExportRequest messages; this
// marshals go.opentelemetry.io/proto/otlp, the same wire format):
// metrics with partition_metrics_by_resource_attributes, one record per
// resource keyed by its attributes' hash; logs as one record without a
// key (the default); traces one record per span (the exporter's otlp_proto
// marshaler splits spans), keyed by the hex trace id
// (partition_traces_by_id). headers are include_metadata_keys' headers.
func collectorRecords(t *testing.T, topics [3]string, shape otlptest.Shape, headers []kgo.RecordHeader) (recs []*kgo.Record, items [3]int) {
	t.Helper()
	var m colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(otlptest.Request(otlpwire.Metrics, shape), &m); err != nil {
		t.Fatal(err)
	}
	for _, rm := range m.ResourceMetrics {
		v, err := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{rm}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topics[otlpwire.Metrics], Key: resourceKey(rm.Resource), Value: v, Headers: headers})
	}
	items[otlpwire.Metrics] = shape.ItemCount(otlpwire.Metrics)

	var l collogs.ExportLogsServiceRequest
	logs := otlptest.Request(otlpwire.Logs, shape)
	if err := proto.Unmarshal(logs, &l); err != nil {
		t.Fatal(err)
	}
	v, err := proto.Marshal(&l)
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, &kgo.Record{Topic: topics[otlpwire.Logs], Value: v, Headers: headers})
	items[otlpwire.Logs] = shape.ItemCount(otlpwire.Logs)

	var tr coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(otlptest.Request(otlpwire.Traces, shape), &tr); err != nil {
		t.Fatal(err)
	}
	for _, rs := range tr.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				one := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
					ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracepb.Span{sp}}}}}}
				v, err := proto.Marshal(one)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, &kgo.Record{Topic: topics[otlpwire.Traces], Key: []byte(hex.EncodeToString(sp.TraceId)), Value: v, Headers: headers})
				items[otlpwire.Traces]++
			}
		}
	}
	if items[otlpwire.Traces] != shape.ItemCount(otlpwire.Traces) {
		t.Fatalf("%d spans split, want %d", items[otlpwire.Traces], shape.ItemCount(otlpwire.Traces))
	}
	return recs, items
}

// Records written to Kafka exactly as the Collector's Kafka exporter
// writes them, on topics an operator created, reach the sink under the
// tenant of their X-Scope-OrgID header or the default tenant; bad records
// are dead-lettered with an error naming them; an OTLP/JSON record saying
// so in content-type is converted; the topics' settings are
// left as they were; a missing topic stops the start with an error naming
// it and the config line, unless worker.create_raw_topics. An ingester of
// the same config writes to the agents' topics, beside them.
func TestCollectorKafkaExporterRecords(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx := context.Background()
	dir := t.TempDir()
	prefix := kafkatest.Topic(t, "agents")
	ext := [3]string{prefix + "-otlp_metrics", prefix + "-otlp_logs", prefix + "-otlp_spans"}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// Missing: the start fails, naming the topic and the config line.
	cfg := agentConfig(t, dir, brokers, prefix, ext, "")
	if p, err := Start(ctx, cfg, Roles{Worker: true, AllSinks: true}, testLogger(t)); err == nil {
		p.Stop()
		t.Fatal("started without the agents' topics")
	} else if want := fmt.Sprintf(`sluice.yaml:14:14: worker.raw_topics.metrics: raw topic %q does not exist on the bus`, ext[0]); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\nwant one with %s", err, want)
	}

	// Created as the operator wants them: 2 partitions, an hour's retention.
	retention := "3600000"
	resp, err := adm.CreateTopics(ctx, 2, 1, map[string]*string{"retention.ms": &retention}, ext[:]...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	// The Collector's records: one request of each signal per round,
	// X-Scope-OrgID on some rounds (as include_metadata_keys writes it),
	// none on others.
	want := map[string][3]int{}
	var recs []*kgo.Record
	for i := range 9 {
		tenant, headers := "agents", []kgo.RecordHeader(nil)
		switch i % 3 {
		case 1:
			tenant, headers = "team-a", []kgo.RecordHeader{{Key: "X-Scope-OrgID", Value: []byte("team-a")}}
		case 2:
			tenant, headers = "team-b", []kgo.RecordHeader{{Key: "X-Scope-OrgID", Value: []byte("team-b")}}
		}
		r, items := collectorRecords(t, ext, otlptest.Shape{Resources: 3, Items: 4, Points: 3, Seed: i}, headers)
		recs = append(recs, r...)
		w := want[tenant]
		for s := range w {
			w[s] += items[s]
		}
		want[tenant] = w
	}
	// One record in OTLP/JSON, saying so in content-type (as a producer
	// other than the exporter may): converted by the worker.
	jsonShape := otlptest.Shape{Resources: 2, Items: 7, Seed: 99}
	js, err := otlpjson.MarshalRequest(otlpwire.Logs, otlptest.Request(otlpwire.Logs, jsonShape), nil)
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, &kgo.Record{Topic: ext[otlpwire.Logs], Value: js,
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}, {Key: "x-scope-orgid", Value: []byte("team-a")}}})
	w := want["team-a"]
	w[otlpwire.Logs] += jsonShape.ItemCount(otlpwire.Logs)
	want["team-a"] = w
	bad := []*kgo.Record{
		{Topic: ext[otlpwire.Logs], Value: []byte("not OTLP at all")},
		{Topic: ext[otlpwire.Metrics], Value: otlptest.Request(otlpwire.Metrics, otlptest.Shape{Resources: 1, Items: 1, Points: 1}),
			Headers: []kgo.RecordHeader{{Key: "X-Scope-OrgID", Value: []byte("../../etc")}}},
	}
	if err := cl.ProduceSync(ctx, append(recs, bad...)...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	p, err := Start(ctx, cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	// The ingester of the same config writes to the agents' topics too:
	// its records, with sluice's headers, meet the agents' in the worker.
	s := &sender{t: t, p: p}
	s.post("/v1/logs", "application/x-protobuf", otlptest.Request(otlpwire.Logs, otlptest.Shape{Resources: 2, Items: 5}))
	want["anonymous"] = [3]int{0, otlptest.Shape{Resources: 2, Items: 5}.ItemCount(otlpwire.Logs), 0}
	var got map[string][3]int
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = tenantItems(t, filepath.Join(dir, "out")); fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("items by tenant at the sink: %v, want %v", got, want)
	}

	// The dead letters name the record and why.
	dlq := deadLetters(t, brokers, stream.Topics{Prefix: prefix}.DLQ(), len(bad))
	var whys []string
	for _, d := range dlq {
		whys = append(whys, string(d.Header(stream.HeaderOrigin))+": "+string(d.Header(stream.HeaderError)))
	}
	slices.Sort(whys)
	for i, w := range []string{
		ext[otlpwire.Logs] + "/", // then the partition and offset, and in the error again
		ext[otlpwire.Metrics] + "/",
	} {
		if i >= len(whys) || !strings.HasPrefix(whys[i], w) {
			t.Fatalf("dead letters %q, want one from %s", whys, w)
		}
	}
	if !strings.Contains(whys[0], "record "+ext[otlpwire.Logs]+"/") || !strings.Contains(whys[0], "malformed OTLP request") {
		t.Errorf("dead letter %q does not name the record and the fault", whys[0])
	}
	if !strings.Contains(whys[1], `header X-Scope-OrgID: invalid tenant "../../etc"`) {
		t.Errorf("dead letter %q does not name the header", whys[1])
	}

	// The topics are as the operator made them.
	details, err := adm.ListTopics(ctx, ext[:]...)
	if err != nil {
		t.Fatal(err)
	}
	confs, err := adm.DescribeTopicConfigs(ctx, ext[:]...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ext {
		if n := len(details[name].Partitions); n != 2 {
			t.Errorf("%s: %d partitions, want the 2 it was created with", name, n)
		}
		rc, err := confs.On(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && (c.Value == nil || *c.Value != retention) {
				t.Errorf("%s: retention.ms %v, want %s", name, c.MaybeValue(), retention)
			}
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	// With create_raw_topics, sluice creates what is missing.
	created := [3]string{prefix + "-new-metrics", prefix + "-new-logs", prefix + "-new-spans"}
	cfg = agentConfig(t, t.TempDir(), brokers, prefix+"-c", created, "  create_raw_topics: true")
	p, err = Start(ctx, cfg, Roles{Worker: true, AllSinks: true}, testLogger(t))
	if err != nil {
		t.Fatalf("create_raw_topics: %v", err)
	}
	defer p.Stop()
	details, err = adm.ListTopics(ctx, created[:]...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range created {
		if n := len(details[name].Partitions); n != 3 {
			t.Errorf("%s: %d partitions, want bus.partitions (3)", name, n)
		}
	}
}

// deadLetters reads want records of the dead-letter topic.
func deadLetters(t *testing.T, brokers []string, topic string, want int) []*stream.Record {
	t.Helper()
	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	c, err := bus.Consume(stream.ConsumerConfig{Group: kafkatest.Group(t, "dlq"), Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*stream.Record
	for len(out) < want {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("%d of %d dead letters: %v", len(out), want, err)
		}
		out = append(out, recs...)
	}
	return out
}
