package otlpjson

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// encoder turns protobuf wire bytes into OTLP/JSON without building message
// structs. Each message is read once into a list of its fields (values still
// pointing into the input), sorted into declaration order, and written out.
//
// Its output is what proto.Unmarshal followed by
// protojson.MarshalOptions{UseEnumNumbers: true} writes (less the spaces
// protojson adds at random), with trace and span ids in hex; it fails on the
// input proto.Unmarshal fails on, and on ids of the wrong length.
type encoder struct {
	out        []byte
	path       []pathElem
	fields     [][]wireField // per depth, reused
	top        [1]wireField
	validating int // > 0 while checking values that will not be written
}

// wireField is one occurrence of a known field in a message.
type wireField struct {
	f   *field
	seq int    // position among the message's occurrences
	at  int    // offset of the value in the whole input, for errors
	v   uint64 // varint or fixed value
	b   []byte // length-delimited value
	wt  protowire.Type
}

func (e *encoder) reset(dst []byte) {
	e.out, e.path, e.validating = dst, e.path[:0], 0
}

func (e *encoder) release() {
	e.out, e.top[0] = nil, wireField{}
	for i := range e.fields {
		clear(e.fields[i][:cap(e.fields[i])]) // drop the references into the input
		e.fields[i] = e.fields[i][:0]
	}
}

func (e *encoder) errAt(at int, format string, args ...any) error {
	return &Error{Path: formatPath(e.path), Offset: at, Msg: fmt.Sprintf(format, args...)}
}

// message writes the protobuf message pb as a JSON object.
func (e *encoder) message(m *message, pb []byte) error {
	e.top[0] = wireField{b: pb}
	return e.messageAt(m, e.top[:], 1)
}

// messageAt writes one message as a JSON object. A message field that occurs
// more than once is the merge of its occurrences, which protobuf defines as
// the message their concatenation encodes; parts are those occurrences, read
// in turn, each of which must be well formed on its own. Nothing is copied
// or read twice, so the work stays linear however the merges nest.
func (e *encoder) messageAt(m *message, parts []wireField, depth int) error {
	if depth > maxDepth {
		return e.errAt(parts[0].at, "messages nested more than %d deep", maxDepth)
	}
	for len(e.fields) <= depth {
		e.fields = append(e.fields, nil)
	}
	fs := e.fields[depth][:0]
	var winner [maxOneofs]*field // the member of each oneof set last
	var since [maxOneofs]int     // seq of its first occurrence since the oneof last changed member
	for i := range parts {
		b, at := parts[i].b, parts[i].at
		for pos := 0; pos < len(b); {
			num, wt, n := protowire.ConsumeTag(b[pos:])
			if n < 0 {
				return e.errAt(at+pos, "%v", protowire.ParseError(n))
			}
			if num > protowire.MaxValidNumber {
				return e.errAt(at+pos, "invalid field number %d", num)
			}
			valAt := pos + n
			f := m.fieldByNum(num)
			if f == nil || !(wt == f.wireType || f.packed && wt == protowire.BytesType) {
				// Unknown, or known with another wire type, which protobuf
				// also treats as unknown: skipped, once checked to be well
				// formed.
				k := protowire.ConsumeFieldValue(num, wt, b[valAt:])
				if k < 0 {
					return e.errAt(at+valAt, "field %d: %v", num, protowire.ParseError(k))
				}
				pos = valAt + k
				continue
			}
			w := wireField{f: f, seq: len(fs), at: at + valAt, wt: wt}
			var k int
			switch wt {
			case protowire.VarintType:
				w.v, k = protowire.ConsumeVarint(b[valAt:])
			case protowire.Fixed32Type:
				var v uint32
				v, k = protowire.ConsumeFixed32(b[valAt:])
				w.v = uint64(v)
			case protowire.Fixed64Type:
				w.v, k = protowire.ConsumeFixed64(b[valAt:])
			default:
				w.b, k = protowire.ConsumeBytes(b[valAt:])
			}
			if k < 0 {
				e.path = append(e.path, pathElem{name: f.name, index: -1})
				return e.errAt(at+valAt, "%v", protowire.ParseError(k))
			}
			if wt == protowire.BytesType {
				w.at += k - len(w.b)
				if err := e.check(f, w.b, w.at); err != nil {
					return err
				}
			}
			if o := f.oneof; o >= 0 && winner[o] != f {
				winner[o], since[o] = f, len(fs)
			}
			fs = append(fs, w)
			pos = valAt + k
		}
	}
	e.fields[depth] = fs // keep the grown slice for the next message at this depth

	if !slices.IsSortedFunc(fs, byIndex) {
		slices.SortStableFunc(fs, byIndex)
	}
	e.out = append(e.out, '{')
	first := true
	for i := 0; i < len(fs); {
		f := fs[i].f
		j := i + 1
		for j < len(fs) && fs[j].f == f {
			j++
		}
		group := fs[i:j]
		i = j
		if o := f.oneof; o >= 0 {
			// Only the occurrences since the oneof last switched to f
			// count; the others must still be valid, as for proto.Unmarshal.
			live := len(group)
			if winner[o] == f {
				live = 0
				for live < len(group) && group[live].seq < since[o] {
					live++
				}
			}
			if err := e.validate(f, group[:live], depth); err != nil {
				return err
			}
			group = group[live:]
			if len(group) == 0 {
				continue
			}
		}
		e.path = append(e.path, pathElem{name: f.name, index: -1})
		if err := e.field(f, group, depth, &first); err != nil {
			return err
		}
		e.path = e.path[:len(e.path)-1]
	}
	e.out = append(e.out, '}')
	return nil
}

