package otlpwire

import (
	"unicode/utf8"
)

// The limits below are the one statement of what the workers' decoder
// (package schemas) refuses inside an item. The ingester checks items
// against them (Options.Check) so that it refuses, in the OTLP partial
// success answer, the items a worker would otherwise dead-letter; the
// decoder uses the same checks, so the two cannot drift apart.

// MaxAnyValueDepth bounds the nesting of AnyValues: an ArrayValue adds one
// level, a KeyValueList two (the list, then the KeyValue in it), and the
// AnyValue of an attribute is at level 0. Deeper values are refused
// (schemas.ErrUnsupported in the decoder).
const MaxAnyValueDepth = 64

// Problem is why a value breaks the limits; ProblemNone when it does not.
type Problem uint8

const (
	ProblemNone        Problem = iota
	ProblemMalformed           // bad protobuf framing inside the value
	ProblemUTF8                // a string that is not valid UTF-8
	ProblemDepth               // AnyValue nested deeper than MaxAnyValueDepth
	ProblemUnsupported         // a field the decoder cannot keep (in KeyValue: one other than key and one value)
)

func (p Problem) String() string {
	switch p {
	case ProblemNone:
		return "ok"
	case ProblemMalformed:
		return "malformed protobuf"
	case ProblemUTF8:
		return "invalid UTF-8"
	case ProblemDepth:
		return "AnyValue nested deeper than 64"
	case ProblemUnsupported:
		return "unsupported field"
	}
	return "unknown problem"
}

// CheckAnyValue checks an AnyValue at nesting level depth (0 for an
// attribute's value or a log body): the UTF-8 of its strings, keys and the
// depth of its arrays and key-value lists.
//
//	message AnyValue {
//	  oneof value {
//	    string string_value = 1;
//	    ArrayValue array_value = 5;
//	    KeyValueList kvlist_value = 6;
//	  }
//	}
func CheckAnyValue(p []byte, depth int) Problem {
	if depth > MaxAnyValueDepth {
		return ProblemDepth
	}
	for i := 0; i < len(p); {
		f, code := ReadField(p, i)
		if code != ReadOK {
			return ProblemMalformed
		}
		i = f.End
		if f.Type != WireLen {
			continue
		}
		var pr Problem
		switch f.Num {
		case AnyValueStringValue:
			if !utf8.Valid(p[f.Val:f.End]) {
				pr = ProblemUTF8
			}
		case AnyValueArrayValue:
			pr = CheckList(p[f.Val:f.End], depth+1, false)
		case AnyValueKvlistValue:
			pr = CheckList(p[f.Val:f.End], depth+1, true)
		}
		if pr != ProblemNone {
			return pr
		}
	}
	return ProblemNone
}

// CheckList checks an ArrayValue (kv false) or KeyValueList (kv true) at
// nesting level depth.
//
//	message ArrayValue { repeated AnyValue values = 1; }
//	message KeyValueList { repeated KeyValue values = 1; }
func CheckList(p []byte, depth int, kv bool) Problem {
	for i := 0; i < len(p); {
		f, code := ReadField(p, i)
		if code != ReadOK {
			return ProblemMalformed
		}
		i = f.End
		if f.Num != ArrayValueValues || f.Type != WireLen { // KeyValueListValues is 1 too
			continue
		}
		var pr Problem
		if kv {
			pr, _ = checkKeyValue(p[f.Val:f.End], depth)
		} else {
			pr = CheckAnyValue(p[f.Val:f.End], depth)
		}
		if pr != ProblemNone {
			return pr
		}
	}
	return ProblemNone
}

// CheckKeyValue checks an attribute, a KeyValue whose value is at level 0,
// and returns the field at fault: KeyValueKey or KeyValueValue.
//
//	message KeyValue {
//	  string key = 1;
//	  AnyValue value = 2;
//	}
//
// The decoder keeps an attribute as a key and one value: any other field
// (key_strindex, an unknown one, a second value) is ProblemUnsupported.
func CheckKeyValue(p []byte) (Problem, FieldNum) {
	// The usual encoding first: key then value, each shorter than 128
	// bytes, and nothing else.
	if len(p) >= 4 && p[0] == keyTag && p[1] < 0x80 {
		if v := 2 + int(p[1]); v+2 <= len(p) && p[v] == valueTag && p[v+1] < 0x80 && v+2+int(p[v+1]) == len(p) {
			if !ValidUTF8(p[2:v]) {
				return ProblemUTF8, KeyValueKey
			}
			if pr := checkValue(p[v+2:]); pr != ProblemNone {
				return pr, KeyValueValue
			}
			return ProblemNone, 0
		}
	}
	hasVal := false
	for i := 0; i < len(p); {
		f, code := ReadField(p, i)
		if code != ReadOK {
			return ProblemMalformed, f.Num
		}
		i = f.End
		switch {
		case f.Num == KeyValueKey && f.Type == WireLen:
		case f.Num == KeyValueValue && f.Type == WireLen && !hasVal:
			hasVal = true
		default:
			return ProblemUnsupported, f.Num
		}
	}
	return checkKeyValue(p, -1)
}

// The one-byte tags of the usual encodings of KeyValue and AnyValue.
const (
	keyTag    = byte(KeyValueKey)<<3 | byte(WireLen)
	valueTag  = byte(KeyValueValue)<<3 | byte(WireLen)
	stringTag = byte(AnyValueStringValue)<<3 | byte(WireLen)
	bytesTag  = byte(AnyValueBytesValue)<<3 | byte(WireLen)
	boolTag   = byte(AnyValueBoolValue)<<3 | byte(WireVarint)
	intTag    = byte(AnyValueIntValue)<<3 | byte(WireVarint)
	doubleTag = byte(AnyValueDoubleValue)<<3 | byte(WireI64)
)

// checkValue checks an attribute's AnyValue, with the scalars and short
// strings inline.
func checkValue(v []byte) Problem {
	switch {
	case len(v) == 0:
		return ProblemNone
	case len(v) >= 2 && v[1] < 0x80 && int(v[1])+2 == len(v) && (v[0] == stringTag || v[0] == bytesTag):
		if v[0] == bytesTag || ValidUTF8(v[2:]) {
			return ProblemNone
		}
		return ProblemUTF8
	case v[0] == boolTag || v[0] == intTag:
		if _, end, ok := ReadVarint(v, 1); ok && end == len(v) {
			return ProblemNone
		}
	case v[0] == doubleTag && len(v) == 9:
		return ProblemNone
	}
	return CheckAnyValue(v, 0)
}

// IsASCII reports whether p holds no byte of 0x80 or more.
func IsASCII(p []byte) bool { return orBytes(p)&0x8080808080808080 == 0 }

func checkKeyValue(p []byte, depth int) (Problem, FieldNum) {
	for i := 0; i < len(p); {
		f, code := ReadField(p, i)
		if code != ReadOK {
			return ProblemMalformed, f.Num
		}
		i = f.End
		if f.Type != WireLen {
			continue
		}
		switch f.Num {
		case KeyValueKey:
			if !utf8.Valid(p[f.Val:f.End]) {
				return ProblemUTF8, f.Num
			}
		case KeyValueValue:
			if pr := CheckAnyValue(p[f.Val:f.End], depth+1); pr != ProblemNone {
				return pr, f.Num
			}
		}
	}
	return ProblemNone, 0
}
