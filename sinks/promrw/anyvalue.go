package promrw

import (
	"encoding/base64"
	"encoding/json"
	"math"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// complexJSON renders an attribute value kept serialized in the batch as
// JSON text, as the specification asks for arrays and maps: p is an
// ArrayValue (field 5), a KeyValueList (field 6) or a whole AnyValue (0).
func complexJSON(p []byte, field int) string {
	var v any
	switch field {
	case 5:
		var a commonpb.ArrayValue
		if proto.Unmarshal(p, &a) != nil {
			return ""
		}
		v = arrayJSON(a.Values)
	case 6:
		var kv commonpb.KeyValueList
		if proto.Unmarshal(p, &kv) != nil {
			return ""
		}
		v = kvJSON(kv.Values)
	default:
		var a commonpb.AnyValue
		if proto.Unmarshal(p, &a) != nil {
			return ""
		}
		v = anyJSON(&a)
		if s, ok := v.(string); ok {
			return s
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(out)
}

func anyJSON(a *commonpb.AnyValue) any {
	switch x := a.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return nil
		}
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		return arrayJSON(x.ArrayValue.GetValues())
	case *commonpb.AnyValue_KvlistValue:
		return kvJSON(x.KvlistValue.GetValues())
	}
	return nil
}

func arrayJSON(vs []*commonpb.AnyValue) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = anyJSON(v)
	}
	return out
}

func kvJSON(kvs []*commonpb.KeyValue) map[string]any {
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = anyJSON(kv.Value)
	}
	return out
}
