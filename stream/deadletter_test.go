package stream_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// Dead letters the dead-letter topic refuses as too large are written
// without their value, sluice-truncated giving its size; the others as
// they are, at least once.
func TestProduceDeadLetters(t *testing.T) {
	bus := memory.New()
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: "dlq", Partitions: 1, MaxRecordBytes: 512}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{'x'}, 1000)
	dead := []*stream.Record{{Topic: "dlq", Partition: 0, Value: []byte("a")}, {Topic: "dlq", Partition: 0, Value: big}, {Topic: "dlq", Partition: 0, Value: []byte("c")}}
	n, err := stream.ProduceDeadLetters(ctx, bus, dead, nil)
	if err != nil || n != 1 {
		t.Fatalf("ProduceDeadLetters: %d stripped, %v; want 1 and no error", n, err)
	}
	got := bus.Records("dlq")
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value)+"/"+string(r.Header(stream.HeaderTruncated)))
	}
	// The memory bus, as Kafka and NATS may, wrote "a" before it refused
	// the big one: it is written again (at least once).
	want := []string{"a/", "a/", "/" + strconv.Itoa(len(big)), "c/"}
	if !slices.Equal(values, want) {
		t.Errorf("dead-letter topic holds %q, want %q", values, want)
	}
}
