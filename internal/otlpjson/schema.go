package otlpjson

import (
	"fmt"
	"sync"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The codec does not use the generated Go structs at run time. It reads the
// generated descriptors once and flattens them into the tables below, which
// both directions walk: field by JSON key when decoding, field by number when
// encoding.

// kind is how a field's value is written in JSON and on the wire.
type kind uint8

const (
	kindDouble kind = iota + 1
	kindFloat
	kindInt32
	kindInt64
	kindUint32
	kindUint64
	kindSint32
	kindSint64
	kindFixed32
	kindFixed64
	kindSfixed32
	kindSfixed64
	kindBool
	kindEnum
	kindString
	kindBytes   // base64 in JSON
	kindID      // trace or span id: hex in JSON
	kindMessage // nested message
)

// maxFields bounds the fields of one message, so that the decoder can track
// the fields it has seen in a fixed bitset.
const maxFields = 128

// maxOneofs bounds the oneofs of one message, for the same reason.
const maxOneofs = 8

type field struct {
	name     string // JSON (lowerCamelCase) name: written on output, used in error paths
	num      protowire.Number
	wireType protowire.Type // of one value; repeated numeric fields are packed on output
	kind     kind
	index    int // declaration order in the message; JSON output follows it
	oneof    int // index of the containing oneof, or -1
	repeated bool
	packed   bool // repeated numeric field: one length-delimited run on output
	presence bool // zero values are written (oneof members, proto3 optional)
	idLen    int  // for kindID: the only valid length other than 0
	msg      *message
	enum     map[string]int32 // for kindEnum: value names accepted on input
}

type message struct {
	fullName protoreflect.FullName
	fields   []field           // in declaration order
	byName   map[string]*field // JSON name and proto name
	byNum    []*field          // indexed by field number
	oneofs   int
}

func (m *message) fieldByNum(n protowire.Number) *field {
	if n < 0 || int(n) >= len(m.byNum) {
		return nil
	}
	return m.byNum[n]
}

// schema holds the root message of every request and response, by signal.
type schema struct {
	request  [len(otlpwire.Signals)]*message
	response [len(otlpwire.Signals)]*message
}

// loadSchema builds the tables once per process; they are never modified
// afterwards, so every caller may share them.
var loadSchema = sync.OnceValue(func() *schema {
	b := schemaBuilder{done: map[protoreflect.FullName]*message{}}
	var s schema
	for _, sig := range otlpwire.Signals {
		s.request[sig] = b.message(otlpwire.NewRequest(sig).ProtoReflect().Descriptor())
		s.response[sig] = b.message(newResponse(sig).ProtoReflect().Descriptor())
	}
	return &s
})

func newResponse(sig otlpwire.Signal) proto.Message {
	switch sig {
	case otlpwire.Metrics:
		return &colmetricspb.ExportMetricsServiceResponse{}
	case otlpwire.Logs:
		return &collogspb.ExportLogsServiceResponse{}
	}
	return &coltracepb.ExportTraceServiceResponse{}
}

type schemaBuilder struct {
	done map[protoreflect.FullName]*message
}

func (b *schemaBuilder) message(md protoreflect.MessageDescriptor) *message {
	if m, ok := b.done[md.FullName()]; ok {
		return m
	}
	fds := md.Fields()
	if md.Oneofs().Len() > maxOneofs {
		panic(fmt.Sprintf("otlpjson: %s has %d oneofs, more than %d", md.FullName(), md.Oneofs().Len(), maxOneofs))
	}
	if fds.Len() > maxFields {
		panic(fmt.Sprintf("otlpjson: %s has %d fields, more than %d", md.FullName(), fds.Len(), maxFields))
	}
	m := &message{
		fullName: md.FullName(),
		fields:   make([]field, fds.Len()),
		byName:   make(map[string]*field, 2*fds.Len()),
		oneofs:   md.Oneofs().Len(),
	}
	b.done[md.FullName()] = m // before the fields: messages nest recursively (AnyValue)

	maxNum := protowire.Number(0)
	for i := range fds.Len() {
		maxNum = max(maxNum, fds.Get(i).Number())
	}
	if maxNum > 1<<12 {
		panic(fmt.Sprintf("otlpjson: %s has field number %d; the number index assumes small numbers", md.FullName(), maxNum))
	}
	m.byNum = make([]*field, maxNum+1)

	for i := range fds.Len() {
		fd := fds.Get(i)
		if fd.IsMap() || fd.IsExtension() {
			panic(fmt.Sprintf("otlpjson: %s: maps and extensions are not supported", fd.FullName()))
		}
		f := &m.fields[i]
		*f = field{
			name:     fd.JSONName(),
			num:      fd.Number(),
			index:    i,
			oneof:    -1,
			repeated: fd.IsList(),
			presence: fd.HasPresence(),
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			f.oneof = od.Index()
		}
		f.kind, f.wireType = kindOf(fd)
		switch f.kind {
		case kindMessage:
			f.msg = b.message(fd.Message())
		case kindEnum:
			vals := fd.Enum().Values()
			f.enum = make(map[string]int32, vals.Len())
			for j := range vals.Len() {
				f.enum[string(vals.Get(j).Name())] = int32(vals.Get(j).Number())
			}
		case kindBytes:
			if n := idLen(fd); n > 0 {
				f.kind, f.idLen = kindID, n
			}
		}
		f.packed = f.repeated && f.wireType != protowire.BytesType
		m.byNum[f.num] = f
		// protojson looks a key up as a JSON name first, then as the proto
		// name; the JSON names are stored last so they win any clash.
		m.byName[string(fd.Name())] = f
	}
	for i := range m.fields {
		m.byName[m.fields[i].name] = &m.fields[i]
	}
	return m
}

// idLen reports whether a bytes field is a trace or span id, which OTLP/JSON
// writes as hex, and the length it must have.
func idLen(fd protoreflect.FieldDescriptor) int {
	switch fd.Name() {
	case "trace_id":
		return 16
	case "span_id", "parent_span_id":
		return 8
	}
	return 0
}

func kindOf(fd protoreflect.FieldDescriptor) (kind, protowire.Type) {
	switch fd.Kind() {
	case protoreflect.DoubleKind:
		return kindDouble, protowire.Fixed64Type
	case protoreflect.FloatKind:
		return kindFloat, protowire.Fixed32Type
	case protoreflect.Int32Kind:
		return kindInt32, protowire.VarintType
	case protoreflect.Int64Kind:
		return kindInt64, protowire.VarintType
	case protoreflect.Uint32Kind:
		return kindUint32, protowire.VarintType
	case protoreflect.Uint64Kind:
		return kindUint64, protowire.VarintType
	case protoreflect.Sint32Kind:
		return kindSint32, protowire.VarintType
	case protoreflect.Sint64Kind:
		return kindSint64, protowire.VarintType
	case protoreflect.Fixed32Kind:
		return kindFixed32, protowire.Fixed32Type
	case protoreflect.Fixed64Kind:
		return kindFixed64, protowire.Fixed64Type
	case protoreflect.Sfixed32Kind:
		return kindSfixed32, protowire.Fixed32Type
	case protoreflect.Sfixed64Kind:
		return kindSfixed64, protowire.Fixed64Type
	case protoreflect.BoolKind:
		return kindBool, protowire.VarintType
	case protoreflect.EnumKind:
		return kindEnum, protowire.VarintType
	case protoreflect.StringKind:
		return kindString, protowire.BytesType
	case protoreflect.BytesKind:
		return kindBytes, protowire.BytesType
	case protoreflect.MessageKind:
		return kindMessage, protowire.BytesType
	}
	panic(fmt.Sprintf("otlpjson: %s: unsupported kind %v", fd.FullName(), fd.Kind()))
}
