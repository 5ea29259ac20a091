package worker

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
)

// TestEmptyScopeTheDecoderRefuses: a raw record from an outside producer
// whose only fault is a scope without log records and with an attribute
// key that is not UTF-8. The decoder refuses the record, but it holds no
// bad item: every item is processed, the empty scope left out, nothing
// dead-lettered.
func TestEmptyScopeTheDecoderRefuses(t *testing.T) {
	shape := otlptest.Shape{Resources: 2, Items: 3}
	req := proto.Clone(otlptest.Logs(shape)).(*collogs.ExportLogsServiceRequest)
	rl := req.ResourceLogs[1]
	rl.ScopeLogs = append(rl.ScopeLogs, &logs.ScopeLogs{Scope: &common.InstrumentationScope{
		Name:       "empty",
		Attributes: []*common.KeyValue{{Key: "BAD\xff", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "v"}}}},
	}})
	body, err := proto.MarshalOptions{}.Marshal(req)
	if err == nil {
		t.Fatal("proto.Marshal wrote invalid UTF-8") // it refuses; write it by hand below
	}
	rl.ScopeLogs[len(rl.ScopeLogs)-1].Scope.Attributes[0].Key = "BADXY"
	if body, err = proto.Marshal(req); err != nil {
		t.Fatal(err)
	}
	body = bytes.Replace(body, []byte("BADXY"), []byte("BAD\xff\xfe"), 1)

	bus := newBus(t)
	if err := bus.Produce(context.Background(), raw(otlpwire.Logs, 0, "team-a", body)); err != nil {
		t.Fatal(err)
	}
	total := shape.ItemCount(otlpwire.Logs)
	run(t, bus, nil, Config{}, func() bool { return lag(t, bus) == 0 })
	if got, _ := processedItems(t, bus, otlpwire.Logs); got != total {
		t.Errorf("%d items processed, want %d", got, total)
	}
	if n := len(bus.Records(topics.DLQ())); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}
