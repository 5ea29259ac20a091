package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// AnyColumns are the children of an AnyValue struct column (attribute
// values, log bodies), typed: Type holds a Value* constant per row, and the
// child of that type holds the value (Bytes also the ArrayValue,
// KeyValueList or raw AnyValue encodings). Strings and bytes read from
// them alias the batch's buffers.
type AnyColumns struct {
	Type   *array.Uint8
	Str    *array.String
	Int    *array.Int64
	Double *array.Float64
	Bool   *array.Boolean
	Bytes  *array.Binary
}

// NewAnyColumns returns the children of a, or an ErrSchema error when a is
// not an AnyValue struct column.
func NewAnyColumns(a arrow.Array) (AnyColumns, error) {
	var c AnyColumns
	s, ok := a.(*array.Struct)
	if !ok || s.NumField() != 6 {
		return c, fmt.Errorf("%w: AnyValue column is %s", ErrSchema, a.DataType())
	}
	var oks [6]bool
	c.Type, oks[0] = s.Field(AnyType).(*array.Uint8)
	c.Str, oks[1] = s.Field(AnyStr).(*array.String)
	c.Int, oks[2] = s.Field(AnyInt).(*array.Int64)
	c.Double, oks[3] = s.Field(AnyDouble).(*array.Float64)
	c.Bool, oks[4] = s.Field(AnyBool).(*array.Boolean)
	c.Bytes, oks[5] = s.Field(AnyBytes).(*array.Binary)
	if oks != [6]bool{true, true, true, true, true, true} {
		return c, fmt.Errorf("%w: AnyValue column is %s", ErrSchema, a.DataType())
	}
	return c, nil
}
