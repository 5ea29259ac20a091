package columnar

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/schemas"
)

// anyCols reads an AnyValue struct column (attribute values, log bodies).
type anyCols struct{ schemas.AnyColumns }

func newAnyCols(a arrow.Array) (anyCols, error) {
	c, err := schemas.NewAnyColumns(a)
	return anyCols{c}, err
}

// value returns entry j as the Go value rules see: string, bool, int64,
// float64, []byte, []any, map[string]any or nil. Strings and bytes alias
// the Arrow buffers.
func (c *anyCols) value(j int, box *boxer) any {
	switch c.Type.Value(j) {
	case schemas.ValueString:
		return box.string(c.Str.Value(j))
	case schemas.ValueBool:
		return c.Bool.Value(j)
	case schemas.ValueInt:
		return c.Int.Value(j)
	case schemas.ValueDouble:
		return box.float(c.Double.Value(j))
	case schemas.ValueBytes:
		return c.Bytes.Value(j)
	case schemas.ValueArray:
		var av common.ArrayValue
		if proto.Unmarshal(c.Bytes.Value(j), &av) != nil {
			return nil
		}
		return fromProtoArray(av.Values)
	case schemas.ValueKVList:
		var kl common.KeyValueList
		if proto.Unmarshal(c.Bytes.Value(j), &kl) != nil {
			return nil
		}
		return fromProtoKVs(kl.Values)
	case schemas.ValueRaw:
		var v common.AnyValue
		if proto.Unmarshal(c.Bytes.Value(j), &v) != nil {
			return nil
		}
		return fromProto(&v)
	}
	return nil // ValueNone, ValueEmpty
}

func fromProto(v *common.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_BoolValue:
		return x.BoolValue
	case *common.AnyValue_IntValue:
		return x.IntValue
	case *common.AnyValue_DoubleValue:
		return x.DoubleValue
	case *common.AnyValue_BytesValue:
		return x.BytesValue
	case *common.AnyValue_ArrayValue:
		return fromProtoArray(x.ArrayValue.GetValues())
	case *common.AnyValue_KvlistValue:
		return fromProtoKVs(x.KvlistValue.GetValues())
	}
	return nil
}

func fromProtoArray(vs []*common.AnyValue) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = fromProto(v)
	}
	return out
}

func fromProtoKVs(kvs []*common.KeyValue) map[string]any {
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = fromProto(kv.GetValue())
	}
	return out
}

// toProto converts a value a rule produced to an AnyValue. Maps are written
// with sorted keys; values of other types are written as their fmt.Sprint
// string.
func toProto(v any) *common.AnyValue {
	switch x := v.(type) {
	case nil:
		return &common.AnyValue{}
	case string:
		return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: x}}
	case bool:
		return &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: x}}
	case []byte:
		return &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: x}}
	case []any:
		av := &common.ArrayValue{Values: make([]*common.AnyValue, len(x))}
		for i, e := range x {
			av.Values[i] = toProto(e)
		}
		return &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: av}}
	case map[string]any:
		kl := &common.KeyValueList{}
		for _, k := range sortedKeys(x) {
			kl.Values = append(kl.Values, &common.KeyValue{Key: k, Value: toProto(x[k])})
		}
		return &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: kl}}
	}
	if i, ok := asInt(v); ok {
		return &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: i}}
	}
	if f, ok := asFloat(v); ok {
		return &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: f}}
	}
	return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: fmt.Sprint(v)}}
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// anyBuilder appends AnyValue structs.
type anyBuilder struct {
	s   *array.StructBuilder
	typ *array.Uint8Builder
	str *array.StringBuilder
	i   *array.Int64Builder
	d   *array.Float64Builder
	b   *array.BooleanBuilder
	by  *array.BinaryBuilder
}

func newAnyBuilder(s *array.StructBuilder) anyBuilder {
	return anyBuilder{
		s:   s,
		typ: s.FieldBuilder(schemas.AnyType).(*array.Uint8Builder),
		str: s.FieldBuilder(schemas.AnyStr).(*array.StringBuilder),
		i:   s.FieldBuilder(schemas.AnyInt).(*array.Int64Builder),
		d:   s.FieldBuilder(schemas.AnyDouble).(*array.Float64Builder),
		b:   s.FieldBuilder(schemas.AnyBool).(*array.BooleanBuilder),
		by:  s.FieldBuilder(schemas.AnyBytes).(*array.BinaryBuilder),
	}
}

func (w *anyBuilder) put(typ uint8, s string, i int64, d float64, b bool, by []byte) {
	w.s.Append(true)
	w.typ.Append(typ)
	w.str.Append(s)
	w.i.Append(i)
	w.d.Append(d)
	w.b.Append(b)
	w.by.Append(by)
}

