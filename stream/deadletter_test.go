package stream_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// Dead letters the dead-letter topic refuses as too large are written
// without their value, sluice-truncated giving its size; the others as
// they are, each once.
func TestProduceDeadLetters(t *testing.T) {
	bus := memory.New()
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: "dlq", Partitions: 1, MaxRecordBytes: 512}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{'x'}, 1000)
	dead := []*stream.Record{{Topic: "dlq", Partition: 0, Value: []byte("a")}, {Topic: "dlq", Partition: 0, Value: big}, {Topic: "dlq", Partition: 0, Value: []byte("c")}}
	n, err := stream.ProduceDeadLetters(ctx, bus, dead)
	if err != nil || n != 1 {
		t.Fatalf("ProduceDeadLetters: %d stripped, %v; want 1 and no error", n, err)
	}
	got := bus.Records("dlq")
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value)+"/"+string(r.Header(stream.HeaderTruncated)))
	}
	if len(got) != 3 || values[0] != "a/" || values[1] != "/"+strconv.Itoa(len(big)) || values[2] != "c/" {
		t.Errorf("dead-letter topic holds %q, want a, the big one without its value, c", values)
	}
}
