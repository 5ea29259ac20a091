package schemas

import (
	"encoding/binary"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/protobuf/encoding/protowire"
)

// anyBuilder appends AnyValue structs. Values are buffered (see colbuf.go)
// and appended to the Arrow builders by flush.
type anyBuilder struct {
	s   *array.StructBuilder
	typ *array.Uint8Builder
	str *array.BinaryBuilder
	i   *array.Int64Builder
	d   *array.Float64Builder
	b   *array.BooleanBuilder
	by  *array.BinaryBuilder

	// pending values: type, str, bytes and the int/double/bool payload bits
	typs                 []uint8
	strs, bys            [][]byte
	scal                 []uint64
	hasInt, hasDbl, hasB bool
	ints                 []int64
	dbls                 []float64
	bools                []bool
	strHint, byHint      int // see appendBins
}

func newAnyBuilder(s *array.StructBuilder) anyBuilder {
	return anyBuilder{
		s:   s,
		typ: s.FieldBuilder(AnyType).(*array.Uint8Builder),
		str: s.FieldBuilder(AnyStr).(*array.StringBuilder).BinaryBuilder,
		i:   s.FieldBuilder(AnyInt).(*array.Int64Builder),
		d:   s.FieldBuilder(AnyDouble).(*array.Float64Builder),
		b:   s.FieldBuilder(AnyBool).(*array.BooleanBuilder),
		by:  s.FieldBuilder(AnyBytes).(*array.BinaryBuilder),
	}
}

// put buffers one value: str for ValueString, x for the scalar types (the
// int64, float64 bits or 0/1 of a bool), by for the types kept in bytes.
func (a *anyBuilder) put(typ uint8, str []byte, x uint64, by []byte) {
	a.typs = append(a.typs, typ)
	a.strs = append(a.strs, str)
	a.bys = append(a.bys, by)
	a.scal = append(a.scal, x)
}

func (a *anyBuilder) putStr(str []byte) {
	a.typs = append(a.typs, ValueString)
	a.strs = append(a.strs, str)
	a.bys = append(a.bys, nil)
	a.scal = append(a.scal, 0)
}

// flush appends the buffered values.
func (a *anyBuilder) flush() {
	n := len(a.typs)
	if n == 0 {
		return
	}
	for k := n; k > 0; {
		c := min(k, len(allTrue))
		a.s.AppendValues(allTrue[:c])
		k -= c
	}
	a.typ.AppendValues(a.typs, nil)
	appendBins(a.str, a.strs, &a.strHint)
	appendBins(a.by, a.bys, &a.byHint)
	if a.hasInt {
		a.ints = a.ints[:0]
		for j, t := range a.typs {
			v := int64(0)
			if t == ValueInt {
				v = int64(a.scal[j])
			}
			a.ints = append(a.ints, v)
		}
		a.i.AppendValues(a.ints, nil)
	} else {
		a.i.AppendEmptyValues(n)
	}
	if a.hasDbl {
		a.dbls = a.dbls[:0]
		for j, t := range a.typs {
			v := 0.0
			if t == ValueDouble {
				v = math.Float64frombits(a.scal[j])
			}
			a.dbls = append(a.dbls, v)
		}
		a.d.AppendValues(a.dbls, nil)
	} else {
		a.d.AppendEmptyValues(n)
	}
	if a.hasB {
		a.bools = a.bools[:0]
		for j, t := range a.typs {
			a.bools = append(a.bools, t == ValueBool && a.scal[j] != 0)
		}
		a.b.AppendValues(a.bools, nil)
	} else {
		a.b.AppendEmptyValues(n)
	}
	a.clear()
}

// clear drops the buffered values.
func (a *anyBuilder) clear() {
	clear(a.strs)
	clear(a.bys)
	a.typs, a.strs, a.bys, a.scal = a.typs[:0], a.strs[:0], a.bys[:0], a.scal[:0]
	a.hasInt, a.hasDbl, a.hasB = false, false, false
}

