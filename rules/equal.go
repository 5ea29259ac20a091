package rules

import (
	"bytes"
	"math"
	"reflect"
)

// SameValue reports whether a and b are the same attribute (or log body)
// value: whether a rule that replaced b by a left the item as it was. It is
// the one definition both the set action (whether a rule changed the item,
// for Result.Changed and the changed counters) and the columnar engine
// (which entries it copies from the input and which it rewrites) use, so
// that an item counted as unchanged is also written unchanged.
//
// Values are the Go types of attribute values: string, bool, int64,
// float64, []byte, []any, map[string]any or nil.
//
//   - The type is part of the value: int64(1) and float64(1) differ, as do
//     nil (a key without a value) and "". An attribute written as an int
//     and read back as a double is a different attribute.
//   - float64 compares with ==, except that NaN is the same as NaN: a rule
//     that leaves a NaN in place has not changed it, and a NaN that compared
//     unequal would make every row holding one look rewritten. -0 and +0
//     are the same (the entry keeps the sign it had).
//   - []byte compare by content; nil and empty are the same.
//   - Anything else, arrays and maps in particular, compares as
//     reflect.DeepEqual does: element types must match (int inside an
//     array differs from int64) and a NaN nested in an array or map is not
//     the same as itself. Such an entry is rewritten rather than copied;
//     the columnar engine's outputs have always been built that way, so
//     relaxing it would change the bytes it writes.
func SameValue(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	return reflect.DeepEqual(a, b)
}