// copyFrom appends entry j of c unchanged.
func (w *anyBuilder) copyFrom(c *anyCols, j int) {
	w.s.Append(true)
	w.typ.Append(c.Type.Value(j))
	w.str.Append(c.Str.Value(j))
	w.i.Append(c.Int.Value(j))
	w.d.Append(c.Double.Value(j))
	w.b.Append(c.Bool.Value(j))
	w.by.Append(c.Bytes.Value(j))
}

// putValue appends a value a rule produced; nil is ValueNone (a KeyValue
// without value, a log record without body).
func (w *anyBuilder) putValue(v any) {
	w.put(encodeValue(v))
}

// encodeValue returns the AnyValue fields of a value a rule produced.
func encodeValue(v any) (typ uint8, s string, i int64, d float64, b bool, by []byte) {
	switch x := v.(type) {
	case nil:
		return schemas.ValueNone, "", 0, 0, false, nil
	case string:
		return schemas.ValueString, x, 0, 0, false, nil
	case bool:
		return schemas.ValueBool, "", 0, 0, x, nil
	case []byte:
		return schemas.ValueBytes, "", 0, 0, false, x
	case []any:
		b, _ := proto.Marshal(toProto(x).GetArrayValue())
		return schemas.ValueArray, "", 0, 0, false, b
	case map[string]any:
		b, _ := proto.Marshal(toProto(x).GetKvlistValue())
		return schemas.ValueKVList, "", 0, 0, false, b
	}
	if i, ok := asInt(v); ok {
		return schemas.ValueInt, "", i, 0, false, nil
	}
	if f, ok := asFloat(v); ok {
		return schemas.ValueDouble, "", 0, f, false, nil
	}
	return schemas.ValueString, fmt.Sprint(v), 0, 0, false, nil
}

// appendSig appends a canonical encoding of v to b, for deduplicating
// rewritten resources.
func appendSig(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case string:
		return append(append(b, 's'), x...)
	case []byte:
		return append(append(b, 'b'), x...)
	}
	if _, ok := asInt(v); ok {
		return fmt.Appendf(append(b, 'i'), "%d", v)
	}
	p, _ := proto.MarshalOptions{Deterministic: true}.Marshal(toProto(v))
	return append(append(b, 'p'), p...)
}

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

func spanKind(k int32) string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unspecified"
}

var statusNames = [...]string{"unset", "ok", "error"}

func statusCode(a *array.Int32, i int) string {
	if a.IsNull(i) {
		return "unset"
	}
	if c := a.Value(i); c >= 0 && int(c) < len(statusNames) {
		return statusNames[c]
	}
	return "unset"
}

var metricTypeNames = [...]string{"", "gauge", "sum", "histogram", "exponential_histogram", "summary"}

func metricType(t uint8) string {
	if int(t) < len(metricTypeNames) {
		return metricTypeNames[t]
	}
	return ""
}

// boxer turns strings and floats into interface values without an
// allocation each: the value is stored in a chunk of a slab and the
// interface points at it, as the runtime's own boxing would point at a
// fresh allocation. Chunks are never written again once a value is boxed in
// them (a full chunk is replaced, not reused), so the values are immutable
// as interface contents must be.
type boxer struct {
	strs   []string
	floats []float64
}

// Chunks start at boxFirst values in a batch and double up to boxChunk:
// a batch whose rows the memo mostly replays boxes a few values only.
const (
	boxFirst = 64
	boxChunk = 4096
)

// chunkAfter is the capacity of the chunk that follows one of capacity n.
func chunkAfter(n int) int { return min(max(2*n, boxFirst), boxChunk) }

type eface struct{ typ, data unsafe.Pointer }

var (
	stringType = func() unsafe.Pointer { var v any = ""; return (*eface)(unsafe.Pointer(&v)).typ }()
	floatType  = func() unsafe.Pointer { var v any = 0.0; return (*eface)(unsafe.Pointer(&v)).typ }()
)

func (b *boxer) string(s string) any {
	if len(b.strs) == cap(b.strs) {
		b.strs = make([]string, 0, chunkAfter(cap(b.strs)))
	}
	b.strs = append(b.strs, s)
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = stringType, unsafe.Pointer(&b.strs[len(b.strs)-1])
	return v
}

func (b *boxer) float(f float64) any {
	if len(b.floats) == cap(b.floats) {
		b.floats = make([]float64, 0, chunkAfter(cap(b.floats)))
	}
	b.floats = append(b.floats, f)
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = floatType, unsafe.Pointer(&b.floats[len(b.floats)-1])
	return v
}

// drop forgets the chunks (they may alias a batch's Arrow buffers).
func (b *boxer) drop() { *b = boxer{} }
