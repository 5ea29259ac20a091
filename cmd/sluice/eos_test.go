package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

// A worker with exactly_once on Kafka, killed with SIGKILL while it
// processes: after a restart with the same transactional id, the processed
// topic holds every raw item exactly once.
func TestKilledWorkerExactlyOnce(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.Topic(t, "eos")
	dir := t.TempDir()
	admin := testproc.FreeAddr(t)
	cfg := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `
bus:
  kind: kafka
  topic_prefix: %s
  partitions: 3
  kafka:
    brokers: [%q]
    session_timeout: 6s
ingest:
  grpc_listen: ""
  http_listen: 127.0.0.1:0
admin:
  listen: %s
worker:
  group: %s-worker
  exactly_once: true
  transactional_id: %s-tx
rules:
  dir: %q
log:
  level: warn
`, prefix, brokers[0], admin, prefix, prefix, filepath.Join(dir, "no-rules")), 0o644)

	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	topics := stream.Topics{Prefix: prefix}
	ctx := context.Background()
	var specs []stream.TopicSpec
	for _, s := range otlpwire.Signals {
		specs = append(specs, stream.TopicSpec{Name: topics.Raw(s), Partitions: 3}, stream.TopicSpec{Name: topics.Processed(s), Partitions: 3})
	}
	bus.EnsureTopics(ctx, append(specs, stream.TopicSpec{Name: topics.DLQ(), Partitions: 3})...)

	// 3000 requests of 10 log records, one resource each, marked by seed,
	// written over about three seconds while the worker runs: the first
	// hundred, then, once the worker has processed records (it joined its
	// group; the broker delays a group's first rebalance by 3 s), the rest.
	const requests = 3000
	produced, running := make(chan error, 1), make(chan struct{})
	go func() {
		shape := otlptest.Shape{Resources: 1, Items: 10}
		for i := 0; i < requests; i += 100 {
			if i == 100 {
				<-running
			}
			var raw []*stream.Record
			for j := i; j < i+100; j++ {
				shape.Seed = j
				raw = append(raw, &stream.Record{Topic: topics.Raw(otlpwire.Logs), Partition: int32(j % 3), Value: otlptest.Request(otlpwire.Logs, shape),
					Headers: []stream.Header{{Key: stream.HeaderSignal, Value: []byte("logs")}, {Key: stream.HeaderTenant, Value: []byte("t")}}})
			}
			if err := bus.Produce(ctx, raw...); err != nil {
				produced <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		produced <- nil
	}()

	worker := func() *role {
		cmd, _ := sluiceRole(t, "worker -c "+cfg, admin)
		return cmd
	}

	// Read the processed topic (read committed) as it grows.
	c, err := bus.Consume(stream.ConsumerConfig{Group: prefix + "-reader", Topics: []string{topics.Processed(otlpwire.Logs)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	perResource := map[string]int{}
	items := 0
	read := func(until func() bool, timeout time.Duration) {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for !until() {
			recs, err := c.Poll(rctx)
			if err != nil {
				return
			}
			for _, r := range recs {
				pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := otlpwire.Count(otlpwire.Logs, pb)
				items += n
				countMarkers(t, pb, perResource)
			}
		}
	}

	first := worker()
	read(func() bool { return items > 0 }, 60*time.Second)
	close(running)
	time.Sleep(500 * time.Millisecond) // in the middle of the stream
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	killedAt := items
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	worker()
	read(func() bool { return items >= requests*10 }, 120*time.Second)
	read(func() bool { return false }, 2*time.Second) // anything more would be a duplicate
	if items != requests*10 {
		t.Errorf("%d log records processed, want %d exactly", items, requests*10)
	}
	for m, n := range perResource {
		if n != 10 {
			t.Errorf("request %s: %d records in the processed topic, want 10", m, n)
			break
		}
	}
	if len(perResource) != requests {
		t.Errorf("%d distinct requests processed, want %d", len(perResource), requests)
	}
	if killedAt >= requests*10 {
		t.Errorf("the worker was killed only after it had done everything")
	}
	t.Logf("killed after %d of %d records were read back", killedAt, requests*10)
}

// countMarkers adds the log records of every resource of pb under the
// resource's service.instance.id, which names the request it came in.
func countMarkers(t *testing.T, pb []byte, into map[string]int) {
	var req collogs.ExportLogsServiceRequest
	if err := proto.Unmarshal(pb, &req); err != nil {
		t.Fatal(err)
	}
	for _, rl := range req.ResourceLogs {
		id := ""
		for _, kv := range rl.GetResource().GetAttributes() {
			if kv.Key == "service.instance.id" {
				id = kv.GetValue().GetStringValue()
			}
		}
		for _, sl := range rl.ScopeLogs {
			into[id] += len(sl.LogRecords)
		}
	}
}
