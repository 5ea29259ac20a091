package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
	"github.com/sluice-dev/sluice/stream/nats"
)

// syncBuffer is a bytes.Buffer that slog may write from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func openBus(t *testing.T, yaml string) (stream.Bus, string, error) {
	t.Helper()
	cfg, err := config.Parse("sluice.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := OpenBus(ctx, cfg, log, prometheus.NewRegistry())
	if err == nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, logs.String(), err
}

// bus.embedded.token guards the embedded listener; sluice's own
// in-process connection (which created the topics) still works.
func TestEmbeddedListenerToken(t *testing.T) {
	b, logs, err := openBus(t, "bus:\n  data_dir: "+filepath.Join(t.TempDir(), "data")+"\n  embedded:\n    listen: 127.0.0.1:0\n    token: s3cret\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs, "without credentials") {
		t.Errorf("warned about missing credentials: %s", logs)
	}
	url := b.(*nats.Bus).ClientURL()
	if nc, err := natsgo.Connect(url, natsgo.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without the token connected")
	}
	nc, err := natsgo.Connect(url, natsgo.Token("s3cret"), natsgo.MaxReconnects(0))
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("in-process connection: %v", err)
	}
}

// A loopback listener without credentials starts, with a warning.
func TestEmbeddedListenerWithoutCredentialsWarns(t *testing.T) {
	_, logs, err := openBus(t, "bus:\n  data_dir: "+filepath.Join(t.TempDir(), "data")+"\n  embedded:\n    listen: 127.0.0.1:0\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "without credentials") {
		t.Errorf("no warning about the open listener in %q", logs)
	}
}

// bus.nats.replicas reaches the streams sluice creates: a single server
// refuses 3, naming the key.
func TestNATSReplicasReachTheServer(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	_, _, err = openBus(t, "bus:\n  kind: nats\n  nats:\n    url: "+srv.ClientURL()+"\n    replicas: 3\n")
	if err == nil || !strings.Contains(err.Error(), "bus.nats.replicas") {
		t.Fatalf("OpenBus with 3 replicas on one server: %v", err)
	}
}

// embeddedConfig is testConfig with bus.embedded.max_store set.
func embeddedConfig(t *testing.T, dir, maxStore string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`
bus:
  kind: embedded
  data_dir: %q
  partitions: 1
  embedded:
    max_store: %s
ingest:
  grpc_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
sinks:
  - name: archive
    type: file
    signals: [logs]
    path: %q
log:
  level: error
`, filepath.Join(dir, "data"), maxStore, filepath.Join(dir, "out"))
	cfg := loadYAML(t, dir, y)
	return cfg
}

