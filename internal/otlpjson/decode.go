package otlpjson

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// decoder turns OTLP/JSON into protobuf wire bytes in one pass, with no
// intermediate objects: it writes each field as it reads it. The length of a
// nested message is only known at its end, and its varint may need more
// than one byte, so the fields are written without lengths into buf and the
// lengths noted in fix; assemble then writes the result with the lengths in
// place. No byte is moved more than once, however deep the nesting.
//
// It accepts what protojson.UnmarshalOptions{DiscardUnknown: true} accepts,
// and decodes it to the same message, except that trace and span ids are hex
// (as OTLP/JSON says) and that malformed JSON protojson lets through (the
// number 1e before a delimiter) is an error.
type decoder struct {
	in    []byte
	pos   int
	buf   []byte  // the fields, without the lengths in fix
	fix   []fixup // in order of position
	extra int     // bytes the varints of the finished fixups take
	path  []pathElem
	str   []byte // unescaped strings
	stack []byte // open containers while skipping
}

// fixup is a length that goes at pos of buf: n bytes follow.
type fixup struct{ pos, n int }

// lenMark is where a value of unknown length started.
type lenMark struct{ fix, start, extra int }

func (d *decoder) reset(in []byte) {
	d.in, d.pos, d.path = in, 0, d.path[:0]
	d.buf, d.fix, d.extra = d.buf[:0], d.fix[:0], 0
}

// release drops the reference to the caller's input, and buffers grown
// unusually large, before the decoder goes back to the pool.
func (d *decoder) release() {
	d.in = nil
	if cap(d.buf) > 16<<20 {
		d.buf, d.fix = nil, nil
	}
	if cap(d.str) > 1<<20 {
		d.str = nil
	}
}

// begin starts a length-delimited value whose length is not known yet; its
// tag has just been written.
func (d *decoder) begin() lenMark {
	d.fix = append(d.fix, fixup{pos: len(d.buf)})
	return lenMark{fix: len(d.fix) - 1, start: len(d.buf), extra: d.extra}
}

// end notes the length of the value started at m.
func (d *decoder) end(m lenMark) {
	n := len(d.buf) - m.start + d.extra - m.extra
	d.fix[m.fix].n = n
	d.extra += protowire.SizeVarint(uint64(n))
}

// drop removes the value started at m, and its tag at tagAt, when nothing
// nested in it has ended.
func (d *decoder) drop(m lenMark, tagAt int) {
	d.buf, d.fix = d.buf[:tagAt], d.fix[:m.fix]
}

// assemble appends the output, lengths and all, to dst.
func (d *decoder) assemble(dst []byte) []byte {
	out := slices.Grow(dst, len(d.buf)+d.extra)
	prev := 0
	for _, f := range d.fix {
		out = append(out, d.buf[prev:f.pos]...)
		out = protowire.AppendVarint(out, uint64(f.n))
		prev = f.pos
	}
	return append(out, d.buf[prev:]...)
}

