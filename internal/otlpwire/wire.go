package otlpwire

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"
)

// The field reader below is sluice's one reader of the protobuf encoding:
// the scanner walks requests with it, and the schemas decoders read every
// OTLP message with it into Arrow. Both are hot paths, so it is written for
// the common case (one-byte tags, short lengths, small varints) and returns
// positions rather than slices, which the scanner needs for its index.

// WireType says how a field's value is encoded: the low three bits of its
// tag.
type WireType uint8

// The wire types of the protobuf encoding, named as in its specification.
const (
	WireVarint WireType = 0 // int32, int64, uint32, uint64, sint32, sint64, bool, enum
	WireI64    WireType = 1 // fixed64, sfixed64, double
	WireLen    WireType = 2 // string, bytes, messages, packed repeated fields
	WireSGroup WireType = 3 // start of a group (deprecated; only unknown fields)
	WireEGroup WireType = 4 // end of a group
	WireI32    WireType = 5 // fixed32, sfixed32, float
)

// FieldNum is the number of a field in its message. fields.go names those of
// the OTLP messages.
type FieldNum uint32

// maxFieldNum is the largest field number proto.Unmarshal accepts.
const maxFieldNum = 1<<29 - 1

// Tag is what a field's tag holds. Field embeds it rather than holding Num
// and Type itself because the compiler keeps a struct of at most four
// fields in registers, and one of five in memory: with five, the scanner ran
// a fifth more instructions.
type Tag struct {
	Num  FieldNum
	Type WireType
}

// Field is a field as ReadField reads it from b, the encoding of its message.
type Field struct {
	Tag
	// b[Val:End] is the value: for WireLen the content without its length
	// prefix, for WireSGroup the group's fields and end tag, for the other
	// types the encoded value. The next field starts at End.
	Val, End int
	// X is the value of a WireVarint, WireI64 or WireI32 field, as its
	// unsigned bits (math.Float64frombits(X) for a double, int64(X) for an
	// int64 or sfixed64).
	X uint64
}

// ReadErr says what ReadField found wrong with a field: ReadOK when nothing.
// The other values are precise for the scanner's error messages (see
// scanner.fail), which work the details out again from the bytes, off the
// hot path.
type ReadErr uint8

const (
	ReadOK      ReadErr = iota
	errTag              // tag varint truncated or longer than 10 bytes
	errFieldNum         // field number 0 or above maxFieldNum
	errWireType         // wire type 6 or 7
	errEndGroup         // end-group tag with no group open
	errVarint           // varint value truncated or longer than 10 bytes
	errLength           // length prefix truncated or longer than 10 bytes
	errTruncLen         // length-delimited value runs past its message
	errFixed            // fixed32 or fixed64 value runs past its message
	errGroup            // group malformed or not closed inside its message
)