// A full embedded store: ingest answers 503 with Retry-After, never 200
// for what it could not store; after max_store is raised and sluice
// restarted, requests succeed again, and exactly the items answered 200
// reach the sink.
func TestEmbeddedStoreFullAnswers503(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(context.Background(), embeddedConfig(t, dir, "256KiB"), Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	shape := otlptest.Shape{Resources: 2, Items: 50, Points: 1}
	post := func(p *Process, seed int) *http.Response {
		shape.Seed = seed
		resp, err := http.Post("http://"+p.HTTPAddr()+"/v1/logs", "application/x-protobuf",
			bytes.NewReader(otlptest.Request(otlpwire.Logs, shape)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	var accepted, refused int
	seed := 0
	for ; refused == 0 && seed < 2000; seed++ {
		switch resp := post(p, seed); resp.StatusCode {
		case http.StatusOK:
			accepted += shape.ItemCount(otlpwire.Logs)
		case http.StatusServiceUnavailable:
			refused++
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		default:
			t.Fatalf("answer %d", resp.StatusCode)
		}
	}
	if refused == 0 || accepted == 0 {
		t.Fatalf("%d items accepted, %d requests refused: the store never filled", accepted, refused)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	p, err = Start(context.Background(), embeddedConfig(t, dir, "64MiB"), Roles{Ingest: true, Worker: true, AllSinks: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	for range 5 {
		if resp := post(p, seed); resp.StatusCode != http.StatusOK {
			t.Fatalf("after raising max_store: answer %d", resp.StatusCode)
		}
		seed++
		accepted += shape.ItemCount(otlpwire.Logs)
	}
	t.Logf("%d log records answered 200 (5 requests after the restart), %d requests refused before", accepted, refused)
	waitForOutput(t, filepath.Join(dir, "out"), [3]int{otlpwire.Logs: accepted})
}

// The admin /metrics of a process on the embedded bus shows how full its
// store is: the limit is max_store, and what ingest wrote is in the raw
// logs stream and in the store.
func TestEmbeddedStoreGauges(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(context.Background(), embeddedConfig(t, dir, "64MiB"), Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	body := otlptest.Request(otlpwire.Logs, otlptest.Shape{Resources: 2, Items: 50, Points: 1})
	for range 3 {
		resp, err := http.Post("http://"+p.HTTPAddr()+"/v1/logs", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answer %d", resp.StatusCode)
		}
	}
	admin := "http://" + p.AdminAddr()
	if limit, _ := metricSum(t, admin, "sluice_bus_store_limit_bytes"); limit != 64<<20 {
		t.Errorf("sluice_bus_store_limit_bytes = %v, want %v", limit, 64<<20)
	}
	raw, ok := metricSum(t, admin, `sluice_bus_stream_bytes{stream="sluice_raw_logs"}`)
	if !ok || raw < float64(len(body)) {
		t.Errorf("sluice_bus_stream_bytes of the raw logs: %v (present: %v), want at least one request's %d bytes", raw, ok, len(body))
	}
	if used, _ := metricSum(t, admin, "sluice_bus_store_used_bytes"); used < raw {
		t.Errorf("sluice_bus_store_used_bytes = %v, below the raw logs stream's %v", used, raw)
	}
}

// bus.max_hold reaches the embedded bus: a batch one member of a group
// holds past it, uncommitted, goes to the other member.
func TestMaxHoldReachesTheBus(t *testing.T) {
	b, _, err := openBus(t, fmt.Sprintf("bus:\n  kind: embedded\n  data_dir: %q\n  partitions: 1\n  ack_wait: 500ms\n  max_hold: 1s\n", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	const topic = "sluice.raw.logs"
	var recs []*stream.Record
	for i := range 3 {
		recs = append(recs, &stream.Record{Topic: topic, Partition: -1, Value: fmt.Appendf(nil, "r%d", i)})
	}
	bustest.Produce(t, b, recs...)
	cfg := stream.ConsumerConfig{Group: "g", Topics: []string{topic}}
	holder := bustest.Consume(t, b, cfg)
	bustest.PollN(t, holder, 3, 10*time.Second) // and never committed
	other := bustest.Consume(t, b, cfg)
	bustest.Commit(t, other, bustest.PollN(t, other, 3, 20*time.Second)...)
}

// The dead-letter topic is created with worker.dead_letter_max_bytes, the
// other topics with bus.max_record_bytes; the worker gets its spec.
func TestTopicSpecsDeadLetterMaxBytes(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("worker:\n  dead_letter_max_bytes: 64KiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	dlq := stream.Topics{Prefix: cfg.Bus.TopicPrefix}.DLQ()
	for _, spec := range TopicSpecs(cfg) {
		want := int32(cfg.Bus.MaxRecordBytes)
		if spec.Name == dlq {
			want = 64 << 10
		}
		if spec.MaxRecordBytes != want {
			t.Errorf("topic %s: max record bytes %d, want %d", spec.Name, spec.MaxRecordBytes, want)
		}
	}
	// The worker creates the DLQ again as it was created at start.
	if spec := deadLetterSpec(cfg); spec.Name != dlq || spec.MaxRecordBytes != 64<<10 || spec.Partitions != cfg.Bus.Partitions {
		t.Errorf("the worker's dead-letter topic %+v", spec)
	}
}
