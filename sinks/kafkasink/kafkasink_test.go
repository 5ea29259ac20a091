package kafkasink

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"

	"google.golang.org/protobuf/proto"

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

func input(sig otlpwire.Signal, seed int) proto.Message {
	return otlptest.Message(sig, otlptest.Shape{Resources: 2, Items: 3, Points: 2, Seed: seed})
}

// arrowRecord builds a processed record exactly as the worker does.
func arrowRecord(t *testing.T, sig otlpwire.Signal, m proto.Message, tenant string) *stream.Record {
	t.Helper()
	pb, _ := proto.Marshal(m)
	b := schemas.NewBuilder(sig, nil)
	defer b.Release()
	if _, err := b.Append(pb); err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	var ipc bytes.Buffer
	if err := schemas.WriteBatch(&ipc, batch); err != nil {
		t.Fatal(err)
	}
	return &stream.Record{Topic: "sluice.processed." + sig.String(), Key: []byte("k-" + sig.String()), Value: ipc.Bytes(), Headers: []stream.Header{
		{Key: stream.HeaderSignal, Value: []byte(sig.String())},
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
		{Key: stream.HeaderTenant, Value: []byte(tenant)},
	}}
}

func TestRecordsArriveAsOTLPProtobuf(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topics := map[string]string{}
	for _, sig := range otlpwire.Signals {
		topics[sig.String()] = kafkatest.Topic(t, "otlp-"+sig.String())
	}
	s, err := New(Config{Brokers: brokers, Topics: topics, Key: "source", CreateTopics: true, Partitions: 1}, "k", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recs []*stream.Record
	want := map[string][]proto.Message{}
	for seed := range 3 {
		for _, sig := range otlpwire.Signals {
			m := input(sig, seed)
			recs = append(recs, arrowRecord(t, sig, m, "team-a"))
			want[topics[sig.String()]] = append(want[topics[sig.String()]], m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounds a hang; not an assertion
	defer cancel()
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}

	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	var names []string
	for _, n := range topics {
		names = append(names, n)
	}
	c, err := bus.Consume(stream.ConsumerConfig{Group: kafkatest.Group(t, "check"), Topics: names, Start: stream.Start{Kind: stream.StartEarliest}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[string][]*stream.Record{}
	for n := 0; n < len(recs); {
		polled, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		for _, r := range polled {
			got[r.Topic] = append(got[r.Topic], r)
			n++
		}
	}
	for _, sig := range otlpwire.Signals {
		topic := topics[sig.String()]
		if len(got[topic]) != 3 {
			t.Fatalf("%s: %d records, want 3", topic, len(got[topic]))
		}
		for i, r := range got[topic] {
			m := otlpwire.NewRequest(sig)
			if err := proto.Unmarshal(r.Value, m); err != nil {
				t.Fatalf("%s record %d: %v", topic, i, err)
			}
			if !proto.Equal(m, want[topic][i]) {
				t.Errorf("%s record %d differs from the input", topic, i)
			}
			if string(r.Header(stream.HeaderTenant)) != "team-a" || string(r.Key) != "k-"+sig.String() {
				t.Errorf("%s record %d: tenant %q, key %q", topic, i, r.Header(stream.HeaderTenant), r.Key)
			}
		}
	}
}

// A record with an item that cannot fit in max_record_bytes is rejected
// (before anything is sent: no broker needed).
func TestTooLargeItemsAreRejected(t *testing.T) {
	s, err := New(Config{Brokers: []string{"127.0.0.1:1"}, MaxRecordBytes: 1024}, "k", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := otlptest.Message(otlpwire.Logs, otlptest.Shape{Resources: 1, Items: 1}).(*collogs.ExportLogsServiceRequest)
	m.ResourceLogs[0].ScopeLogs[0].LogRecords[0].Body = &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: strings.Repeat("x", 2000)}}
	r := arrowRecord(t, otlpwire.Logs, m, "")
	var rej *sinks.RejectedError
	if err := s.Write(context.Background(), []*stream.Record{r}); !errors.As(err, &rej) || len(rej.Records) != 1 || !strings.Contains(rej.Reason, "even alone") {
		t.Errorf("got %v", err)
	}
}

// A record larger than max_record_bytes is cut along resource boundaries
// into records that fit, which together hold the input.
func TestLargeRecordsAreCut(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "otlp-cut")
	m := input(otlpwire.Traces, 0).(*coltrace.ExportTraceServiceRequest)
	limit := 0 // a resource fits, the whole request does not
	for _, rs := range m.ResourceSpans {
		limit = max(limit, proto.Size(rs)+200)
	}
	if proto.Size(m) <= limit-200 {
		t.Fatalf("the input (%d bytes) fits in %d: nothing to cut", proto.Size(m), limit)
	}
	s, err := New(Config{Brokers: brokers, Topics: map[string]string{"traces": topic}, CreateTopics: true, Partitions: 1, MaxRecordBytes: config.ByteSize(max(limit, 1024))}, "k", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounds a hang; not an assertion
	defer cancel()
	if err := s.Write(ctx, []*stream.Record{arrowRecord(t, otlpwire.Traces, m, "team-a")}); err != nil {
		t.Fatal(err)
	}
	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	c, err := bus.Consume(stream.ConsumerConfig{Group: kafkatest.Group(t, "check"), Topics: []string{topic}, Start: stream.Start{Kind: stream.StartEarliest}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := &coltrace.ExportTraceServiceRequest{}
	var parts int
	for len(got.ResourceSpans) < len(m.ResourceSpans) {
		polled, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", parts, err)
		}
		for _, r := range polled {
			part := &coltrace.ExportTraceServiceRequest{}
			if err := proto.Unmarshal(r.Value, part); err != nil {
				t.Fatal(err)
			}
			got.ResourceSpans = append(got.ResourceSpans, part.ResourceSpans...)
			parts++
		}
	}
	if parts < 2 || !proto.Equal(got, m) {
		t.Errorf("%d records holding %d resources; equal to the input: %v", parts, len(got.ResourceSpans), proto.Equal(got, m))
	}
}

func TestTopicsAndConfig(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("sinks:\n  - name: out\n    type: kafka\n    signals: [metrics, logs, traces]\n    brokers: [k:9092]\n    compression: lz4\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sinks.Build(cfg, &cfg.Sinks[0], sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ks := s.(*Sink)
	if ks.topics != [3]string{"otlp_metrics", "otlp_logs", "otlp_spans"} || ks.cfg.ClientID != "sluice-sink-out" {
		t.Errorf("topics %v, client id %s", ks.topics, ks.cfg.ClientID)
	}
	s.Close()
	for yaml, want := range map[string]string{
		"sinks:\n  - name: a\n    type: kafka\n    signals: [logs]\n":                                                                                                 `sinks[0].brokers: the kafka sink needs brokers`,
		"sinks:\n  - name: a\n    type: kafka\n    signals: [logs]\n    brokers: [k:1]\n    topics: {log: x}\n":                                                       `sinks[0].topics.log: unknown signal "log"`,
		"sinks:\n  - name: a\n    type: kafka\n    signals: [logs]\n    brokers: [k:1]\n    key: trace\n":                                                             `c.yaml:6:10: sinks[0].key: key "trace"`,
		"sinks:\n  - name: a\n    type: kafka\n    signals: [logs]\n    brokers: [k:1]\n    acks: all\n":                                                              `c.yaml:6:5: sinks[0].acks: unknown key "acks"`,
		"sinks:\n  - name: a\n    type: kafka\n    signals: [logs]\n    brokers: [k:1]\n    sasl: {mechanism: PLAIN, username: u, password: p, password_file: /pw}\n": `c.yaml:6:71: sinks[0].sasl.password_file: password and password_file are exclusive`,
		"sinks:\n  - name: a\n    type: kafka\n    signals: [logs]\n    brokers: [k:1]\n    sasl: {mechanism: PLAIN, username: u, password_file: /nonexistent/pw}\n":  `c.yaml:6:58: sinks[0].sasl.password_file: open /nonexistent/pw: no such file or directory`,
	} {
		cfg, err := config.Parse("c.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := sinks.Check(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}
