package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// TestGroupCommitKafka: many concurrent one-point requests into a real Kafka
// broker become few records, every point arrives once, and each client's
// requests, sent one after the other, stay in order in their partition.
func TestGroupCommitKafka(t *testing.T) {
	bus, err := kafka.New(kafka.Config{Brokers: kafkatest.Brokers(t), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	topics := stream.Topics{Prefix: kafkatest.Topic(t, "ingest")}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: topics.Raw(otlpwire.Metrics), Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	ing, err := New(Config{Topics: topics, Logger: quietLogger()}, bus)
	if err != nil {
		t.Fatal(err)
	}
	const clients, perClient = 48, 40
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for seq := range perClient {
				if _, err := ing.Export(ctx, otlpwire.Metrics, "", pointRequest(t, c, seq)); err != nil {
					t.Errorf("client %d, request %d: %v", c, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	cons, err := bus.Consume(stream.ConsumerConfig{Group: kafkatest.Group(t, "g"), Topics: []string{topics.Raw(otlpwire.Metrics)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	next := map[int]int{}     // client: next seq expected
	partOf := map[int]int32{} // client: its partition
	records, items := 0, 0
	for items < clients*perClient {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d items: %v", items, clients*perClient, err)
		}
		for _, r := range recs {
			records++
			for _, s := range senders(t, r.Value) {
				var c, seq int
				fmt.Sscanf(s, "c%d/%d", &c, &seq)
				if p, ok := partOf[c]; ok && p != r.Partition {
					t.Fatalf("client %d in partitions %d and %d", c, p, r.Partition)
				}
				partOf[c] = r.Partition
				if seq != next[c] {
					t.Fatalf("client %d: request %d at %d[%d], want request %d: order not kept", c, seq, r.Partition, r.Offset, next[c])
				}
				next[c]++
				items++
			}
		}
	}
	t.Logf("%d one-point requests in %d records", items, records)
	if records > items/2 {
		t.Fatalf("%d requests in %d records: concurrent requests were not coalesced", items, records)
	}
}