func byIndex(a, b wireField) int { return a.f.index - b.f.index }

// check validates a length-delimited value as proto.Unmarshal does when it
// reads it: UTF-8 in strings, whole values in packed runs.
func (e *encoder) check(f *field, b []byte, at int) error {
	switch {
	case f.kind == kindString:
		if !utf8.Valid(b) {
			e.path = append(e.path, pathElem{name: f.name, index: -1})
			return e.errAt(at, "invalid UTF-8 in string")
		}
	case f.packed:
		for len(b) > 0 {
			k := consumeScalar(f, b, nil)
			if k < 0 {
				e.path = append(e.path, pathElem{name: f.name, index: -1})
				return e.errAt(at, "packed %s: %v", kindNames[f.kind], protowire.ParseError(k))
			}
			b = b[k:]
		}
	}
	return nil
}

// consumeScalar reads one value of a packed run, storing it in v if not nil.
func consumeScalar(f *field, b []byte, v *uint64) int {
	var x uint64
	var k int
	switch f.wireType {
	case protowire.VarintType:
		x, k = protowire.ConsumeVarint(b)
	case protowire.Fixed32Type:
		var y uint32
		y, k = protowire.ConsumeFixed32(b)
		x = uint64(y)
	default:
		x, k = protowire.ConsumeFixed64(b)
	}
	if v != nil {
		*v = x
	}
	return k
}

// validate checks message values that are read but not written (members of
// a oneof that a later member replaced), as proto.Unmarshal reads them too.
func (e *encoder) validate(f *field, ws []wireField, depth int) error {
	if f.kind != kindMessage || len(ws) == 0 {
		return nil // scalars were checked as they were read
	}
	mark := len(e.out)
	e.validating++
	e.path = append(e.path, pathElem{name: f.name, index: -1})
	err := e.messageAt(f.msg, ws, depth+1)
	e.validating--
	e.out = e.out[:mark]
	if err != nil {
		return err
	}
	e.path = e.path[:len(e.path)-1]
	return nil
}

// field writes the occurrences of f.
func (e *encoder) field(f *field, ws []wireField, depth int, first *bool) error {
	if f.repeated {
		return e.list(f, ws, depth, first)
	}
	if f.kind == kindMessage {
		e.key(f, first)
		return e.messageAt(f.msg, ws, depth+1)
	}
	last := ws[len(ws)-1]
	if !f.presence && isZero(f, last) {
		return nil
	}
	e.key(f, first)
	return e.scalar(f, last)
}

