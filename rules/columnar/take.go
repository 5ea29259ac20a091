package columnar

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/schemas"
)

// takeable reports whether take copies columns of type dt with
// schemas.Take; it concatenates slices of the others.
func takeable(dt arrow.DataType) bool { return schemas.Takeable(dt) }

// take returns the rows of a named by rs, in order (a new reference); z,
// if not nil, is passed to schemas.Take.
func take(mem memory.Allocator, a arrow.Array, rs [][2]int, z *schemas.Zeros) (arrow.Array, error) {
	switch {
	case len(rs) == 1 && rs[0][0] == 0 && rs[0][1] == a.Len():
		a.Retain()
		return a, nil
	case len(rs) == 0:
		return array.NewSlice(a, 0, 0), nil
	case len(rs) == 1:
		return array.NewSlice(a, int64(rs[0][0]), int64(rs[0][1])), nil
	}
	if takeable(a.DataType()) {
		d := schemas.Take(mem, a.Data(), rs, z)
		defer d.Release()
		return array.MakeFromData(d), nil
	}
	parts := make([]arrow.Array, len(rs))
	for k, r := range rs {
		parts[k] = array.NewSlice(a, int64(r[0]), int64(r[1]))
	}
	out, err := array.Concatenate(parts, mem)
	for _, p := range parts {
		p.Release()
	}
	return out, err
}
