package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/protobuf/encoding/protowire"
)

// Errors returned by Builder.Append, ToOTLP and ReadBatch. Test with errors.Is.
var (
	// ErrMalformed: the request is not a valid protobuf encoding of an OTLP
	// request (truncated field, bad varint, invalid UTF-8 in a string...).
	ErrMalformed = errors.New("schemas: malformed OTLP request")
	// ErrUnsupported: the request is valid protobuf but holds something the
	// Arrow layout cannot keep losslessly (see README "What is rejected").
	ErrUnsupported = errors.New("schemas: unsupported OTLP content")
	// ErrSchema: a Batch does not have the layout of this schema version.
	ErrSchema = errors.New("schemas: batch does not match the schema")
)

// maxDepth bounds AnyValue nesting (arrays and kvlists inside each other).
const maxDepth = 64

func malformed(where string, num otlpwire.FieldNum) error {
	return fmt.Errorf("%w: %s field %d", ErrMalformed, where, num)
}

func unsupported(where string, num otlpwire.FieldNum) error {
	return fmt.Errorf("%w: %s field %d", ErrUnsupported, where, num)
}

func validString(p []byte, where string, num otlpwire.FieldNum) error {
	if !utf8.Valid(p) {
		return fmt.Errorf("%w: %s field %d: invalid UTF-8", ErrMalformed, where, num)
	}
	return nil
}

func sint32(v uint64) int32 { return int32(protowire.DecodeZigZag(v & 0xffffffff)) }

// validateAny checks that p is a valid AnyValue encoding, recursively.
//
//	message AnyValue {
//	  oneof value {
//	    string string_value = 1;
//	    ArrayValue array_value = 5;
//	    KeyValueList kvlist_value = 6;
//	  }
//	}
func validateAny(p []byte, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: AnyValue nested deeper than %d", ErrUnsupported, maxDepth)
	}
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("AnyValue", f.Num)
		}
		i = f.End
		if f.Type != otlpwire.WireLen {
			continue
		}
		var err error
		switch f.Num {
		case otlpwire.AnyValueStringValue:
			err = validString(p[f.Val:f.End], "AnyValue", f.Num)
		case otlpwire.AnyValueArrayValue:
			err = validateList(p[f.Val:f.End], depth+1, false)
		case otlpwire.AnyValueKvlistValue:
			err = validateList(p[f.Val:f.End], depth+1, true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// validateList checks an ArrayValue (kv false) or KeyValueList (kv true).
//
//	message ArrayValue { repeated AnyValue values = 1; }
//	message KeyValueList { repeated KeyValue values = 1; }
func validateList(p []byte, depth int, kv bool) error {
	values := otlpwire.ArrayValueValues
	if kv {
		values = otlpwire.KeyValueListValues
	}
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("ArrayValue/KeyValueList", f.Num)
		}
		i = f.End
		if f.Num != values || f.Type != otlpwire.WireLen {
			continue
		}
		var err error
		if kv {
			err = validateKV(p[f.Val:f.End], depth)
		} else {
			err = validateAny(p[f.Val:f.End], depth)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// validateKV checks a KeyValue.
//
//	message KeyValue {
//	  string key = 1;
//	  AnyValue value = 2;
//	}
func validateKV(p []byte, depth int) error {
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("KeyValue", f.Num)
		}
		i = f.End
		if f.Type != otlpwire.WireLen {
			continue
		}
		var err error
		switch f.Num {
		case otlpwire.KeyValueKey:
			err = validString(p[f.Val:f.End], "KeyValue", f.Num)
		case otlpwire.KeyValueValue:
			err = validateAny(p[f.Val:f.End], depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- encoding helpers ----

func appendBytesField(dst []byte, num otlpwire.FieldNum, b []byte) []byte {
	dst = otlpwire.AppendTag(dst, num, otlpwire.WireLen)
	dst = protowire.AppendVarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendStringField(dst []byte, num otlpwire.FieldNum, s string) []byte {
	dst = otlpwire.AppendTag(dst, num, otlpwire.WireLen)
	dst = protowire.AppendVarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendStr, appendBin, appendVarintF, appendFixed64F and appendFixed32F
// write a proto3 scalar with implicit presence: nothing when zero.
func appendStr(dst []byte, num otlpwire.FieldNum, s string) []byte {
	if s == "" {
		return dst
	}
	return appendStringField(dst, num, s)
}

func appendBin(dst []byte, num otlpwire.FieldNum, b []byte) []byte {
	if len(b) == 0 {
		return dst
	}
	return appendBytesField(dst, num, b)
}

func appendVarintF(dst []byte, num otlpwire.FieldNum, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return protowire.AppendVarint(otlpwire.AppendTag(dst, num, otlpwire.WireVarint), v)
}

func appendFixed64F(dst []byte, num otlpwire.FieldNum, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return binary.LittleEndian.AppendUint64(otlpwire.AppendTag(dst, num, otlpwire.WireI64), v)
}

func appendFixed32F(dst []byte, num otlpwire.FieldNum, v uint32) []byte {
	if v == 0 {
		return dst
	}
	return binary.LittleEndian.AppendUint32(otlpwire.AppendTag(dst, num, otlpwire.WireI32), v)
}

// openMsg starts a length-delimited field whose length is written by
// closeMsg, reserving reserve bytes for it.
func openMsg(dst []byte, num otlpwire.FieldNum, reserve int) ([]byte, int) {
	dst = otlpwire.AppendTag(dst, num, otlpwire.WireLen)
	for range reserve {
		dst = append(dst, 0)
	}
	return dst, len(dst)
}
func closeMsg(dst []byte, start, reserve int) []byte {
	n := len(dst) - start
	sz := protowire.SizeVarint(uint64(n))
	switch {
	case sz < reserve:
		copy(dst[start-reserve+sz:], dst[start:])
		dst = dst[:len(dst)-(reserve-sz)]
	case sz > reserve:
		grow := sz - reserve
		for range grow {
			dst = append(dst, 0)
		}
		copy(dst[start+grow:], dst[start:len(dst)-grow])
	}
	protowire.AppendVarint(dst[:start-reserve], uint64(n))
	return dst
}
