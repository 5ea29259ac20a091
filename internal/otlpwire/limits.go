package otlpwire

import (
	"encoding/binary"
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
	ProblemUnsupported         // an attribute KeyValue with a field other than key and one value
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
		return "unsupported field (only key and one value are kept)"
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
	if len(p) < minDeepBytes && ascii(p) {
		// Every string in it is ASCII, and it is too short to nest
		// deeper than the limit: the common attribute, checked at the
		// cost of a pass over its bytes.
		return ProblemNone, 0
	}
	return checkKeyValue(p, -1)
}

// minDeepBytes is a bound below the size of a KeyValue whose value nests
// deeper than MaxAnyValueDepth: each level takes at least a tag and a
// length byte.
const minDeepBytes = 2 * MaxAnyValueDepth

// ascii reports whether p holds no byte of 0x80 or more.
func ascii(p []byte) bool {
	var acc uint64
	for ; len(p) >= 8; p = p[8:] {
		acc |= binary.LittleEndian.Uint64(p)
	}
	for _, c := range p {
		acc |= uint64(c)
	}
	return acc&0x8080808080808080 == 0
}

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

// itemAttrFields returns the fields of an item that hold its attributes
// (repeated KeyValue) and its AnyValue body (0 if none), for an item of sig
// whose Metric data field is dataNum (metrics only).
func itemAttrFields(sig Signal, dataNum FieldNum) (attrs, body FieldNum) {
	switch sig {
	case Logs:
		return LogRecordAttributes, LogRecordBody
	case Traces:
		return SpanAttributes, 0
	}
	switch dataNum {
	case MetricHistogram:
		return HistogramDataPointAttributes, 0
	case MetricExponentialHistogram:
		return ExponentialHistogramDataPointAttributes, 0
	case MetricSummary:
		return SummaryDataPointAttributes, 0
	}
	return NumberDataPointAttributes, 0
}

// ItemProblem is what CheckItem found wrong with an item.
type ItemProblem struct {
	Problem Problem
	// Field of the item at fault: its attributes or its body.
	Field FieldNum
	// Attr is the index of the bad attribute among the item's attributes,
	// and AttrField the KeyValue field at fault (KeyValueKey or
	// KeyValueValue); Attr is -1 when Field is not the attributes.
	Attr      int
	AttrField FieldNum
}

// CheckItem checks the attributes and body of an item (a data point of a
// metric whose data field is dataNum, a log record or a span, without its
// tag and length) against the limits. It allocates nothing.
func CheckItem(sig Signal, dataNum FieldNum, item []byte) ItemProblem {
	attrs, body := itemAttrFields(sig, dataNum)
	na := 0
	for i := 0; i < len(item); {
		f, code := ReadField(item, i)
		if code != ReadOK {
			return ItemProblem{Problem: ProblemMalformed, Field: f.Num, Attr: -1}
		}
		i = f.End
		if f.Type != WireLen {
			continue
		}
		switch f.Num {
		case attrs:
			if pr, fld := CheckKeyValue(item[f.Val:f.End]); pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: f.Num, Attr: na, AttrField: fld}
			}
			na++
		case body:
			if body != 0 {
				if pr := CheckAnyValue(item[f.Val:f.End], 0); pr != ProblemNone {
					return ItemProblem{Problem: pr, Field: f.Num, Attr: -1}
				}
			}
		}
	}
	return ItemProblem{}
}