func (e *encoder) list(f *field, ws []wireField, depth int, first *bool) error {
	pi := len(e.path) - 1
	n := 0
	writeOne := func() {
		if n == 0 {
			e.key(f, first)
			e.out = append(e.out, '[')
		} else {
			e.out = append(e.out, ',')
		}
		e.path[pi].index = n
		n++
	}
	for i, w := range ws {
		switch {
		case f.kind == kindMessage:
			writeOne()
			if err := e.messageAt(f.msg, ws[i:i+1], depth+1); err != nil {
				return err
			}
		case f.packed && w.wt == protowire.BytesType:
			for b := w.b; len(b) > 0; {
				k := consumeScalar(f, b, &w.v)
				b = b[k:]
				writeOne()
				if err := e.scalar(f, w); err != nil {
					return err
				}
			}
		default:
			writeOne()
			if err := e.scalar(f, w); err != nil {
				return err
			}
		}
	}
	if n > 0 {
		e.out = append(e.out, ']')
	}
	return nil
}

// key writes the name of f, after a comma unless it is the first.
func (e *encoder) key(f *field, first *bool) {
	if !*first {
		e.out = append(e.out, ',')
	}
	*first = false
	e.out = append(e.out, '"')
	e.out = append(e.out, f.name...)
	e.out = append(e.out, '"', ':')
}

// isZero reports whether a value is the default, which proto3 leaves out
// for fields without presence.
func isZero(f *field, w wireField) bool {
	switch f.kind {
	case kindString, kindBytes, kindID:
		return len(w.b) == 0
	case kindInt32, kindUint32, kindSint32, kindEnum, kindFixed32, kindSfixed32, kindFloat:
		return uint32(w.v) == 0
	}
	return w.v == 0
}

func (e *encoder) scalar(f *field, w wireField) error {
	out := e.out
	v := w.v
	switch f.kind {
	case kindDouble:
		out = appendFloat(out, math.Float64frombits(v), 64)
	case kindFloat:
		out = appendFloat(out, float64(math.Float32frombits(uint32(v))), 32)
	case kindInt32, kindEnum:
		out = strconv.AppendInt(out, int64(int32(v)), 10)
	case kindSint32:
		out = strconv.AppendInt(out, int64(int32(protowire.DecodeZigZag(v&math.MaxUint32))), 10)
	case kindSfixed32:
		out = strconv.AppendInt(out, int64(int32(uint32(v))), 10)
	case kindUint32, kindFixed32:
		out = strconv.AppendUint(out, uint64(uint32(v)), 10)
	case kindBool:
		out = strconv.AppendBool(out, v != 0)
	case kindInt64, kindSfixed64:
		out = append(strconv.AppendInt(append(out, '"'), int64(v), 10), '"')
	case kindSint64:
		out = append(strconv.AppendInt(append(out, '"'), protowire.DecodeZigZag(v), 10), '"')
	case kindUint64, kindFixed64:
		out = append(strconv.AppendUint(append(out, '"'), v, 10), '"')
	case kindString:
		out = appendString(out, w.b)
	case kindBytes:
		out = append(base64.StdEncoding.AppendEncode(append(out, '"'), w.b), '"')
	case kindID:
		if len(w.b) != 0 && len(w.b) != f.idLen && e.validating == 0 {
			return e.errAt(w.at, "%s has %d bytes, want %d", idName(f), len(w.b), f.idLen)
		}
		out = append(hex.AppendEncode(append(out, '"'), w.b), '"')
	}
	e.out = out
	return nil
}

// appendString writes s, which is valid UTF-8, as a JSON string, escaping
// what protojson escapes.
func appendString(out, s []byte) []byte {
	out = append(out, '"')
	start := 0
	for i, c := range s {
		if c >= ' ' && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			const digits = "0123456789abcdef"
			out = append(out, '\\', 'u', '0', '0', digits[c>>4], digits[c&0xf])
		}
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// appendFloat formats a double or float as protojson does (which follows
// encoding/json): the shortest representation, exponent form only for very
// large or small magnitudes, and the strings NaN, Infinity and -Infinity.
func appendFloat(out []byte, f float64, bitSize int) []byte {
	switch {
	case math.IsNaN(f):
		return append(out, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(out, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(out, `"-Infinity"`...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	out = strconv.AppendFloat(out, f, format, -1, bitSize)
	if format == 'e' { // e-07 -> e-7
		n := len(out)
		if n >= 4 && out[n-4] == 'e' && out[n-3] == '-' && out[n-2] == '0' {
			out[n-2] = out[n-1]
			out = out[:n-1]
		}
	}
	return out
}