// ReadField reads the field that starts at b[i]; b ends where the enclosing
// message ends, so the whole field, tag included, is b[i:f.End]. It accepts
// exactly what proto.Unmarshal accepts of a field's framing: a varint of at
// most 10 bytes (the 10th holding at most one bit), a field number from 1 to
// 2^29-1, wire types 0 to 5, values inside the message, groups (skipped as
// proto.Unmarshal skips unknown groups) but no stray end-group tag. On
// failure f.Num is the field number when the tag could be read (0 if not),
// for error messages.
func ReadField(b []byte, i int) (Field, ReadErr) {
	var tag uint64
	var val int
	if i < len(b) && b[i] < 0x80 {
		tag, val = uint64(b[i]), i+1
	} else {
		var ok bool
		if tag, val, ok = uvarintSlow(b, i); !ok {
			return Field{}, errTag
		}
	}
	if n := tag >> 3; n == 0 || n > maxFieldNum {
		return Field{}, errFieldNum
	}
	t := Tag{FieldNum(tag >> 3), WireType(tag & 7)}
	switch t.Type {
	case WireLen:
		var n uint64
		var p int
		switch {
		case val < len(b) && b[val] < 0x80:
			n, p = uint64(b[val]), val+1
		case val+1 < len(b) && b[val+1] < 0x80: // lengths below 16 KiB
			n, p = uint64(b[val]&0x7f)|uint64(b[val+1])<<7, val+2
		default:
			var ok bool
			if n, p, ok = uvarintSlow(b, val); !ok {
				return Field{Tag: t}, errLength
			}
		}
		if n > uint64(len(b)-p) {
			return Field{Tag: t}, errTruncLen
		}
		return Field{t, p, p + int(n), 0}, ReadOK
	case WireVarint:
		if val < len(b) && b[val] < 0x80 {
			return Field{t, val, val + 1, uint64(b[val])}, ReadOK
		}
		if val+1 < len(b) && b[val+1] < 0x80 {
			return Field{t, val, val + 2, uint64(b[val]&0x7f) | uint64(b[val+1])<<7}, ReadOK
		}
		x, end, ok := uvarintSlow(b, val)
		if !ok {
			return Field{Tag: t}, errVarint
		}
		return Field{t, val, end, x}, ReadOK
	case WireI64:
		if len(b)-val < 8 {
			return Field{Tag: t}, errFixed
		}
		// The full slice expression spares the compiler a second bounds
		// check (the scanner reads every fixed64 of a span for its trace id).
		return Field{t, val, val + 8, binary.LittleEndian.Uint64(b[val : val+8 : val+8])}, ReadOK
	case WireI32:
		if len(b)-val < 4 {
			return Field{Tag: t}, errFixed
		}
		return Field{t, val, val + 4, uint64(binary.LittleEndian.Uint32(b[val : val+4 : val+4]))}, ReadOK
	case WireSGroup:
		// Only unknown fields may be groups; skip it the way proto.Unmarshal
		// skips unknown fields, with the same nesting limit.
		n := protowire.ConsumeFieldValue(protowire.Number(t.Num), protowire.StartGroupType, b[val:])
		if n < 0 {
			return Field{Tag: t}, errGroup
		}
		return Field{t, val, val + n, 0}, ReadOK
	case WireEGroup:
		return Field{Tag: t}, errEndGroup
	}
	return Field{Tag: t}, errWireType
}

// ReadVarint reads the varint at b[i:], as ReadField reads one, and returns
// its value and the offset after it; ok is false when it is truncated or
// longer than 10 bytes.
func ReadVarint(b []byte, i int) (v uint64, end int, ok bool) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1, true
	}
	return uvarintSlow(b, i)
}

// uvarintSlow decodes the varint at b[i:] as protowire.ConsumeVarint does (at
// most 10 bytes, the 10th holding at most one bit) and returns the offset
// after it. Callers decode the common short varints themselves.
func uvarintSlow(b []byte, i int) (uint64, int, bool) {
	var v uint64
	for k := 0; k < 10; k++ {
		if i >= len(b) {
			return 0, 0, false
		}
		c := b[i]
		i++
		if k == 9 && c > 1 {
			return 0, 0, false
		}
		v |= uint64(c&0x7f) << (7 * k)
		if c < 0x80 {
			return v, i, true
		}
	}
	return 0, 0, false // not reached: the 10th byte either ends or fails
}

// AppendTag appends the tag of field num of type typ. Every OTLP field but
// Span.flags has a one-byte tag, which AppendTag writes inline.
func AppendTag(dst []byte, num FieldNum, typ WireType) []byte {
	if num < 16 {
		return append(dst, byte(num)<<3|byte(typ))
	}
	return appendLongTag(dst, num, typ)
}

// appendLongTag is kept out of line so that AppendTag inlines.
//
//go:noinline
func appendLongTag(dst []byte, num FieldNum, typ WireType) []byte {
	return protowire.AppendVarint(dst, uint64(num)<<3|uint64(typ))
}

// LenFieldSize is the encoded size of a length-delimited field with a
// one-byte tag (a field number below 16) and n bytes of content.
func LenFieldSize(n int) int {
	return 1 + protowire.SizeVarint(uint64(n)) + n
}
