package otlptest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// notGenerated are the fields Gen leaves unset, and why.
var notGenerated = map[protoreflect.FullName]string{
	"opentelemetry.proto.common.v1.KeyValue.key_strindex": "schemas rejects it (ErrUnsupported), as it has no place for it",
}

// TestGenCovers checks what Gen promises: every field of the three signals
// set, every AnyValue kind, and with Unknown, unknown fields in every message
// that its doc lists.
func TestGenCovers(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		set := map[protoreflect.FullName]bool{}
		unknown := map[protoreflect.FullName]bool{}
		var walk func(m protoreflect.Message)
		walk = func(m protoreflect.Message) {
			if len(m.GetUnknown()) > 0 {
				unknown[m.Descriptor().FullName()] = true
			}
			m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
				set[fd.FullName()] = true
				switch {
				case fd.IsList() && fd.Message() != nil:
					for i := range v.List().Len() {
						walk(v.List().Get(i).Message())
					}
				case fd.Message() != nil && !fd.IsMap():
					walk(v.Message())
				}
				return true
			})
		}
		g := NewGen(1, GenOptions{Unknown: true})
		for range 100 {
			walk(g.Message(sig).ProtoReflect())
		}

		seen := map[protoreflect.FullName]bool{}
		var fields func(md protoreflect.MessageDescriptor)
		fields = func(md protoreflect.MessageDescriptor) {
			if seen[md.FullName()] {
				return
			}
			seen[md.FullName()] = true
			for i := range md.Fields().Len() {
				fd := md.Fields().Get(i)
				if !set[fd.FullName()] && notGenerated[fd.FullName()] == "" {
					t.Errorf("%v: %s never set", sig, fd.FullName())
				}
				if fd.Message() != nil {
					fields(fd.Message())
				}
			}
		}
		req := otlpwire.NewRequest(sig).ProtoReflect().Descriptor()
		fields(req)

		// Messages without unknown fields: attributes and the small leaf
		// messages (see GenOptions.Unknown).
		leaves := []protoreflect.Name{"AnyValue", "ArrayValue", "KeyValueList", "KeyValue", "EntityRef",
			"Exemplar", "ValueAtQuantile", "Buckets", "Event", "Link", "Status"}
		for name := range seen {
			if !unknown[name] && !slices.Contains(leaves, name.Name()) {
				t.Errorf("%v: %s never has unknown fields", sig, name)
			}
		}
	}
}

func TestGenSeed(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		a, b, c := NewGen(7, GenOptions{}), NewGen(7, GenOptions{}), NewGen(8, GenOptions{})
		same, differ := true, false
		for range 20 {
			x, y, z := a.Request(sig), b.Request(sig), c.Request(sig)
			same = same && bytes.Equal(x, y)
			differ = differ || !bytes.Equal(x, z)
		}
		if !same || !differ {
			t.Errorf("%v: same seed gives the same requests: %v; another seed other requests: %v", sig, same, differ)
		}
	}
}
