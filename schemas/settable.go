package schemas

import (
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// SetTableBuilder builds tables of attribute sets (Batch.ItemAttrSetTable)
// from the sets' OTLP encodings, for a producer of batches that knows its
// items' sets without reading them from each item (an aggregator's
// output, a set per series). Reuse one from table to table: its buffers
// are sized from the last. It is not safe for concurrent use.
type SetTableBuilder struct {
	strict bool // always false: the strings are checked once, at Build
	a      attrTable
}

// NewSetTableBuilder returns a SetTableBuilder whose tables' buffers come
// from mem.
func NewSetTableBuilder(mem memory.Allocator) *SetTableBuilder {
	s := &SetTableBuilder{}
	s.a = newAttrTable(&s.strict, mem)
	return s
}

// Add appends a row holding the attributes encoded in kvs: KeyValue
// messages, each a length-delimited field (of any number: a message's
// attributes field), as a point's attributes are on the wire. An error
// leaves the table unusable until Reset.
func (s *SetTableBuilder) Add(kvs string) error {
	a := &s.a
	a.row(true)
	p := unsafe.Slice(unsafe.StringData(kvs), len(kvs))
	for i := 0; i < len(p); {
		if j, _, err := a.appendKVs(p, i, p[i]); err != nil {
			return fmt.Errorf("%w: attribute set %d: %v", ErrMalformed, s.a.len()-1, err)
		} else if j > i {
			i = j
			continue
		}
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK || f.Type != otlpwire.WireLen {
			return fmt.Errorf("%w: attribute set %d: not a run of KeyValue messages", ErrMalformed, s.a.len()-1)
		}
		if err := a.appendKV(p[f.Val:f.End]); err != nil {
			return fmt.Errorf("%w: attribute set %d: %v", ErrMalformed, s.a.len()-1, err)
		}
		i = f.End
	}
	return nil
}

// Len is the number of rows added since the last Build or Reset.
func (s *SetTableBuilder) Len() int { return s.a.len() }

// Build returns the rows added since the last Build or Reset as a map
// column of the items' attributes type, and starts the next table. Every
// key and string value must be valid UTF-8.
func (s *SetTableBuilder) Build() (arrow.Array, error) {
	if !s.a.valid() {
		s.Reset()
		return nil, fmt.Errorf("%w: attribute sets: a key or string value is not valid UTF-8", ErrMalformed)
	}
	z := NewZeros(s.a.values())
	defer z.Release()
	return s.a.newArray(z), nil
}

// Reset drops the rows added since the last Build.
func (s *SetTableBuilder) Reset() { s.a.release() }
