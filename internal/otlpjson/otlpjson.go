package otlpjson

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// maxDepth is how deeply messages may nest, counting the request itself: the
// limit of protojson and of proto.Unmarshal, so that whatever one side
// accepts the other does too.
const maxDepth = 10000

// UnmarshalRequest decodes an OTLP/JSON Export*ServiceRequest of the given
// signal and appends its protobuf encoding to dst. On error dst is returned
// unchanged, and the error is an *Error.
func UnmarshalRequest(sig otlpwire.Signal, body, dst []byte) ([]byte, error) {
	m, err := root(sig, false)
	if err != nil {
		return dst, err
	}
	return unmarshal(m, body, dst)
}

// MarshalRequest encodes a protobuf Export*ServiceRequest of the given signal
// as one line of OTLP/JSON (without a newline) appended to dst. On error dst is
// returned unchanged, and the error is an *Error.
func MarshalRequest(sig otlpwire.Signal, pb, dst []byte) ([]byte, error) {
	m, err := root(sig, false)
	if err != nil {
		return dst, err
	}
	return marshal(m, pb, dst)
}

// UnmarshalResponse is UnmarshalRequest for an Export*ServiceResponse.
func UnmarshalResponse(sig otlpwire.Signal, body, dst []byte) ([]byte, error) {
	m, err := root(sig, true)
	if err != nil {
		return dst, err
	}
	return unmarshal(m, body, dst)
}

// MarshalResponse is MarshalRequest for an Export*ServiceResponse.
func MarshalResponse(sig otlpwire.Signal, pb, dst []byte) ([]byte, error) {
	m, err := root(sig, true)
	if err != nil {
		return dst, err
	}
	return marshal(m, pb, dst)
}

func root(sig otlpwire.Signal, response bool) (*message, error) {
	s := loadSchema()
	if int(sig) >= len(s.request) {
		return nil, fmt.Errorf("otlpjson: unknown signal %v", sig)
	}
	if response {
		return s.response[sig], nil
	}
	return s.request[sig], nil
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

func unmarshal(m *message, body, dst []byte) ([]byte, error) {
	d := decoders.Get().(*decoder)
	defer func() {
		d.release()
		decoders.Put(d)
	}()
	d.reset(body)
	if err := d.top(m); err != nil {
		return dst, err
	}
	return d.assemble(dst), nil
}

var encoders = sync.Pool{New: func() any { return new(encoder) }}

func marshal(m *message, pb, dst []byte) ([]byte, error) {
	e := encoders.Get().(*encoder)
	defer func() {
		e.release()
		encoders.Put(e)
	}()
	e.reset(dst)
	if err := e.message(m, pb); err != nil {
		return dst, err
	}
	return e.out, nil
}

// Error describes malformed input: which field, where, and what is wrong.
type Error struct {
	// Path names the field in JSON terms, such as
	// resourceSpans[0].scopeSpans[0].spans[2].traceId; it is empty for a
	// problem outside any field.
	Path string
	// Offset is the byte offset in the input at which the problem was found.
	Offset int
	// Line and Column (from 1) locate Offset in JSON input; they are 0 for
	// protobuf input.
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("otlpjson: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d, column %d)", e.Line, e.Column)
	} else {
		fmt.Fprintf(&b, " (protobuf offset %d)", e.Offset)
	}
	return b.String()
}

// pathElem is one step of an error path: a field, and the element of it when
// it is a list (index >= 0).
type pathElem struct {
	name  string
	index int
}

func formatPath(p []pathElem) string {
	var b strings.Builder
	const head, tail = 6, 6 // of a path too long to print whole
	for i, e := range p {
		if len(p) > head+tail && i >= head && i < len(p)-tail {
			if i == head {
				fmt.Fprintf(&b, ".(%d more)", len(p)-head-tail)
			}
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.name)
		if e.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// lineCol converts a byte offset into a 1-based line and column (in bytes).
func lineCol(in []byte, off int) (line, col int) {
	off = min(off, len(in))
	line, start := 1, 0
	for i := range off {
		if in[i] == '\n' {
			line++
			start = i + 1
		}
	}
	return line, off - start + 1
}
