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

// maxDepth bounds AnyValue nesting (arrays and kvlists inside each other):
// the ingester's limit, stated once in otlpwire.
const maxDepth = otlpwire.MaxAnyValueDepth

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

// validateAny checks that p is a valid AnyValue encoding at nesting level
// depth, recursively, by the limits the ingester checks too
// (otlpwire.CheckAnyValue).
func validateAny(p []byte, depth int) error {
	return anyError(otlpwire.CheckAnyValue(p, depth))
}

// validateList checks an ArrayValue (kv false) or KeyValueList (kv true).
func validateList(p []byte, depth int, kv bool) error {
	return anyError(otlpwire.CheckList(p, depth, kv))
}

func anyError(pr otlpwire.Problem) error {
	switch pr {
	case otlpwire.ProblemNone:
		return nil
	case otlpwire.ProblemDepth:
		return fmt.Errorf("%w: AnyValue nested deeper than %d", ErrUnsupported, maxDepth)
	case otlpwire.ProblemUTF8:
		return fmt.Errorf("%w: AnyValue: invalid UTF-8", ErrMalformed)
	}
	return fmt.Errorf("%w: AnyValue: %v", ErrMalformed, pr)
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
