package otlpjson

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The reference codec is OTLP/JSON built the slow, obvious way on protojson,
// for the tests to compare the codec with. protojson reads the JSON into a
// copy of the OTLP schema in which the id fields are strings, so that it
// sees the hex text untouched; the ids are then decoded from hex in the
// generated message. Marshaling goes the other way.

type reference struct {
	gen    map[protoreflect.FullName]protoreflect.MessageType // generated types
	hexIDs *protoregistry.Files                               // the schema with string ids
}

var loadReference = sync.OnceValue(func() *reference {
	r := &reference{gen: map[protoreflect.FullName]protoreflect.MessageType{}}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		fdp := protodesc.ToFileDescriptorProto(fd)
		for _, md := range fdp.MessageType {
			stringIDs(md)
		}
		set.File = append(set.File, fdp)
	}
	for _, m := range []proto.Message{
		&colmetricspb.ExportMetricsServiceRequest{}, &colmetricspb.ExportMetricsServiceResponse{},
		&collogspb.ExportLogsServiceRequest{}, &collogspb.ExportLogsServiceResponse{},
		&coltracepb.ExportTraceServiceRequest{}, &coltracepb.ExportTraceServiceResponse{},
	} {
		r.gen[m.ProtoReflect().Descriptor().FullName()] = m.ProtoReflect().Type()
		add(m.ProtoReflect().Descriptor().ParentFile())
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		panic(err)
	}
	r.hexIDs = files
	return r
})

func stringIDs(md *descriptorpb.DescriptorProto) {
	for _, f := range md.Field {
		switch f.GetName() {
		case "trace_id", "span_id", "parent_span_id":
			if f.GetType() == descriptorpb.FieldDescriptorProto_TYPE_BYTES {
				f.Type = descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
			}
		}
	}
	for _, n := range md.NestedType {
		stringIDs(n)
	}
}

func rootName(sig otlpwire.Signal, response bool) protoreflect.FullName {
	m, err := root(sig, response)
	if err != nil {
		panic(err)
	}
	return m.fullName
}

func (r *reference) newMessage(sig otlpwire.Signal, response bool) proto.Message {
	return r.gen[rootName(sig, response)].New().Interface()
}

func (r *reference) newHexMessage(sig otlpwire.Signal, response bool) proto.Message {
	d, err := r.hexIDs.FindDescriptorByName(rootName(sig, response))
	if err != nil {
		panic(err)
	}
	return dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
}

// unmarshal decodes OTLP/JSON into the generated message.
func (r *reference) unmarshal(sig otlpwire.Signal, response bool, body []byte) (proto.Message, error) {
	// protojson lets a little malformed JSON through (1e before a comma).
	if !json.Valid(body) {
		return nil, fmt.Errorf("invalid JSON")
	}
	hm := r.newHexMessage(sig, response)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, hm); err != nil {
		return nil, err
	}
	pb, err := proto.Marshal(hm)
	if err != nil {
		return nil, err
	}
	m := r.newMessage(sig, response)
	if err := proto.Unmarshal(pb, m); err != nil {
		return nil, err
	}
	return m, walkIDs(m.ProtoReflect(), func(text []byte, want int) ([]byte, error) {
		id, err := hex.DecodeString(string(text))
		if err != nil {
			return nil, err
		}
		if len(id) != 0 && len(id) != want {
			return nil, fmt.Errorf("id of %d bytes", len(id))
		}
		return id, nil
	})
}

// marshal encodes a protobuf request as OTLP/JSON, without spaces.
func (r *reference) marshal(sig otlpwire.Signal, response bool, pb []byte) ([]byte, error) {
	m := r.newMessage(sig, response)
	if err := proto.Unmarshal(pb, m); err != nil {
		return nil, err
	}
	err := walkIDs(m.ProtoReflect(), func(id []byte, want int) ([]byte, error) {
		if len(id) != 0 && len(id) != want {
			return nil, fmt.Errorf("id of %d bytes", len(id))
		}
		return []byte(hex.EncodeToString(id)), nil
	})
	if err != nil {
		return nil, err
	}
	hexPB, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	hm := r.newHexMessage(sig, response)
	if err := proto.Unmarshal(hexPB, hm); err != nil {
		return nil, err
	}
	js, err := (protojson.MarshalOptions{UseEnumNumbers: true}).Marshal(hm)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, js); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// walkIDs replaces every trace and span id in m by conv of it.
func walkIDs(m protoreflect.Message, conv func(id []byte, want int) ([]byte, error)) error {
	var err error
	type set struct {
		fd protoreflect.FieldDescriptor
		v  []byte
	}
	var sets []set
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			for i := range v.List().Len() {
				if err = walkIDs(v.List().Get(i).Message(), conv); err != nil {
					return false
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			err = walkIDs(v.Message(), conv)
		case fd.Kind() == protoreflect.BytesKind && idLen(fd) > 0:
			var id []byte
			if id, err = conv(v.Bytes(), idLen(fd)); err == nil {
				sets = append(sets, set{fd, id})
			}
		}
		return err == nil
	})
	for _, s := range sets {
		m.Set(s.fd, protoreflect.ValueOfBytes(s.v))
	}
	return err
}

// checkAgainstReference decodes body with both codecs and fails t unless
// they agree.
func checkUnmarshal(t testing.TB, sig otlpwire.Signal, response bool, body []byte) (proto.Message, error) {
	t.Helper()
	r := loadReference()
	unmarshal := UnmarshalRequest
	if response {
		unmarshal = UnmarshalResponse
	}
	pb, err := unmarshal(sig, body, nil)
	want, wantErr := r.unmarshal(sig, response, body)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%v %q:\n otlpjson error: %v\nreference error: %v", sig, short(body), err, wantErr)
	}
	if err != nil {
		return nil, err
	}
	got := r.newMessage(sig, response)
	if err := proto.Unmarshal(pb, got); err != nil {
		t.Fatalf("%v %q: output does not unmarshal: %v", sig, short(body), err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("%v %q:\n otlpjson: %v\nreference: %v", sig, short(body), got, want)
	}
	return got, nil
}

// checkMarshal encodes pb with both codecs and fails t unless they agree.
func checkMarshal(t testing.TB, sig otlpwire.Signal, response bool, pb []byte) ([]byte, error) {
	t.Helper()
	marshal := MarshalRequest
	if response {
		marshal = MarshalResponse
	}
	got, err := marshal(sig, pb, nil)
	want, wantErr := loadReference().marshal(sig, response, pb)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%v %x:\n otlpjson error: %v\nreference error: %v", sig, short(pb), err, wantErr)
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%v %x:\n otlpjson: %s\nreference: %s", sig, short(pb), short(got), short(want))
	}
	return got, nil
}

func protojsonUnmarshal(body []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, m)
}

// short keeps failure messages readable.
func short(b []byte) []byte {
	if len(b) > 2000 {
		return b[:2000]
	}
	return b
}
