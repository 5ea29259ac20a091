package schemas

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// FuzzRoundTrip: any input either fails with ErrMalformed or ErrUnsupported
// or round-trips to a request equal to what proto.Unmarshal makes of it
// (request-level unknown fields aside, see README); the data points' sets
// numbered as they were decoded are those FindItemAttrSets finds.
func FuzzRoundTrip(f *testing.F) {
	for _, sig := range otlpwire.Signals {
		f.Add(uint8(sig), otlptest.Request(sig, otlptest.Shape{Resources: 1, Items: 2, Points: 2}))
		g := otlptest.NewGen(7+uint64(sig), otlptest.GenOptions{})
		for range 5 {
			f.Add(uint8(sig), g.Request(sig))
		}
	}
	// Sets that repeat, in the usual encodings and others.
	a, n := kvBytes("a", []byte{0x0a, 1, 'x'}), kvBytes("n", []byte{0x18, 0xac, 0x02})
	f.Add(uint8(otlpwire.Metrics), gauge(point(a, n), point(a), point(a, n), point(), point(a, n), point(a)))
	f.Add(uint8(otlpwire.Metrics), gauge(point(a, n), point(a, kvBytes("n", []byte{0x18, 0xac, 0x82, 0})), point(a, n), point(a, n)))
	if l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 1, Series: 10, PerRequest: 10}); err == nil {
		f.Add(uint8(otlpwire.Metrics), l.Request(nil, 0))
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
		sameSetsFound(t, "", batch)
		out, err := ToOTLP(batch, nil)
		if err != nil {
			t.Fatalf("ToOTLP of a built batch: %v", err)
		}
		// The same request again, in the next batch, its sets copied from
		// those kept from the first (numbered as if worth it).
		if b.pts != nil {
			b.pts.sets.skip, b.pts.sets.off = 0, false
		}
		if _, err := b.Append(body); err != nil {
			t.Fatalf("the request again: %v", err)
		}
		again := b.Build()
		defer again.Release()
		sameSetsFound(t, "again: ", again)
		if out2, err := ToOTLP(again, nil); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("the request again: %v, or another output", err)
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

// sameSetsFound fails t when the sets the Builder numbered as it decoded b
// are not those FindItemAttrSets finds.
func sameSetsFound(t *testing.T, what string, b *Batch) {
	t.Helper()
	if !b.setsFound {
		return
	}
	sets := b.ItemAttrSets
	b.setsFound, b.ItemAttrSets = false, nil
	b.FindItemAttrSets(nil)
	if !slices.Equal(sets, b.ItemAttrSets) {
		t.Fatalf("%ssets numbered as decoded %v, FindItemAttrSets %v", what, sets, b.ItemAttrSets)
	}
}
