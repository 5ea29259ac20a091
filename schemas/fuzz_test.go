package schemas

import (
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// FuzzRoundTrip: any input either fails with ErrMalformed or ErrUnsupported
// or round-trips to a request equal to what proto.Unmarshal makes of it
// (request-level unknown fields aside, see README).
func FuzzRoundTrip(f *testing.F) {
	for _, sig := range otlpwire.Signals {
		f.Add(uint8(sig), otlptest.Request(sig, otlptest.Shape{Resources: 1, Items: 2, Points: 2}))
		g := otlptest.NewGen(7+uint64(sig), otlptest.GenOptions{})
		for range 5 {
			f.Add(uint8(sig), g.Request(sig))
		}
	}
	f.Fuzz(func(t *testing.T, s uint8, body []byte) {
		sig := otlpwire.Signal(s % 3)
		b := NewBuilder(sig, memory.DefaultAllocator)
		defer b.Release()
		_, err := b.Append(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		batch := b.Build()
		defer batch.Release()
		out, err := ToOTLP(batch, nil)
		if err != nil {
			t.Fatalf("ToOTLP of a built batch: %v", err)
		}
		want := otlpwire.NewRequest(sig)
		if proto.Unmarshal(body, want) != nil {
			return // we accepted what protobuf rejects (e.g. deeper nesting); nothing to compare
		}
		want.ProtoReflect().SetUnknown(nil)
		got := otlpwire.NewRequest(sig)
		if err := proto.Unmarshal(out, got); err != nil {
			t.Fatalf("output does not unmarshal: %v", err)
		}
		if !proto.Equal(want, got) {
			t.Fatalf("round trip differs")
		}
	})
}
