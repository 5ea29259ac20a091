package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

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

// Protobuf wire types.
const (
	wtVarint = 0
	wtI64    = 1
	wtLen    = 2
	wtSGroup = 3
	wtI32    = 5
)

const maxFieldNumber = 1<<29 - 1

// maxDepth bounds AnyValue nesting (arrays and kvlists inside each other).
const maxDepth = 64

func malformed(where string, num uint32) error {
	return fmt.Errorf("%w: %s field %d", ErrMalformed, where, num)
}

func unsupported(where string, num uint32) error {
	return fmt.Errorf("%w: %s field %d", ErrUnsupported, where, num)
}

// uvarint decodes the varint at the start of b; n <= 0 on error.
func uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	if len(b) > 1 && b[1] < 0x80 {
		return uint64(b[0]&0x7f) | uint64(b[1])<<7, 2
	}
	return protowire.ConsumeVarint(b)
}

// next reads the field at the start of b: its number and wire type, the value
// of a varint or fixed-size field in v, the content of a length-delimited or
// group field in p, and the field's total length n (n < 0 when malformed).
func next(b []byte) (num uint32, typ uint8, v uint64, p []byte, n int) {
	// One-byte tags and lengths, by far the most common, are read here
	// rather than through a call of uvarint.
	var tag uint64
	i := 1
	if len(b) > 0 && b[0] < 0x80 {
		tag = uint64(b[0])
	} else {
		tag, i = uvarint(b)
	}
	if i <= 0 || tag>>3 == 0 || tag>>3 > maxFieldNumber {
		return 0, 0, 0, nil, -1
	}
	num, typ = uint32(tag>>3), uint8(tag&7)
	switch typ {
	case wtLen:
		var l uint64
		k := 1
		if i < len(b) && b[i] < 0x80 {
			l = uint64(b[i])
		} else if l, k = uvarint(b[i:]); k <= 0 {
			return num, typ, 0, nil, -1
		}
		i += k
		if l > uint64(len(b)-i) {
			return num, typ, 0, nil, -1
		}
		return num, typ, 0, b[i : i+int(l)], i + int(l)
	case wtVarint:
		v, k := uvarint(b[i:])
		if k <= 0 {
			return num, typ, 0, nil, -1
		}
		return num, typ, v, nil, i + k
	case wtI64:
		if len(b)-i < 8 {
			return num, typ, 0, nil, -1
		}
		return num, typ, binary.LittleEndian.Uint64(b[i:]), nil, i + 8
	case wtI32:
		if len(b)-i < 4 {
			return num, typ, 0, nil, -1
		}
		return num, typ, uint64(binary.LittleEndian.Uint32(b[i:])), nil, i + 4
	case wtSGroup:
		k := protowire.ConsumeFieldValue(protowire.Number(num), protowire.StartGroupType, b[i:])
		if k < 0 {
			return num, typ, 0, nil, -1
		}
		return num, typ, 0, b[i : i+k], i + k
	}
	return num, typ, 0, nil, -1
}

func validString(p []byte, where string, num uint32) error {
	if !utf8.Valid(p) {
		return fmt.Errorf("%w: %s field %d: invalid UTF-8", ErrMalformed, where, num)
	}
	return nil
}

func sint32(v uint64) int32 { return int32(protowire.DecodeZigZag(v & 0xffffffff)) }

// validateAny checks that p is a valid AnyValue encoding, recursively.
func validateAny(p []byte, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: AnyValue nested deeper than %d", ErrUnsupported, maxDepth)
	}
	for i := 0; i < len(p); {
		num, typ, _, q, n := next(p[i:])
		if n < 0 {
			return malformed("AnyValue", num)
		}
		i += n
		if typ != wtLen {
			continue
		}
		var err error
		switch num {
		case 1:
			err = validString(q, "AnyValue", num)
		case 5:
			err = validateList(q, depth+1, false)
		case 6:
			err = validateList(q, depth+1, true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// validateList checks an ArrayValue (kv false) or KeyValueList (kv true).
func validateList(p []byte, depth int, kv bool) error {
	for i := 0; i < len(p); {
		num, typ, _, q, n := next(p[i:])
		if n < 0 {
			return malformed("ArrayValue/KeyValueList", num)
		}
		i += n
		if num != 1 || typ != wtLen {
			continue
		}
		var err error
		if kv {
			err = validateKV(q, depth)
		} else {
			err = validateAny(q, depth)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func validateKV(p []byte, depth int) error {
	for i := 0; i < len(p); {
		num, typ, _, q, n := next(p[i:])
		if n < 0 {
			return malformed("KeyValue", num)
		}
		i += n
		if typ != wtLen {
			continue
		}
		var err error
		switch num {
		case 1:
			err = validString(q, "KeyValue", num)
		case 2:
			err = validateAny(q, depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- encoding helpers ----

func appendTag(dst []byte, num uint32, typ uint8) []byte {
	if num < 16 {
		return append(dst, byte(num<<3)|typ)
	}
	return protowire.AppendVarint(dst, uint64(num)<<3|uint64(typ))
}

func appendBytesField(dst []byte, num uint32, b []byte) []byte {
	dst = appendTag(dst, num, wtLen)
	dst = protowire.AppendVarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendStringField(dst []byte, num uint32, s string) []byte {
	dst = appendTag(dst, num, wtLen)
	dst = protowire.AppendVarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendStr, appendBin, appendVarintF, appendFixed64F and appendFixed32F
// write a proto3 scalar with implicit presence: nothing when zero.
func appendStr(dst []byte, num uint32, s string) []byte {
	if s == "" {
		return dst
	}
	return appendStringField(dst, num, s)
}

func appendBin(dst []byte, num uint32, b []byte) []byte {
	if len(b) == 0 {
		return dst
	}
	return appendBytesField(dst, num, b)
}

func appendVarintF(dst []byte, num uint32, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return protowire.AppendVarint(appendTag(dst, num, wtVarint), v)
}

func appendFixed64F(dst []byte, num uint32, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return binary.LittleEndian.AppendUint64(appendTag(dst, num, wtI64), v)
}

func appendFixed32F(dst []byte, num uint32, v uint32) []byte {
	if v == 0 {
		return dst
	}
	return binary.LittleEndian.AppendUint32(appendTag(dst, num, wtI32), v)
}

// openMsg starts a length-delimited field whose length is written by
// closeMsg, reserving reserve bytes for it.
func openMsg(dst []byte, num uint32, reserve int) ([]byte, int) {
	dst = appendTag(dst, num, wtLen)
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