// appendAny appends the AnyValue whose encoding is p.
//
//	message AnyValue {
//	  oneof value {
//	    string string_value = 1;
//	    bool bool_value = 2;
//	    int64 int_value = 3;
//	    double double_value = 4;
//	    ArrayValue array_value = 5;
//	    KeyValueList kvlist_value = 6;
//	    bytes bytes_value = 7;
//	  }
//	}
func (a *anyBuilder) appendAny(p []byte) error {
	if len(p) == 0 {
		a.put(ValueEmpty, nil, 0, nil)
		return nil
	}
	f, code := otlpwire.ReadField(p, 0)
	if code != otlpwire.ReadOK {
		return malformed("AnyValue", f.Num)
	}
	if f.End == len(p) { // the usual case: exactly one field
		q := p[f.Val:f.End]
		switch {
		case f.Num == otlpwire.AnyValueStringValue && f.Type == otlpwire.WireLen:
			if err := validString(q, "AnyValue", f.Num); err != nil {
				return err
			}
			a.putStr(q)
			return nil
		case f.Num == otlpwire.AnyValueBoolValue && f.Type == otlpwire.WireVarint:
			x := uint64(0)
			if f.X != 0 {
				x = 1
			}
			a.hasB = true
			a.put(ValueBool, nil, x, nil)
			return nil
		case f.Num == otlpwire.AnyValueIntValue && f.Type == otlpwire.WireVarint:
			a.hasInt = true
			a.put(ValueInt, nil, f.X, nil)
			return nil
		case f.Num == otlpwire.AnyValueDoubleValue && f.Type == otlpwire.WireI64:
			a.hasDbl = true
			a.put(ValueDouble, nil, f.X, nil)
			return nil
		case f.Num == otlpwire.AnyValueBytesValue && f.Type == otlpwire.WireLen:
			a.put(ValueBytes, nil, 0, q)
			return nil
		case f.Num == otlpwire.AnyValueArrayValue && f.Type == otlpwire.WireLen:
			if err := validateList(q, 1, false); err != nil {
				return err
			}
			a.put(ValueArray, nil, 0, q)
			return nil
		case f.Num == otlpwire.AnyValueKvlistValue && f.Type == otlpwire.WireLen:
			if err := validateList(q, 1, true); err != nil {
				return err
			}
			a.put(ValueKVList, nil, 0, q)
			return nil
		}
	}
	// Several fields (a oneof set twice, a merged message), unknown fields,
	// string_value_strindex: keep the encoding as it is.
	if err := validateAny(p, 0); err != nil {
		return err
	}
	a.put(ValueRaw, nil, 0, p)
	return nil
}

// attrBuilder appends map<string, AnyValue> rows. Rows and entries are
// buffered and appended to the Arrow builders by flush.
type attrBuilder struct {
	m *array.MapBuilder
	k *array.BinaryBuilder
	v anyBuilder

	keys   [][]byte
	rowOff []int32 // offset of each buffered row's first entry
	valid  []bool  // validity of each buffered row
	nulls  int
	kHint  int // see appendBins
}

func newAttrBuilder(b array.Builder) attrBuilder {
	m := b.(*array.MapBuilder)
	return attrBuilder{m: m, k: m.KeyBuilder().(*array.StringBuilder).BinaryBuilder, v: newAnyBuilder(m.ItemBuilder().(*array.StructBuilder))}
}

// row starts a map row (valid) or appends a null row (!valid); appendKV adds
// entries to the last row started.
func (a *attrBuilder) row(valid bool) {
	a.rowOff = append(a.rowOff, int32(a.k.Len()+len(a.keys)))
	a.valid = append(a.valid, valid)
	if !valid {
		a.nulls++
	}
}

// flush appends the buffered rows and entries.
func (a *attrBuilder) flush() {
	if len(a.keys) > 0 {
		appendBins(a.k, a.keys, &a.kHint)
		a.v.flush()
	}
	for off, valid := a.rowOff, a.valid; len(off) > 0; {
		n := min(len(off), len(allTrue))
		v := valid[:n]
		if a.nulls == 0 {
			v = allTrue[:n]
		}
		a.m.AppendValues(off[:n], v)
		off, valid = off[n:], valid[n:]
	}
	a.clear()
}

// clear drops the buffered rows and entries.
func (a *attrBuilder) clear() {
	clear(a.keys)
	a.keys, a.rowOff, a.valid, a.nulls = a.keys[:0], a.rowOff[:0], a.valid[:0], 0
	a.v.clear()
}

// appendKV appends the KeyValue whose encoding is p to the open map row.
//
//	message KeyValue {
//	  string key = 1;
//	  AnyValue value = 2;
//	}
func (a *attrBuilder) appendKV(p []byte) error {
	var key, val []byte
	hasVal := false
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("KeyValue", f.Num)
		}
		switch {
		case f.Num == otlpwire.KeyValueKey && f.Type == otlpwire.WireLen:
			key = p[f.Val:f.End]
		case f.Num == otlpwire.KeyValueValue && f.Type == otlpwire.WireLen && !hasVal:
			val, hasVal = p[f.Val:f.End], true
		default:
			return unsupported("KeyValue", f.Num)
		}
		i = f.End
	}
	if err := validString(key, "KeyValue", otlpwire.KeyValueKey); err != nil {
		return err
	}
	if hasVal {
		if err := a.v.appendAny(val); err != nil {
			return err
		}
	} else {
		a.v.put(ValueNone, nil, 0, nil)
	}
	a.keys = append(a.keys, key)
	return nil
}

