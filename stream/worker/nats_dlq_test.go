package worker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
	snats "github.com/sluice-dev/sluice/stream/nats"
	"github.com/sluice-dev/sluice/stream/stage"
)

// natsRig is a worker's bus on the embedded NATS server, and a second
// connection to the server that acts as the operator and as an outside
// client: it deletes streams, publishes raw records and reads what the
// group has committed without joining it.
type natsRig struct {
	bus *snats.Bus
	js  jetstream.JetStream
	reg *prometheus.Registry
}

func newNATSRig(t *testing.T, ecfg snats.EmbeddedConfig, specs ...stream.TopicSpec) *natsRig {
	t.Helper()
	ecfg.DataDir = t.TempDir()
	ecfg.Listen = "127.0.0.1:0"
	bus, err := snats.NewEmbedded(ecfg, snats.Config{Logger: bustest.Logger(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	if err := bus.EnsureTopics(context.Background(), specs...); err != nil {
		t.Fatal(err)
	}
	nc, err := natsgo.Connect(bus.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &natsRig{bus: bus, js: js, reg: prometheus.NewRegistry()}
}

// logsTopics are the topics of a logs-only worker, the DLQ taking dlqMax
// bytes (0: no limit of its own).
func logsTopics(dlqMax int32) []stream.TopicSpec {
	return []stream.TopicSpec{{Name: topics.Raw(otlpwire.Logs), Partitions: 1}, {Name: topics.Processed(otlpwire.Logs), Partitions: 1},
		{Name: topics.DLQ(), Partitions: 1, MaxRecordBytes: dlqMax}}
}

// start runs a logs worker until the returned function stops it.
func (r *natsRig) start(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	cfg.Topics = topics
	cfg.Signals = []otlpwire.Signal{otlpwire.Logs}
	cfg.Allocator = arrowpool.NewPoisoned()
	cfg.Metrics = stage.NewMetrics(r.reg)
	w, err := New(r.bus, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// msgs is the record count of topic's stream (0 when it does not exist).
func (r *natsRig) msgs(t *testing.T, topic string) uint64 {
	t.Helper()
	s, err := r.js.Stream(context.Background(), streamOf(topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// lag is the raw records the worker group has not committed, read from
// its durable consumer's state.
func (r *natsRig) lag(t *testing.T) uint64 {
	t.Helper()
	c, err := r.js.Consumer(context.Background(), streamOf(topics.Raw(otlpwire.Logs)), "sluice-worker")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending + uint64(info.NumAckPending)
}

// handleErrors is sluice_stage_handle_errors_total of the worker.
func (r *natsRig) handleErrors(t *testing.T) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sluice_stage_handle_errors_total" {
			for _, m := range mf.GetMetric() {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// read returns every record of topic, read by a group of its own.
func (r *natsRig) read(t *testing.T, topic, group string) []*stream.Record {
	t.Helper()
	n := int(r.msgs(t, topic))
	if n == 0 {
		return nil
	}
	c := bustest.Consume(t, r.bus, stream.ConsumerConfig{Group: group, Topics: []string{topic}})
	return bustest.PollN(t, c, n, 10*time.Second)
}

// items counts the items of processed records.
func processedLogItems(t *testing.T, recs []*stream.Record) int {
	t.Helper()
	n := 0
	for _, r := range recs {
		pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		k, err := otlpwire.Count(otlpwire.Logs, pb)
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}

func streamOf(topic string) string {
	return string(bytes.ReplaceAll([]byte(topic), []byte("."), []byte("_")))
}

// waitFor polls cond until it holds, failing the test after a minute (a
// bound on a hang, not an assertion on time).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// logsRequest is a valid logs request and its item count.
func logsRequest(seed int) ([]byte, int) {
	shape := otlptest.Shape{Resources: 2, Items: 3, Seed: seed}
	return otlptest.Request(otlpwire.Logs, shape), shape.ItemCount(otlpwire.Logs)
}

// notOTLP is a raw record value the decoder refuses: a truncated field.
var notOTLP = []byte{0x0a, 0xff, 0xff}

// The DLQ stream deleted while the worker runs: the worker creates it
// again (Config.DeadLetterTopic) and goes on. A DLQ that refuses every
// write (sealed): the dead letter is retried, with backoff, without
// writing the valid records of its batch again with each attempt (on
// JetStream they are stored while the dead letter fails), and the raw
// positions stay uncommitted; once the DLQ takes records (here the
// operator deletes the sealed stream, and the worker creates it again),
// the dead letter is written once, the positions committed, and newer
// records flow. Items in and out are counted.
func TestNATSDeadLetterStreamMissingOrRefusing(t *testing.T) {
	specs := logsTopics(0)
	r := newNATSRig(t, snats.EmbeddedConfig{}, specs...)
	ctx := context.Background()
	checks := 0
	processed := func() int { // every processed item, read by a group of its own
		checks++
		return processedLogItems(t, r.read(t, topics.Processed(otlpwire.Logs), "check-"+strconv.Itoa(checks)))
	}
	produce := func(values ...[]byte) {
		t.Helper()
		for _, v := range values {
			if err := r.bus.Produce(ctx, raw(otlpwire.Logs, 0, "team-a", v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	v0, n0 := logsRequest(0)
	v1, n1 := logsRequest(1)
	v2, n2 := logsRequest(2)
	v3, n3 := logsRequest(3)
	v4, n4 := logsRequest(4)
	dlq := streamOf(topics.DLQ())

	// Deleted: created again by the worker.
	if err := r.js.DeleteStream(ctx, dlq); err != nil {
		t.Fatal(err)
	}
	produce(v0, notOTLP, v1)
	stop := r.start(t, Config{DeadLetterTopic: specs[2]})
	waitFor(t, "the dead letter and the raw positions", func() bool { return r.msgs(t, topics.DLQ()) == 1 && r.lag(t) == 0 })
	if got := processed(); got != n0+n1 {
		t.Errorf("DLQ deleted: %d items processed, want %d (each once)", got, n0+n1)
	}

	// Sealed: every write refused until it is deleted.
	s, err := r.js.Stream(ctx, dlq)
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.CachedInfo().Config
	sealed.Sealed = true
	if _, err := r.js.UpdateStream(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	errs := r.handleErrors(t)
	produce(v2, []byte("not OTLP either"), v3)
	waitFor(t, "three refused attempts", func() bool { return r.handleErrors(t) >= errs+3 })
	if got := processed(); got != n0+n1+n2+n3 {
		t.Errorf("DLQ sealed: %d items processed, want %d (each once)", got, n0+n1+n2+n3)
	}
	if l := r.lag(t); l != 3 {
		t.Errorf("DLQ sealed: %d raw records uncommitted, want 3", l)
	}
	if err := r.js.DeleteStream(ctx, dlq); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter and the raw positions", func() bool { return r.msgs(t, topics.DLQ()) == 1 && r.lag(t) == 0 })
	produce(v4)
	waitFor(t, "the newer record", func() bool { return r.lag(t) == 0 })
	stop()
	if got, want := processed(), n0+n1+n2+n3+n4; got != want {
		t.Errorf("%d items processed, want %d (each once)", got, want)
	}
	dead := r.read(t, topics.DLQ(), "check-dlq")
	if len(dead) != 1 || string(dead[0].Value) != "not OTLP either" {
		t.Fatalf("%d dead letters in the new DLQ, want 1 holding the second bad record", len(dead))
	}
}

// The JetStream store full (max_store): the worker's writes fail with a
// retryable error and are retried; nothing is committed meanwhile. Once
// space is freed (here the records that filled it are deleted), the valid
// records are processed once, the bad one dead-lettered once, and the
// positions committed. Items in and out are counted.
func TestNATSStoreFull(t *testing.T) {
	r := newNATSRig(t, snats.EmbeddedConfig{MaxStore: 256 << 10}, logsTopics(0)...)
	ctx := context.Background()
	v0, n0 := logsRequest(0)
	v1, n1 := logsRequest(1)
	if err := r.bus.Produce(ctx, raw(otlpwire.Logs, 0, "team-a", v0), raw(otlpwire.Logs, 0, "team-a", notOTLP), raw(otlpwire.Logs, 0, "team-a", v1)); err != nil {
		t.Fatal(err)
	}
	const filler = "filler"
	if err := r.bus.EnsureTopics(ctx, stream.TopicSpec{Name: filler, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 0; full == nil && i < 10000; i++ {
		full = r.bus.Produce(ctx, &stream.Record{Topic: filler, Partition: 0, Value: bytes.Repeat([]byte{'x'}, 4096)})
	}
	if !errors.Is(full, stream.ErrUnavailable) {
		t.Fatalf("filling the store: %v, want stream.ErrUnavailable", full)
	}
	stop := r.start(t, Config{})
	waitFor(t, "three refused attempts", func() bool { return r.handleErrors(t) >= 3 })
	if l := r.lag(t); l != 3 {
		t.Errorf("while the store is full: %d raw records uncommitted, want 3", l)
	}

	if err := r.js.DeleteStream(ctx, filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter and the raw positions", func() bool { return r.msgs(t, topics.DLQ()) == 1 && r.lag(t) == 0 })
	v2, n2 := logsRequest(2)
	if err := r.bus.Produce(ctx, raw(otlpwire.Logs, 0, "team-a", v2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the newer record committed", func() bool { return r.lag(t) == 0 && r.msgs(t, topics.Processed(otlpwire.Logs)) >= 2 })
	stop()
	if got, want := processedLogItems(t, r.read(t, topics.Processed(otlpwire.Logs), "check")), n0+n1+n2; got != want {
		t.Errorf("%d items processed, want %d (each once)", got, want)
	}
	if dlq := r.read(t, topics.DLQ(), "check-dlq"); len(dlq) != 1 || !bytes.Equal(dlq[0].Value, notOTLP) {
		t.Fatalf("%d dead letters, want 1 holding the bad record", len(dlq))
	}
}

// An outside client publishes raw records as large as the raw topic takes
// to JetStream: their dead letters, with the headers saying why, are
// larger than the DLQ takes. With worker.dead_letter_max_bytes set to the
// DLQ's limit they are truncated to fit; left at its default (larger than
// this DLQ takes), the DLQ refuses them and they are written without their
// value. Either way the worker does not stop on the partition: the valid
// records beside them are processed once and every position is committed.
func TestNATSOversizeFromOutsideProducer(t *testing.T) {
	const rawMax, dlqMax = 64 << 10, 16 << 10
	for _, tc := range []struct {
		name    string
		dlqMax  int
		wantLen func(n int) bool
	}{
		{"dead_letter_max_bytes", dlqMax, func(n int) bool { return n > 0 && n < dlqMax }},
		{"default", 0, func(n int) bool { return n == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specs := logsTopics(dlqMax)
			specs[0].MaxRecordBytes = rawMax
			r := newNATSRig(t, snats.EmbeddedConfig{}, specs...)
			ctx := context.Background()
			v0, n0 := logsRequest(0)
			v1, n1 := logsRequest(1)
			big := append([]byte{0x0a, 0xff, 0xff, 0x03}, bytes.Repeat([]byte{'x'}, rawMax-200)...)
			subject := topics.Raw(otlpwire.Logs) + ".0"
			for _, v := range [][]byte{v0, big, v1, big} {
				msg := natsgo.NewMsg(subject)
				msg.Data = v
				msg.Header.Set(stream.HeaderTenant, "team-a")
				msg.Header.Set(stream.HeaderSignal, "logs")
				if _, err := r.js.PublishMsg(ctx, msg); err != nil {
					t.Fatal(err)
				}
			}
			stop := r.start(t, Config{MaxRecordBytes: rawMax, DeadLetterMaxBytes: tc.dlqMax})
			waitFor(t, "the dead letters and the raw positions", func() bool { return r.msgs(t, topics.DLQ()) >= 2 && r.lag(t) == 0 })
			stop()
			if got := processedLogItems(t, r.read(t, topics.Processed(otlpwire.Logs), "check")); got != n0+n1 {
				t.Errorf("%d items processed, want %d (each once)", got, n0+n1)
			}
			dlq := r.read(t, topics.DLQ(), "check-dlq")
			if len(dlq) != 2 {
				t.Fatalf("%d dead letters, want 2", len(dlq))
			}
			for _, d := range dlq {
				if h := string(d.Header(HeaderTruncated)); h != strconv.Itoa(len(big)) || !tc.wantLen(len(d.Value)) || !bytes.HasPrefix(big, d.Value) {
					t.Errorf("dead letter of %d bytes, %s %q", len(d.Value), HeaderTruncated, h)
				}
			}
			if l := r.lag(t); l != 0 {
				t.Errorf("%d raw records uncommitted after the run", l)
			}
		})
	}
}
