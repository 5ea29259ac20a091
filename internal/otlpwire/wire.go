package otlpwire

import "google.golang.org/protobuf/encoding/protowire"

// Wire types of the protobuf encoding.
const (
	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireSGroup = 3
	wireEGroup = 4
	wireI32    = 5
)

// maxFieldNumber is the largest field number proto.Unmarshal accepts.
const maxFieldNumber = 1<<29 - 1

// errCode says what readField found wrong. The hot path passes only the code;
// the error message is worked out again from the bytes, off the hot path (see
// scanner.fail).
type errCode uint8

const (
	errNone     errCode = iota
	errTag              // tag varint truncated or longer than 10 bytes
	errFieldNum         // field number 0 or above maxFieldNumber
	errWireType         // wire type 6 or 7
	errEndGroup         // end-group tag with no group open
	errVarint           // varint value truncated or longer than 10 bytes
	errLength           // length prefix truncated or longer than 10 bytes
	errTruncLen         // length-delimited value runs past its message
	errFixed            // fixed32 or fixed64 value runs past its message
	errGroup            // group malformed or not closed inside its message
)

// uvarintSlow decodes the varint at b[i:] as protowire.ConsumeVarint does (at
// most 10 bytes, the 10th holding at most one bit) and returns the offset
// after it. readField decodes the common short varints itself.
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

// readField reads the field that starts at b[i]; b ends where the enclosing
// message ends. For a length-delimited field val..end is the value without
// its length prefix; for other wire types val is where the value starts. The
// whole field, tag included, is b[i:end].
func readField(b []byte, i int) (num uint32, typ uint8, val, end int, code errCode) {
	var tag uint64
	if i < len(b) && b[i] < 0x80 {
		tag, val = uint64(b[i]), i+1
	} else {
		var ok bool
		if tag, val, ok = uvarintSlow(b, i); !ok {
			return 0, 0, 0, 0, errTag
		}
	}
	if f := tag >> 3; f == 0 || f > maxFieldNumber {
		return 0, 0, 0, 0, errFieldNum
	}
	num, typ = uint32(tag>>3), uint8(tag&7)
	switch typ {
	case wireLen:
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
				return num, typ, 0, 0, errLength
			}
		}
		if n > uint64(len(b)-p) {
			return num, typ, 0, 0, errTruncLen
		}
		return num, typ, p, p + int(n), errNone
	case wireVarint:
		if val < len(b) && b[val] < 0x80 {
			return num, typ, val, val + 1, errNone
		}
		_, e, ok := uvarintSlow(b, val)
		if !ok {
			return num, typ, 0, 0, errVarint
		}
		return num, typ, val, e, errNone
	case wireI64:
		if len(b)-val < 8 {
			return num, typ, 0, 0, errFixed
		}
		return num, typ, val, val + 8, errNone
	case wireI32:
		if len(b)-val < 4 {
			return num, typ, 0, 0, errFixed
		}
		return num, typ, val, val + 4, errNone
	case wireSGroup:
		// Only unknown fields may be groups; skip it the way proto.Unmarshal
		// skips unknown fields, with the same nesting limit.
		n := protowire.ConsumeFieldValue(protowire.Number(num), protowire.StartGroupType, b[val:])
		if n < 0 {
			return num, typ, 0, 0, errGroup
		}
		return num, typ, val, val + n, errNone
	case wireEGroup:
		return num, typ, 0, 0, errEndGroup
	}
	return num, typ, 0, 0, errWireType
}

// fieldSize is the encoded size of a length-delimited field with a one-byte
// tag (every field the splitter writes has a number below 16) and n bytes of
// content.
func fieldSize(n int) int {
	return 1 + protowire.SizeVarint(uint64(n)) + n
}
