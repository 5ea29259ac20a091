package otlpjson

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// filler sets random values in every field of a message, within limits:
// lists get up to 3 elements, attribute values nest a few levels, and each
// oneof gets one member (or, now and then, none).
type filler struct {
	r      *rand.Rand
	sparse bool // leave about a third of the fields unset
	// oneofs counts the members chosen, by name, for coverage checks.
	oneofs map[protoreflect.FullName]int
}

func (g *filler) fill(m protoreflect.Message, depth int) {
	md := m.Descriptor()
	for i := range md.Oneofs().Len() {
		od := md.Oneofs().Get(i)
		if od.IsSynthetic() {
			continue
		}
		if g.r.IntN(10) == 0 || depth > 8 && od.Fields().Get(0).Message() == nil {
			continue
		}
		fd := od.Fields().Get(g.r.IntN(od.Fields().Len()))
		if depth > 8 && fd.Message() != nil { // stop AnyValue nesting
			fd = od.Fields().Get(0)
		}
		g.oneofs[fd.FullName()]++
		g.set(m, fd, depth)
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			continue
		}
		if g.sparse && depth >= 2 && g.r.IntN(3) == 0 {
			continue
		}
		if fd.Message() != nil && depth > 8 {
			continue
		}
		if fd.IsList() {
			l := m.Mutable(fd).List()
			n := g.r.IntN(4)
			if depth < 3 { // keep the way down to the data points open
				n = 1 + g.r.IntN(3)
			}
			for range n {
				if fd.Message() != nil {
					e := l.NewElement()
					g.fill(e.Message(), depth+1)
					l.Append(e)
				} else {
					l.Append(g.scalar(fd))
				}
			}
			continue
		}
		g.set(m, fd, depth)
	}
}

func (g *filler) set(m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int) {
	if fd.Message() != nil {
		g.fill(m.Mutable(fd).Message(), depth+1)
		return
	}
	m.Set(fd, g.scalar(fd))
}

var (
	sampleStrings = []string{"", "a", "service.name", "ünïcödé ✓", "\x00\x1f\"\\/\b\f\n\r\t\x7f", "\u2028<>&'", "🙂", "\ufffd", "traceId", "5b8efff798038103d269b633813fc60c"}
	sampleDoubles = []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, -math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1)}
	sampleInts    = []uint64{0, 1, 127, 128, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 1<<53 + 1, 1<<63 - 1, 1 << 63, math.MaxUint64}
)

func (g *filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	r := g.r
	u := sampleInts[r.IntN(len(sampleInts))]
	if r.IntN(2) == 0 {
		u = r.Uint64() >> r.IntN(64)
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if r.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(u)))
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(u))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(u))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(u))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(u)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(sampleDoubles[r.IntN(len(sampleDoubles))]))
	case protoreflect.DoubleKind:
		if r.IntN(2) == 0 {
			return protoreflect.ValueOfFloat64(r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20)))
		}
		return protoreflect.ValueOfFloat64(sampleDoubles[r.IntN(len(sampleDoubles))])
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(sampleStrings[r.IntN(len(sampleStrings))])
	case protoreflect.BytesKind:
		n := r.IntN(20)
		if id := idLen(fd); id > 0 {
			n = id
			if r.IntN(4) == 0 {
				n = 0
			}
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	}
	panic(fd.Kind())
}

// TestRoundTrip fills requests and responses of every signal with random
// values, and checks proto -> JSON -> proto gives the message back, with
// each step equal to the reference codec's.
func TestRoundTrip(t *testing.T) {
	g := &filler{r: rand.New(rand.NewPCG(1, 2)), oneofs: map[protoreflect.FullName]int{}}
	ref := loadReference()
	n := 300
	if testing.Short() {
		n = 30
	}
	for _, sig := range otlpwire.Signals {
		for _, response := range []bool{false, true} {
			for i := range n {
				g.sparse = i%2 == 1
				m := ref.newMessage(sig, response)
				g.fill(m.ProtoReflect(), 0)
				roundTrip(t, sig, response, m)
				if t.Failed() {
					return
				}
			}
		}
	}
	// Every member of every oneof was tried: each metric type, each
	// attribute value type, both number types of a data point.
	for _, name := range []protoreflect.FullName{
		"opentelemetry.proto.metrics.v1.Metric.gauge",
		"opentelemetry.proto.metrics.v1.Metric.sum",
		"opentelemetry.proto.metrics.v1.Metric.histogram",
		"opentelemetry.proto.metrics.v1.Metric.exponential_histogram",
		"opentelemetry.proto.metrics.v1.Metric.summary",
		"opentelemetry.proto.metrics.v1.NumberDataPoint.as_int",
		"opentelemetry.proto.metrics.v1.Exemplar.as_double",
		"opentelemetry.proto.common.v1.AnyValue.kvlist_value",
		"opentelemetry.proto.common.v1.AnyValue.bytes_value",
	} {
		if g.oneofs[name] == 0 {
			t.Errorf("%s never generated", name)
		}
	}
}

func roundTrip(t *testing.T, sig otlpwire.Signal, response bool, m proto.Message) {
	t.Helper()
	pb, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	js, err := checkMarshal(t, sig, response, pb)
	if err != nil {
		t.Fatalf("marshal %v: %v", m, err)
	}
	if bytes.ContainsAny(js, "\n\r") {
		t.Fatalf("more than one line: %s", js)
	}
	back, err := checkUnmarshal(t, sig, response, js)
	if err != nil {
		t.Fatalf("unmarshal %s: %v", js, err)
	}
	if !proto.Equal(back, m) {
		t.Fatalf("round trip differs:\n%v\n%v", m, back)
	}
}
