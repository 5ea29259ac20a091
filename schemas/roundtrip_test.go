package schemas

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// roundTrip converts body to Arrow and back, through the record codec when viaCodec.
func roundTrip(t testing.TB, sig otlpwire.Signal, mem memory.Allocator, bodies [][]byte, viaCodec bool) []byte {
	t.Helper()
	b := NewBuilder(sig, mem)
	defer b.Release()
	for _, body := range bodies {
		if _, err := b.Append(body); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	batch := b.Build()
	defer batch.Release()
	if viaCodec {
		var buf bytes.Buffer
		if err := WriteBatch(&buf, batch); err != nil {
			t.Fatalf("WriteBatch: %v", err)
		}
		nb, err := ReadBatch(buf.Bytes(), mem)
		if err != nil {
			t.Fatalf("ReadBatch: %v", err)
		}
		defer nb.Release()
		batch = nb
	}
	out, err := ToOTLP(batch, nil)
	if err != nil {
		t.Fatalf("ToOTLP: %v", err)
	}
	return out
}

func TestRoundTripRandom(t *testing.T) {
	iters := 400
	if testing.Short() {
		iters = 50
	}
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			g := otlptest.NewGen(uint64(sig)+1, otlptest.GenOptions{})
			for i := range iters {
				in := g.Message(sig)
				body, err := proto.Marshal(in)
				if err != nil {
					t.Fatal(err)
				}
				out := roundTrip(t, sig, mem, [][]byte{body}, i%4 == 0)
				got := otlpwire.NewRequest(sig)
				if err := proto.Unmarshal(out, got); err != nil {
					t.Fatalf("iteration %d: output does not unmarshal: %v", i, err)
				}
				if !proto.Equal(in, got) {
					t.Fatalf("iteration %d: round trip differs:\n%s", i, firstDiff(prototext.Format(in), prototext.Format(got)))
				}
			}
		})
	}
}

// TestRoundTripUnknownFields: unknown fields of every wire type, in every
// message that has an extra column (README, "Extra columns"), come back
// through Arrow and the batch record. The request's own unknown fields are
// dropped by design, so the expected message has none.
func TestRoundTripUnknownFields(t *testing.T) {
	iters := 200
	if testing.Short() {
		iters = 25
	}
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			g := otlptest.NewGen(uint64(sig)+300, otlptest.GenOptions{Unknown: true})
			withUnknown := 0
			for i := range iters {
				in := g.Message(sig)
				body, err := proto.Marshal(in)
				if err != nil {
					t.Fatal(err)
				}
				in.ProtoReflect().SetUnknown(nil)
				if hasUnknown(in) {
					withUnknown++
				}
				out := roundTrip(t, sig, mem, [][]byte{body}, i%2 == 0)
				got := otlpwire.NewRequest(sig)
				if err := proto.Unmarshal(out, got); err != nil {
					t.Fatalf("iteration %d: output does not unmarshal: %v", i, err)
				}
				if !proto.Equal(in, got) {
					t.Fatalf("iteration %d: round trip differs:\n%s", i, firstDiff(prototext.Format(in), prototext.Format(got)))
				}
			}
			t.Logf("%d of %d requests had unknown fields below the request", withUnknown, iters)
			if withUnknown < iters/4 {
				t.Fatalf("only %d of %d requests had unknown fields below the request", withUnknown, iters)
			}
		})
	}
}

// hasUnknown reports whether a message below m has unknown fields.
func hasUnknown(m proto.Message) bool {
	found := false
	var walk func(protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if len(m.GetUnknown()) > 0 {
			found = true
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Message() == nil:
			case fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap():
			default:
				walk(v.Message())
			}
			return !found
		})
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsList() && fd.Message() != nil {
			for i := 0; i < v.List().Len(); i++ {
				walk(v.List().Get(i).Message())
			}
		}
		return !found
	})
	return found
}

// TestRoundTripConcat: several requests appended to one batch come back as
// one request holding all their resources, as protobuf concatenation would.
func TestRoundTripConcat(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		g := otlptest.NewGen(100+uint64(sig), otlptest.GenOptions{})
		var bodies [][]byte
		var all []byte
		for range 5 {
			body := g.Request(sig)
			bodies = append(bodies, body)
			all = append(all, body...)
		}
		want := otlpwire.NewRequest(sig)
		if err := proto.Unmarshal(all, want); err != nil {
			t.Fatal(err)
		}
		got := otlpwire.NewRequest(sig)
		if err := proto.Unmarshal(roundTrip(t, sig, memory.DefaultAllocator, bodies, true), got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(want, got) {
			t.Fatalf("%v: concatenated round trip differs", sig)
		}
	}
}

// firstDiff shows the lines around the first difference of two texts.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		if i >= len(la) || i >= len(lb) || la[i] != lb[i] {
			from := max(0, i-8)
			return fmt.Sprintf("want:\n%s\ngot:\n%s", strings.Join(la[from:min(len(la), i+4)], "\n"), strings.Join(lb[from:min(len(lb), i+4)], "\n"))
		}
	}
	return "(texts equal)"
}

// TestRoundTripOnPool: one Builder, batch after batch, on a recycling pool
// that poisons freed buffers (the worker's allocator): a value read after
// its batch was released, or a buffer shared without a reference, shows as
// a wrong round trip.
func TestRoundTripOnPool(t *testing.T) {
	iters := 200
	if testing.Short() {
		iters = 30
	}
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			pool := arrowpool.NewPoisoned()
			g := otlptest.NewGen(uint64(sig)+7, otlptest.GenOptions{})
			b := NewBuilder(sig, pool)
			for i := range iters {
				in := g.Message(sig)
				body, err := proto.Marshal(in)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.Append(body); err != nil {
					t.Fatalf("iteration %d: Append: %v", i, err)
				}
				batch := b.Build()
				if i%2 == 0 {
					var buf bytes.Buffer
					if err := WriteBatch(&buf, batch); err != nil {
						t.Fatalf("WriteBatch: %v", err)
					}
					batch.Release()
					if batch, err = ReadBatch(buf.Bytes(), pool); err != nil {
						t.Fatalf("ReadBatch: %v", err)
					}
				}
				out, err := ToOTLP(batch, nil)
				batch.Release()
				if err != nil {
					t.Fatalf("ToOTLP: %v", err)
				}
				got := otlpwire.NewRequest(sig)
				if err := proto.Unmarshal(out, got); err != nil {
					t.Fatalf("iteration %d: output does not unmarshal: %v", i, err)
				}
				if !proto.Equal(in, got) {
					t.Fatalf("iteration %d: round trip differs:\n%s", i, firstDiff(prototext.Format(in), prototext.Format(got)))
				}
			}
			b.Release()
			if n := pool.Live(); n != 0 {
				t.Fatalf("%d bytes not freed after every batch was released", n)
			}
		})
	}
}