func (d *decoder) errAt(pos int, format string, args ...any) error {
	line, col := lineCol(d.in, pos)
	return &Error{Path: formatPath(d.path), Offset: pos, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) top(m *message) error {
	d.ws()
	if !d.peekIs('{') {
		return d.unexpected("'{'")
	}
	if err := d.message(m, 1); err != nil {
		return err
	}
	d.ws()
	if d.pos < len(d.in) {
		return d.errAt(d.pos, "unexpected %q after the top-level object", token(d.in[d.pos:]))
	}
	return nil
}

// message reads the JSON object at pos (its '{' already checked) as m, at
// nesting depth depth.
func (d *decoder) message(m *message, depth int) error {
	if depth > maxDepth {
		return d.errAt(d.pos, "messages nested more than %d deep", maxDepth)
	}
	d.pos++
	d.ws()
	if d.consume('}') {
		return nil
	}
	var seen [maxFields / 64]uint64
	var oneofs [maxOneofs]*field // the member of each oneof that is set
	next := 0                    // index of the field expected next
	for {
		if !d.peekIs('"') {
			return d.unexpected("a field name")
		}
		keyPos := d.pos
		key, err := d.string()
		if err != nil {
			return err
		}
		// Encoders write fields in declaration order: try the one after
		// the last before the map.
		var f *field
		if next < len(m.fields) && m.fields[next].name == string(key) {
			f = &m.fields[next]
		} else {
			f = m.byName[string(key)]
		}
		if f != nil {
			next = f.index + 1
		}
		d.ws()
		if !d.consume(':') {
			return d.unexpected("':'")
		}
		d.ws()
		switch {
		case f == nil: // receivers MUST ignore unknown fields
			if err := d.skip(maxDepth - depth); err != nil {
				return err
			}
		case seen[f.index/64]&(1<<(f.index%64)) != 0:
			return d.errAt(keyPos, "duplicate field %q", f.name)
		case d.literal("null"): // the same as leaving the field out
			seen[f.index/64] |= 1 << (f.index % 64)
			d.pos += 4
		default:
			seen[f.index/64] |= 1 << (f.index % 64)
			if f.oneof >= 0 {
				if other := oneofs[f.oneof]; other != nil {
					return d.errAt(keyPos, "fields %q and %q are both set; only one of them may be", other.name, f.name)
				}
				oneofs[f.oneof] = f
			}
			d.path = append(d.path, pathElem{name: f.name, index: -1})
			if err := d.field(f, depth); err != nil {
				return err
			}
			d.path = d.path[:len(d.path)-1]
		}
		d.ws()
		if d.consume('}') {
			return nil
		}
		if !d.consume(',') {
			return d.unexpected("',' or '}'")
		}
		d.ws()
	}
}

// field reads the value of f in the message at depth.
func (d *decoder) field(f *field, depth int) error {
	if !f.repeated {
		if f.kind == kindMessage {
			return d.nested(f, depth)
		}
		return d.scalar(f, true, f.presence)
	}
	if !d.consume('[') {
		return d.unexpected("'['")
	}
	d.ws()
	if d.consume(']') {
		return nil
	}
	var tagAt int
	var run lenMark
	if f.packed {
		tagAt = len(d.buf)
		d.buf = protowire.AppendTag(d.buf, f.num, protowire.BytesType)
		run = d.begin()
	}
	pi := len(d.path) - 1
	for i := 0; ; i++ {
		d.path[pi].index = i
		var err error
		switch {
		case f.kind == kindMessage:
			err = d.nested(f, depth)
		default:
			err = d.scalar(f, !f.packed, true)
		}
		if err != nil {
			return err
		}
		d.ws()
		if d.consume(']') {
			break
		}
		if !d.consume(',') {
			return d.unexpected("',' or ']'")
		}
		d.ws()
	}
	d.path[pi].index = -1
	if f.packed {
		if len(d.buf) == run.start { // only unknown enum names
			d.drop(run, tagAt)
		} else {
			d.end(run)
		}
	}
	return nil
}

// nested reads one message value of f.
func (d *decoder) nested(f *field, depth int) error {
	if !d.peekIs('{') {
		return d.unexpected("'{'")
	}
	d.buf = protowire.AppendTag(d.buf, f.num, protowire.BytesType)
	m := d.begin()
	if err := d.message(f.msg, depth+1); err != nil {
		return err
	}
	d.end(m)
	return nil
}

// scalar reads one value of a non-message field. tag says whether to write
// the field's tag (not in a packed run); a zero value is left out unless
// keepZero.
func (d *decoder) scalar(f *field, tag, keepZero bool) error {
	start := d.pos
	switch f.kind {
	case kindString:
		if !d.peekIs('"') {
			return d.invalid(f, start)
		}
		s, err := d.string()
		if err != nil {
			return err
		}
		if len(s) > 0 || keepZero {
			d.buf = protowire.AppendTag(d.buf, f.num, protowire.BytesType)
			d.buf = protowire.AppendBytes(d.buf, s)
		}
		return nil

	case kindBytes, kindID:
		if !d.peekIs('"') {
			return d.invalid(f, start)
		}
		s, err := d.string()
		if err != nil {
			return err
		}
		if len(s) == 0 && !keepZero {
			return nil
		}
		if f.kind == kindID {
			if len(s) != 0 && len(s) != 2*f.idLen {
				return d.errAt(start, "invalid %s %q: want %d hex digits (%d bytes)", idName(f), snippet(s, 80), 2*f.idLen, f.idLen)
			}
			tagAt := len(d.buf)
			d.buf = protowire.AppendTag(d.buf, f.num, protowire.BytesType)
			d.buf = protowire.AppendVarint(d.buf, uint64(len(s)/2))
			if d.buf, err = hex.AppendDecode(d.buf, s); err != nil {
				d.buf = d.buf[:tagAt]
				return d.errAt(start, "invalid hex %q in %s", snippet(s, 80), idName(f))
			}
			return nil
		}
		tagAt := len(d.buf)
		d.buf = protowire.AppendTag(d.buf, f.num, protowire.BytesType)
		m := d.begin()
		if d.buf, err = appendBase64(d.buf, s); err != nil {
			d.drop(m, tagAt)
			return d.invalid(f, start)
		}
		d.end(m)
		return nil

	case kindBool:
		var v uint64
		switch {
		case d.literal("true"):
			d.pos += 4
			v = 1
		case d.literal("false"):
			d.pos += 5
		default:
			return d.invalid(f, start)
		}
		d.appendScalar(f, v, tag, keepZero)
		return nil

	case kindEnum:
		if d.peekIs('"') {
			s, err := d.string()
			if err != nil {
				return err
			}
			n, ok := f.enum[string(s)]
			if !ok { // an unknown name, as protojson with DiscardUnknown: left out
				return nil
			}
			d.appendScalar(f, uint64(int64(n)), tag, keepZero)
			return nil
		}
		text := d.numberToken()
		mag, neg, ok := parseInt(text)
		n, ok := toInt(mag, neg, ok, 32)
		if !ok {
			return d.invalid(f, start)
		}
		d.appendScalar(f, uint64(n), tag, keepZero)
		return nil

	case kindDouble, kindFloat:
		text, quoted, err := d.numberText()
		if err != nil {
			return err
		}
		bits := 64
		if f.kind == kindFloat {
			bits = 32
		}
		v, ok := parseFloat(text, quoted, bits)
		if !ok {
			return d.invalid(f, start)
		}
		w := math.Float64bits(v)
		if f.kind == kindFloat {
			w = uint64(math.Float32bits(float32(v)))
		}
		d.appendScalar(f, w, tag, keepZero)
		return nil
	}

	// Integers.
	text, quoted, err := d.numberText()
	if err != nil {
		return err
	}
	if quoted && !isNumber(text) {
		return d.invalid(f, start)
	}
	mag, neg, ok := parseInt(text)
	var v uint64
	switch f.kind {
	case kindInt32, kindSfixed32, kindSint32:
		var n int64
		if n, ok = toInt(mag, neg, ok, 32); ok {
			switch f.kind {
			case kindInt32:
				v = uint64(n)
			case kindSint32:
				v = protowire.EncodeZigZag(n)
			default:
				v = uint64(uint32(n))
			}
		}
	case kindInt64, kindSfixed64, kindSint64:
		var n int64
		if n, ok = toInt(mag, neg, ok, 64); ok {
			v = uint64(n)
			if f.kind == kindSint64 {
				v = protowire.EncodeZigZag(n)
			}
		}
	case kindUint32, kindFixed32:
		v, ok = toUint(mag, neg, ok, 32)
	case kindUint64, kindFixed64:
		v, ok = toUint(mag, neg, ok, 64)
	}
	if !ok {
		return d.invalid(f, start)
	}
	d.appendScalar(f, v, tag, keepZero)
	return nil
}

// appendScalar writes a value in its field's wire type: v is the varint, or
// the fixed 32 or 64 bits.
func (d *decoder) appendScalar(f *field, v uint64, tag, keepZero bool) {
	if v == 0 && !keepZero {
		return
	}
	if tag {
		d.buf = protowire.AppendTag(d.buf, f.num, f.wireType)
	}
	switch f.wireType {
	case protowire.VarintType:
		d.buf = protowire.AppendVarint(d.buf, v)
	case protowire.Fixed32Type:
		d.buf = protowire.AppendFixed32(d.buf, uint32(v))
	default:
		d.buf = protowire.AppendFixed64(d.buf, v)
	}
}

// numberToken reads a bare JSON number, returning nil when there is none.
func (d *decoder) numberToken() []byte {
	n := scanNumber(d.in[d.pos:])
	text := d.in[d.pos : d.pos+n]
	d.pos += n
	if n == 0 {
		return nil
	}
	return text
}

// numberText reads a number, bare or in a string (as 64-bit integers are
// written). A quoted text has not been checked to be a number.
func (d *decoder) numberText() (text []byte, quoted bool, err error) {
	if d.peekIs('"') {
		s, err := d.string()
		return s, true, err
	}
	return d.numberToken(), false, nil
}

// parseFloat parses a JSON number, or the string forms protojson accepts:
// a number in quotes, NaN, Infinity, -Infinity.
func parseFloat(text []byte, quoted bool, bits int) (float64, bool) {
	if quoted {
		switch string(text) {
		case "NaN":
			return math.NaN(), true
		case "Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
		if !isNumber(text) {
			return 0, false
		}
	}
	if len(text) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(text), bits)
	return v, err == nil
}

func toInt(mag uint64, neg, ok bool, bits uint) (int64, bool) {
	if !ok {
		return 0, false
	}
	limit := uint64(1) << (bits - 1)
	if neg {
		if mag > limit {
			return 0, false
		}
		return -int64(mag-1) - 1, true // -limit does not fit before negation
	}
	if mag >= limit {
		return 0, false
	}
	return int64(mag), true
}

func toUint(mag uint64, neg, ok bool, bits uint) (uint64, bool) {
	if !ok || neg && mag != 0 || bits < 64 && mag >= 1<<bits {
		return 0, false
	}
	return mag, true
}

// appendBase64 decodes a bytes field as protojson does: standard or URL
// alphabet, with or without padding.
func appendBase64(dst, s []byte) ([]byte, error) {
	enc := base64.StdEncoding
	for _, c := range s {
		if c == '-' || c == '_' {
			enc = base64.URLEncoding
			break
		}
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.AppendDecode(dst, s)
}

func idName(f *field) string {
	if f.idLen == 16 {
		return "trace id"
	}
	return "span id"
}

// invalid reports a value that does not fit its field.
func (d *decoder) invalid(f *field, start int) error {
	d.pos = start
	return d.errAt(start, "invalid value %s for a field of type %s", token(d.in[start:]), kindNames[f.kind])
}

var kindNames = [...]string{
	kindDouble: "double", kindFloat: "float",
	kindInt32: "int32", kindInt64: "int64", kindUint32: "uint32", kindUint64: "uint64",
	kindSint32: "sint32", kindSint64: "sint64",
	kindFixed32: "fixed32", kindFixed64: "fixed64", kindSfixed32: "sfixed32", kindSfixed64: "sfixed64",
	kindBool: "bool", kindEnum: "enum", kindString: "string", kindBytes: "bytes (base64)",
	kindID: "id (hex)", kindMessage: "message",
}
