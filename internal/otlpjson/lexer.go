package otlpjson

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON scanner: strings, numbers, literals and skipping of values that
// the schema does not know. It accepts exactly RFC 8259 JSON, with the
// further rules of protojson: strings must be valid UTF-8 and may not escape
// half of a surrogate pair, and a literal or number must end at a delimiter.

func (d *decoder) ws() {
	for d.pos < len(d.in) {
		switch d.in[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) peekIs(c byte) bool { return d.pos < len(d.in) && d.in[d.pos] == c }

func (d *decoder) consume(c byte) bool {
	if d.peekIs(c) {
		d.pos++
		return true
	}
	return false
}

// literal reports whether the input at pos is lit followed by a delimiter.
func (d *decoder) literal(lit string) bool {
	rest := d.in[d.pos:]
	if len(rest) < len(lit) || string(rest[:len(lit)]) != lit {
		return false
	}
	return len(rest) == len(lit) || !isNotDelim(rest[len(lit)])
}

// isNotDelim reports whether c may continue a number or literal; a token
// followed by such a byte (1x, nullx) is malformed.
func isNotDelim(c byte) bool {
	return c == '-' || c == '+' || c == '.' || c == '_' ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// string reads the JSON string at pos and returns its contents. The result
// aliases the input when the string has no escapes, and d.str otherwise:
// either way it is only valid until the next call.
func (d *decoder) string() ([]byte, error) {
	start := d.pos
	i := start + 1
	for i < len(d.in) {
		c := d.in[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return d.in[start+1 : i], nil
		case c == '\\':
			return d.stringEscaped(start, i)
		case c < ' ':
			return nil, d.errAt(i, "invalid control character %q in string", c)
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(d.in[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, d.errAt(i, "invalid UTF-8 in string")
			}
			i += n
		}
	}
	return nil, d.errAt(len(d.in), "unexpected end of input in string")
}

// stringEscaped continues string from the first backslash at i.
func (d *decoder) stringEscaped(start, i int) ([]byte, error) {
	out := append(d.str[:0], d.in[start+1:i]...)
	defer func() { d.str = out[:0] }()
	in := d.in
	for i < len(in) {
		c := in[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return out, nil
		case c == '\\':
			if i+1 >= len(in) {
				return nil, d.errAt(len(in), "unexpected end of input in string")
			}
			switch e := in[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(in[i+2:])
				if !ok {
					return nil, d.errAt(i, "invalid escape %q in string", snippet(in[i:], 6))
				}
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if len(in) >= i+12 && in[i+6] == '\\' && in[i+7] == 'u' {
						r2, ok = hex4(in[i+8:])
					}
					if r = utf16.DecodeRune(r, r2); !ok || r == utf8.RuneError {
						return nil, d.errAt(i, "invalid escape %q in string: half of a surrogate pair", snippet(in[i:], 12))
					}
					i += 6
				}
				out = utf8.AppendRune(out, r)
				i += 4
			default:
				return nil, d.errAt(i, "invalid escape %q in string", snippet(in[i:], 2))
			}
			i += 2
		case c < ' ':
			return nil, d.errAt(i, "invalid control character %q in string", c)
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, n := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, d.errAt(i, "invalid UTF-8 in string")
			}
			out = append(out, in[i:i+n]...)
			i += n
		}
	}
	return nil, d.errAt(len(in), "unexpected end of input in string")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// scanNumber returns the length of the JSON number at the start of b, or 0
// when there is none.
func scanNumber(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return 0
	}
	if i+1 < len(b) && b[i] == '.' && '0' <= b[i+1] && b[i+1] <= '9' {
		i += 2
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		digits := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == digits {
			return 0
		}
	}
	if i < len(b) && isNotDelim(b[i]) {
		return 0
	}
	return i
}

// isNumber reports whether all of b is one JSON number.
func isNumber(b []byte) bool { return len(b) > 0 && scanNumber(b) == len(b) }

// parseInt reads the text of a JSON number as an integer the way protojson
// does: a fraction or exponent is fine as long as the value is whole (1e3,
// 2.50e1). It returns the magnitude and sign.
func parseInt(b []byte) (mag uint64, neg, ok bool) {
	if len(b) == 0 {
		return 0, false, false
	}
	if b[0] == '-' {
		neg, b = true, b[1:]
	}
	var intp, frac []byte
	i := 0
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	if i > 0 && b[0] != '0' {
		intp = b[:i]
	}
	b = b[i:]
	if len(b) > 0 && b[0] == '.' {
		i = 1
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		frac, b = b[1:i], b[i:]
		for len(frac) > 0 && frac[len(frac)-1] == '0' {
			frac = frac[:len(frac)-1]
		}
	}
	exp := 0
	if len(b) > 0 { // e or E
		e, err := strconv.ParseInt(string(b[1:]), 10, 32)
		if err != nil {
			return 0, false, false
		}
		exp = int(e)
	}
	if len(intp) == 0 && len(frac) == 0 {
		return 0, false, true
	}
	// The digits of the value are intp, frac and exp-len(frac) zeros, or
	// with a negative exponent intp without its last -exp digits, which must
	// be zeros.
	var zeros int
	digits := [2][]byte{intp, frac}
	if exp >= 0 {
		if len(frac) > exp || len(intp)+exp > 20 {
			return 0, false, false
		}
		zeros = exp - len(frac)
	} else {
		if len(frac) > 0 {
			return 0, false, false
		}
		cut := len(intp) + exp
		if cut <= 0 {
			return 0, false, false
		}
		for _, c := range intp[cut:] {
			if c != '0' {
				return 0, false, false
			}
		}
		digits[0] = intp[:cut]
	}
	for _, part := range digits {
		for _, c := range part {
			if mag, ok = mulAdd(mag, uint64(c-'0')); !ok {
				return 0, false, false
			}
		}
	}
	for range zeros {
		if mag, ok = mulAdd(mag, 0); !ok {
			return 0, false, false
		}
	}
	return mag, neg, true
}

func mulAdd(m, d uint64) (uint64, bool) {
	if m > (math.MaxUint64-d)/10 {
		return 0, false
	}
	return m*10 + d, true
}

// skip reads past one JSON value of a field the schema does not know,
// checking that it is well formed. budget bounds its nesting.
func (d *decoder) skip(budget int) error {
	stack := d.stack[:0]
	defer func() { d.stack = stack[:0] }()
	for {
		// A value.
		d.ws()
		if d.pos >= len(d.in) {
			return d.errAt(d.pos, "unexpected end of input")
		}
		switch c := d.in[d.pos]; {
		case c == '{' || c == '[':
			if len(stack) >= budget {
				return d.errAt(d.pos, "nested more than %d deep", maxDepth)
			}
			d.pos++
			d.ws()
			if c == '{' {
				stack = append(stack, '}')
				if d.consume('}') {
					stack = stack[:len(stack)-1]
					break
				}
				if err := d.key(); err != nil {
					return err
				}
				continue
			}
			stack = append(stack, ']')
			if d.consume(']') {
				stack = stack[:len(stack)-1]
				break
			}
			continue
		case c == '"':
			if _, err := d.string(); err != nil {
				return err
			}
		case c == '-' || '0' <= c && c <= '9':
			n := scanNumber(d.in[d.pos:])
			if n == 0 {
				return d.errAt(d.pos, "invalid number %q", token(d.in[d.pos:]))
			}
			d.pos += n
		case d.literal("true"):
			d.pos += 4
		case d.literal("false"):
			d.pos += 5
		case d.literal("null"):
			d.pos += 4
		default:
			return d.unexpected("a value")
		}
		// After a value: close containers until one continues with a comma.
		for {
			if len(stack) == 0 {
				return nil
			}
			d.ws()
			closer := stack[len(stack)-1]
			if d.consume(closer) {
				stack = stack[:len(stack)-1]
				continue
			}
			if !d.consume(',') {
				return d.unexpected(fmt.Sprintf("',' or '%c'", closer))
			}
			if closer == '}' {
				d.ws()
				if err := d.key(); err != nil {
					return err
				}
			}
			break
		}
	}
}

// key reads an object key and its colon.
func (d *decoder) key() error {
	if !d.peekIs('"') {
		return d.unexpected("a field name")
	}
	if _, err := d.string(); err != nil {
		return err
	}
	d.ws()
	if !d.consume(':') {
		return d.unexpected("':'")
	}
	return nil
}

// unexpected reports what was found where want was expected.
func (d *decoder) unexpected(want string) error {
	if d.pos >= len(d.in) {
		return d.errAt(d.pos, "expected %s, found end of input", want)
	}
	return d.errAt(d.pos, "expected %s, found %q", want, token(d.in[d.pos:]))
}

// token returns the JSON token at the start of b, or a prefix of it, for an
// error message.
func token(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	switch b[0] {
	case '{', '}', '[', ']', ',', ':':
		return b[:1]
	case '"':
		for i := 1; i < len(b) && i < 40; i++ {
			if b[i] == '\\' {
				i++
				continue
			}
			if b[i] == '"' {
				return b[:i+1]
			}
		}
		return snippet(b, 40)
	}
	n := 0
	for n < len(b) && n < 40 && isNotDelim(b[n]) {
		n++
	}
	if n == 0 {
		_, n = utf8.DecodeRune(b)
	}
	return b[:n]
}

func snippet(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