// anyReader reads AnyValue structs.
type anyReader struct{ AnyColumns }

func newAnyReader(a arrow.Array) (anyReader, bool) {
	c, err := NewAnyColumns(a)
	return anyReader{c}, err == nil
}

// size is the length of the AnyValue encoding of row j. Every AnyValue
// field has a one-byte tag.
func (r *anyReader) size(j int) int {
	switch r.Type.Value(j) {
	case ValueString:
		return otlpwire.LenFieldSize(len(r.Str.Value(j)))
	case ValueBool:
		return 2
	case ValueInt:
		return 1 + protowire.SizeVarint(uint64(r.Int.Value(j)))
	case ValueDouble:
		return 9
	case ValueBytes, ValueArray, ValueKVList:
		return otlpwire.LenFieldSize(len(r.Bytes.Value(j)))
	case ValueRaw:
		return len(r.Bytes.Value(j))
	}
	return 0
}

// appendContent writes the AnyValue encoding of row j.
func (r *anyReader) appendContent(dst []byte, j int) []byte {
	switch r.Type.Value(j) {
	case ValueString:
		return appendStringField(dst, otlpwire.AnyValueStringValue, r.Str.Value(j))
	case ValueBool:
		v := byte(0)
		if r.Bool.Value(j) {
			v = 1
		}
		return append(otlpwire.AppendTag(dst, otlpwire.AnyValueBoolValue, otlpwire.WireVarint), v)
	case ValueInt:
		return protowire.AppendVarint(otlpwire.AppendTag(dst, otlpwire.AnyValueIntValue, otlpwire.WireVarint), uint64(r.Int.Value(j)))
	case ValueDouble:
		return binary.LittleEndian.AppendUint64(otlpwire.AppendTag(dst, otlpwire.AnyValueDoubleValue, otlpwire.WireI64), math.Float64bits(r.Double.Value(j)))
	case ValueBytes:
		return appendBytesField(dst, otlpwire.AnyValueBytesValue, r.Bytes.Value(j))
	case ValueArray:
		return appendBytesField(dst, otlpwire.AnyValueArrayValue, r.Bytes.Value(j))
	case ValueKVList:
		return appendBytesField(dst, otlpwire.AnyValueKvlistValue, r.Bytes.Value(j))
	case ValueRaw:
		return append(dst, r.Bytes.Value(j)...)
	}
	return dst
}

// appendField writes row j as field num, or nothing for ValueNone.
func (r *anyReader) appendField(dst []byte, num otlpwire.FieldNum, j int) []byte {
	if r.Type.Value(j) == ValueNone {
		return dst
	}
	dst = otlpwire.AppendTag(dst, num, otlpwire.WireLen)
	dst = protowire.AppendVarint(dst, uint64(r.size(j)))
	return r.appendContent(dst, j)
}

// attrReader reads a map<string, AnyValue> column.
type attrReader struct {
	m *array.Map
	k *array.String
	v anyReader
}

func newAttrReader(a arrow.Array) (attrReader, bool) {
	m, ok := a.(*array.Map)
	if !ok {
		return attrReader{}, false
	}
	k, ok := m.Keys().(*array.String)
	if !ok {
		return attrReader{}, false
	}
	v, ok := newAnyReader(m.Items())
	return attrReader{m: m, k: k, v: v}, ok
}

// appendKVs writes the entries of row i as repeated KeyValue field num.
func (r *attrReader) appendKVs(dst []byte, num otlpwire.FieldNum, i int) []byte {
	start, end := r.m.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		key := r.k.Value(j)
		n := 0
		if key != "" {
			n = otlpwire.LenFieldSize(len(key))
		}
		if r.v.Type.Value(j) != ValueNone {
			n += otlpwire.LenFieldSize(r.v.size(j))
		}
		dst = otlpwire.AppendTag(dst, num, otlpwire.WireLen)
		dst = protowire.AppendVarint(dst, uint64(n))
		dst = appendStr(dst, otlpwire.KeyValueKey, key)
		dst = r.v.appendField(dst, otlpwire.KeyValueValue, j)
	}
	return dst
}
