package schemas

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// attrTable collects a top-level map<string, AnyValue> column (one whose rows
// are the rows of a table) in plain slices for a whole batch. Those that are
// an Arrow buffer as they are (the keys, the strings, the types, the
// offsets) lie in buffers of its allocator, handed to the array at Build
// (see batchbuf.go); the others are kept for the next batch.
//
// The UTF-8 of keys and string values is not checked per value but once per
// request (see valid), but for copies of rows (see copyRow); a request that
// fails the check is decoded again in strict mode, which checks every
// string where the field is read and so returns the same error as a
// per-value check would.
type attrTable struct {
	strict *bool // the Builder's: check strings as they are read
	mem    memory.Allocator

	rowOff   []int32 // first entry of each row
	rowValid []bool
	nulls    int

	entries
	byOff  []int32
	byData []byte
	dbls   []sparse
	bools  []int32 // entries whose bool is true

	// progress of valid: entries and bytes checked so far
	checkedKeys, checkedStrs int
	started                  bool // the slices of the batch are taken

	// copies: rows [copy0, copy1) of copySrc are still to be copied to
	// the end of the table (their ints are ints [copyInt0, copyInt1) of
	// copySrc), copyEnts entries, which the rows started since are
	// numbered after (see copyRow).
	copySrc                                    *setStore
	copy0, copy1, copyInt0, copyInt1, copyEnts int32
	invalid                                    bool // a check before the copies failed

	// the buffers behind the slices handed over at Build
	rowOffB, keyOffB, keyDataB, typsB, strOffB, strDataB, byOffB, byDataB batchBuf
}

type sparse struct {
	i int32
	v uint64
}

// entries are the entries of attribute rows as the Builder decodes them:
// key and string value of entry e at [keyOff[e], keyOff[e+1]) and
// [strOff[e], strOff[e+1]) of keyData and strData, its value type typs[e],
// and the int (and, in an attrTable, double) payloads by entry.
type entries struct {
	keyOff  []int32 // len(typs)+1 offsets
	keyData []byte
	typs    []uint8
	strOff  []int32
	strData []byte
	ints    []sparse // int and double payloads, by entry
}

// appendFrom appends entries [e0, e1) of src, whose ints are src.ints[int0:int1].
func (d *entries) appendFrom(src *entries, e0, e1, int0, int1 int32) {
	base := int32(len(d.typs))
	d.typs = append(d.typs, src.typs[e0:e1]...)
	k0, k1 := src.keyOff[e0], src.keyOff[e1]
	d.keyOff = appendShifted(d.keyOff, src.keyOff[e0+1:e1+1], int32(len(d.keyData))-k0)
	d.keyData = append(d.keyData, src.keyData[k0:k1]...)
	s0, s1 := src.strOff[e0], src.strOff[e1]
	d.strOff = appendShifted(d.strOff, src.strOff[e0+1:e1+1], int32(len(d.strData))-s0)
	d.strData = append(d.strData, src.strData[s0:s1]...)
	for _, x := range src.ints[int0:int1] {
		d.ints = append(d.ints, sparse{x.i - e0 + base, x.v})
	}
}

func newAttrTable(strict *bool, mem memory.Allocator) attrTable {
	a := attrTable{strict: strict, mem: mem}
	a.reset()
	return a
}

// reset empties the table after its slices were handed over (or freed),
// keeping the memory of the others; the first row takes new ones (start).
func (a *attrTable) reset() {
	a.rowOff, a.keyOff, a.keyData, a.typs, a.strOff, a.strData, a.byData = nil, nil, nil, nil, nil, nil, nil
	a.rowValid = a.rowValid[:0]
	a.nulls = 0
	a.ints = a.ints[:0]
	a.dbls = a.dbls[:0]
	a.bools = a.bools[:0]
	a.checkedKeys, a.checkedStrs = 0, 0
	a.started = false
	a.copySrc, a.copy0, a.copy1, a.copyEnts = nil, 0, 0, 0
	a.invalid = false
}

// start takes the slices of a batch, at its first row.
func (a *attrTable) start() {
	a.rowOff = take[int32](a.mem, &a.rowOffB)
	a.keyOff = append(take[int32](a.mem, &a.keyOffB), 0)
	a.keyData = take[byte](a.mem, &a.keyDataB)
	a.typs = take[uint8](a.mem, &a.typsB)
	a.strOff = append(take[int32](a.mem, &a.strOffB), 0)
	a.strData = take[byte](a.mem, &a.strDataB)
	if a.byOff == nil {
		a.byOff = take[int32](a.mem, &a.byOffB)
	}
	a.byOff = append(a.byOff, 0)
	a.byData = take[byte](a.mem, &a.byDataB)
	a.started = true
}

// release frees the buffers of a batch that is not built.
func (a *attrTable) release() {
	for _, b := range []*batchBuf{&a.rowOffB, &a.keyOffB, &a.keyDataB, &a.typsB, &a.strOffB, &a.strDataB, &a.byOffB, &a.byDataB} {
		b.free()
	}
	a.byOff = nil
	a.reset()
}

// row starts a map row (valid) or appends a null row (!valid); appendKV adds
// entries to the last row started.
func (a *attrTable) row(valid bool) {
	if !a.started {
		a.start()
	}
	a.rowOff = append(a.rowOff, int32(len(a.typs))+a.copyEnts)
	a.rowValid = append(a.rowValid, valid)
	if !valid {
		a.nulls++
	}
}

func (a *attrTable) flush() {}

// len is the number of rows.
func (a *attrTable) len() int { return len(a.rowValid) }

// values is the number of rows or of entries, whichever is larger.
func (a *attrTable) values() int { return max(len(a.rowValid), len(a.typs)+int(a.copyEnts)) }

// zeros is the zeros of a record whose only column with zero buffers is a.
func (a *attrTable) zeros() *Zeros { return NewZeros(a.values()) }

// appendKV appends the KeyValue whose encoding is p to the open map row.
//
//	message KeyValue {
//	  string key = 1;
//	  AnyValue value = 2;
//	}
func (a *attrTable) appendKV(p []byte) error {
	a.flushCopies()
	// The usual encodings first, inline: a key and a string or int value,
	// each field shorter than 128 bytes (one-byte lengths). The strict pass
	// takes the general path, which checks the UTF-8 of each string.
	if len(p) >= 6 && p[0] == keyTag && p[1] < 0x80 && !*a.strict {
		v := 2 + int(p[1])
		if v+4 <= len(p) && p[v] == valueTag && p[v+1] < 0x80 && int(p[v+1]) == len(p)-v-2 {
			switch c, n := p[v+2], p[v+3]; {
			case c == stringTag && n < 0x80 && int(n) == len(p)-v-4:
				a.put(ValueString, p[v+4:], nil)
				a.appendKey(p[2:v])
				return nil
			case c == intTag && n < 0x80 && len(p) == v+4:
				a.ints = append(a.ints, sparse{int32(len(a.typs)), uint64(n)})
				a.put(ValueInt, nil, nil)
				a.appendKey(p[2:v])
				return nil
			case c == intTag && n >= 0x80 && len(p) == v+5 && p[v+4] < 0x80 && p[v+4] != 0:
				a.ints = append(a.ints, sparse{int32(len(a.typs)), uint64(n&0x7f) | uint64(p[v+4])<<7})
				a.put(ValueInt, nil, nil)
				a.appendKey(p[2:v])
				return nil
			}
		}
	}
	key, val, usual := splitKV(p)
	hasVal := usual
	for i := 0; !usual && i < len(p); {
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
	if *a.strict {
		if err := validString(key, "KeyValue", otlpwire.KeyValueKey); err != nil {
			return err
		}
	}
	if hasVal {
		if err := a.appendAny(val); err != nil {
			return err
		}
	} else {
		a.put(ValueNone, nil, nil)
	}
	a.appendKey(key)
	return nil
}

// appendKVs appends the KeyValues of the run of fields of p from i on whose
// one-byte tag is tag (the attributes of an item, which encoders write one
// after the other) to the open map row, and returns where the run ends. It
// is appendKV for each, with the usual encodings (see appendKV) decoded in
// one loop over the table's slices held in locals. A field with a longer
// length ends the run early: its caller reads it as any field. fast is
// whether every KeyValue of the run took the usual encodings (which encode
// equal entries alike: see wireSets).
func (a *attrTable) appendKVs(p []byte, i int, tag byte) (end int, fast bool, err error) {
	if *a.strict || len(a.byOff) > 1 {
		return i, false, nil // the general path: UTF-8 checks, byOff kept
	}
	a.flushCopies()
	fast = true
	typs, keyData, keyOff, strData, strOff := a.typs, a.keyData, a.keyOff, a.strData, a.strOff
	for i+1 < len(p) && p[i] == tag && p[i+1] < 0x80 && int(p[i+1]) <= len(p)-i-2 {
		kv := p[i+2 : i+2+int(p[i+1])]
		if len(kv) >= 6 && kv[0] == keyTag && kv[1] < 0x80 {
			if v := 2 + int(kv[1]); v+4 <= len(kv) && kv[v] == valueTag && kv[v+1] < 0x80 && int(kv[v+1]) == len(kv)-v-2 {
				c, n := kv[v+2], kv[v+3]
				var x uint64
				typ := ValueString
				switch {
				case c == stringTag && n < 0x80 && int(n) == len(kv)-v-4:
					strData = appendShort(strData, kv[v+4:])
				case c == intTag && n < 0x80 && len(kv) == v+4:
					x, typ = uint64(n), ValueInt
				case c == intTag && n >= 0x80 && len(kv) == v+5 && kv[v+4] < 0x80 && kv[v+4] != 0:
					x, typ = uint64(n&0x7f)|uint64(kv[v+4])<<7, ValueInt
				default:
					goto general
				}
				if typ == ValueInt {
					a.ints = append(a.ints, sparse{int32(len(typs)), x})
				}
				typs = append(typs, typ)
				strOff = append(strOff, int32(len(strData)))
				keyData = appendShort(keyData, kv[2:v])
				keyOff = append(keyOff, int32(len(keyData)))
				i += 2 + len(kv)
				continue
			}
		}
	general:
		fast = false
		a.typs, a.keyData, a.keyOff, a.strData, a.strOff = typs, keyData, keyOff, strData, strOff
		if err := a.appendKV(kv); err != nil {
			return i, false, err
		}
		i += 2 + len(kv)
		if len(a.byOff) > 1 {
			return i, false, nil // the rest one by one, byOff kept
		}
		typs, keyData, keyOff, strData, strOff = a.typs, a.keyData, a.keyOff, a.strData, a.strOff
	}
	a.typs, a.keyData, a.keyOff, a.strData, a.strOff = typs, keyData, keyOff, strData, strOff
	return i, fast, nil
}

// appendKey ends the entry whose value was just put with its key.
func (a *attrTable) appendKey(key []byte) {
	a.keyData = appendShort(a.keyData, key)
	a.keyOff = append(a.keyOff, int32(len(a.keyData)))
}

// appendShort is append(dst, src...) for the short strings of attributes:
// when src is at most 32 bytes and both dst's capacity and src's (the rest
// of the request) extend 32 bytes past their starts, it copies 32 bytes
// with four word moves instead of calling memmove (which a [32]byte copy
// compiles to); the bytes past src's end land beyond len(dst), where later
// appends overwrite them.
func appendShort(dst, src []byte) []byte {
	n := len(dst)
	if len(src) <= 32 && cap(src) >= 32 && cap(dst)-n >= 32 {
		*(*words32)(unsafe.Pointer(&dst[n : n+32][0])) = *(*words32)(unsafe.Pointer(&src[:32][0]))
		return dst[:n+len(src)]
	}
	return append(dst, src...)
}

// words32 is 32 bytes that a copy moves as four words, inline.
type words32 struct{ a, b, c, d uint64 }

// splitKV returns the key and value of a KeyValue in its usual encoding:
// key then value, each shorter than 128 bytes, and nothing else; ok is false
// for any other encoding.
func splitKV(p []byte) (key, val []byte, ok bool) {
	if len(p) < 4 || p[0] != keyTag || p[1] >= 0x80 {
		return nil, nil, false
	}
	v := 2 + int(p[1])
	if v+2 > len(p) || p[v] != valueTag || p[v+1] >= 0x80 || v+2+int(p[v+1]) != len(p) {
		return nil, nil, false
	}
	return p[2:v], p[v+2:], true
}

// The one-byte tags of KeyValue's fields, for splitKV.
const (
	keyTag    = byte(otlpwire.KeyValueKey)<<3 | byte(otlpwire.WireLen)
	valueTag  = byte(otlpwire.KeyValueValue)<<3 | byte(otlpwire.WireLen)
	stringTag = byte(otlpwire.AnyValueStringValue)<<3 | byte(otlpwire.WireLen)
	intTag    = byte(otlpwire.AnyValueIntValue)<<3 | byte(otlpwire.WireVarint)
)

// put appends one value of type typ with string str or bytes by.
func (a *attrTable) put(typ uint8, str, by []byte) {
	a.typs = append(a.typs, typ)
	a.strData = appendShort(a.strData, str)
	a.strOff = append(a.strOff, int32(len(a.strData)))
	if len(a.byOff) > 1 || len(by) > 0 {
		if len(a.byOff) < len(a.typs) {
			a.padBytes()
		}
		a.byData = append(a.byData, by...)
		a.byOff = append(a.byOff, int32(len(a.byData)))
	}
}

// padBytes gives the entries before the last one empty bytes: byOff is only
// kept from the first entry with bytes on.
func (a *attrTable) padBytes() {
	for len(a.byOff) < len(a.typs) {
		a.byOff = append(a.byOff, int32(len(a.byData)))
	}
}

// appendAny appends the AnyValue whose encoding is p (see
// anyBuilder.appendAny).
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
func (a *attrTable) appendAny(p []byte) error {
	if len(p) == 0 {
		a.put(ValueEmpty, nil, nil)
		return nil
	}
	// The usual case first: a string shorter than 128 bytes, the whole
	// value (tag, one-byte length, the bytes).
	if len(p) >= 2 && p[0] == stringTag && p[1] < 0x80 && int(p[1])+2 == len(p) && !*a.strict {
		a.put(ValueString, p[2:], nil)
		return nil
	}
	f, code := otlpwire.ReadField(p, 0)
	if code != otlpwire.ReadOK {
		return malformed("AnyValue", f.Num)
	}
	if f.End == len(p) {
		q := p[f.Val:f.End]
		switch {
		case f.Num == otlpwire.AnyValueStringValue && f.Type == otlpwire.WireLen:
			if *a.strict {
				if err := validString(q, "AnyValue", f.Num); err != nil {
					return err
				}
			}
			a.put(ValueString, q, nil)
			return nil
		case f.Num == otlpwire.AnyValueBoolValue && f.Type == otlpwire.WireVarint:
			if f.X != 0 {
				a.bools = append(a.bools, int32(len(a.typs)))
			}
			a.put(ValueBool, nil, nil)
			return nil
		case f.Num == otlpwire.AnyValueIntValue && f.Type == otlpwire.WireVarint:
			a.ints = append(a.ints, sparse{int32(len(a.typs)), f.X})
			a.put(ValueInt, nil, nil)
			return nil
		case f.Num == otlpwire.AnyValueDoubleValue && f.Type == otlpwire.WireI64:
			a.dbls = append(a.dbls, sparse{int32(len(a.typs)), f.X})
			a.put(ValueDouble, nil, nil)
			return nil
		case f.Num == otlpwire.AnyValueBytesValue && f.Type == otlpwire.WireLen:
			a.put(ValueBytes, nil, q)
			return nil
		case f.Num == otlpwire.AnyValueArrayValue && f.Type == otlpwire.WireLen:
			if err := validateList(q, 1, false); err != nil {
				return err
			}
			a.put(ValueArray, nil, q)
			return nil
		case f.Num == otlpwire.AnyValueKvlistValue && f.Type == otlpwire.WireLen:
			if err := validateList(q, 1, true); err != nil {
				return err
			}
			a.put(ValueKVList, nil, q)
			return nil
		}
	}
	if err := validateAny(p, 0); err != nil {
		return err
	}
	a.put(ValueRaw, nil, p)
	return nil
}

// valid reports whether the keys and string values appended since the last
// call are valid UTF-8 each. Copies of rows (flushCopies) are not checked
// again: their rows are, in this call or one before.
func (a *attrTable) valid() bool {
	if !a.started {
		return true
	}
	a.flushCopies()
	ok := a.checkUpTo()
	ok = !a.invalid && ok
	a.invalid = false
	return ok
}

// checkUpTo checks the keys and strings appended since the last check, and
// marks them checked.
func (a *attrTable) checkUpTo() bool {
	ok := validPieces(a.keyData, a.keyOff, a.checkedKeys) && validPieces(a.strData, a.strOff, a.checkedStrs)
	a.checkedKeys, a.checkedStrs = len(a.keyOff)-1, len(a.strOff)-1
	return ok
}

// validPieces reports whether the pieces of data from piece from on are valid
// UTF-8 each; off holds the pieces' offsets.
func validPieces(data []byte, off []int32, from int) bool {
	start := off[from]
	if otlpwire.IsASCII(data[start:]) {
		return true
	}
	for j := from; j < len(off)-1; j++ {
		if validString(data[off[j]:off[j+1]], "", 0) != nil {
			return false
		}
	}
	return true
}

func bytesOf[T word](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// copyBuf is a buffer of the allocator holding a copy of b.
func copyBuf(mem memory.Allocator, b []byte) *memory.Buffer {
	buf := newFullBuf(mem, len(b))
	copy(buf.Bytes(), b)
	return buf
}

// binData is a string or binary array of the n values whose offsets and
// bytes are the batch slices off and data, which it takes over.
func (a *attrTable) binData(t arrow.DataType, n int, off []int32, offB *batchBuf, data []byte, dataB *batchBuf) arrow.ArrayData {
	return a.fixedData(t, n, give(a.mem, off, offB), give(a.mem, data, dataB))
}

// fixedData is an array of buffers, which it takes over.
func (a *attrTable) fixedData(t arrow.DataType, n int, bufs ...*memory.Buffer) arrow.ArrayData {
	d := array.NewData(t, n, append([]*memory.Buffer{nil}, bufs...), nil, 0, 0)
	for _, b := range bufs {
		b.Release()
	}
	return d
}

// bitmap is a buffer of the allocator with the bits set of an n-bit bitmap.
func (a *attrTable) bitmap(n int, set func(yield func(int) bool)) *memory.Buffer {
	buf := newBuf(a.mem, int(bitutil.BytesForBits(int64(n))))
	bm := buf.Bytes()
	for i := range set {
		bitutil.SetBit(bm, i)
	}
	return buf
}

// sparseBuf is a buffer of e 8-byte values, zero but at the entries of xs.
func (a *attrTable) sparseBuf(z *Zeros, e int, xs []sparse) *memory.Buffer {
	if len(xs) == 0 {
		return z.slice(a.mem, 8*e)
	}
	b := newBuf(a.mem, 8*e)
	v := castBytes[uint64](b.Bytes())
	for _, x := range xs {
		v[x.i] = x.v
	}
	return b
}

// newArray returns the column of the rows appended since the last call and
// starts a new one; its zero buffers are slices of z's.
func (a *attrTable) newArray(z *Zeros) arrow.Array {
	if !a.started {
		a.start() // no rows: the offsets still need their 0
	}
	a.flushCopies()
	e, r := len(a.typs), len(a.rowValid)
	ints, dbls := a.sparseBuf(z, e, a.ints), a.sparseBuf(z, e, a.dbls)
	var bools *memory.Buffer
	if len(a.bools) == 0 {
		bools = z.slice(a.mem, int(bitutil.BytesForBits(int64(e))))
	} else {
		bools = a.bitmap(e, func(yield func(int) bool) {
			for _, i := range a.bools {
				if !yield(int(i)) {
					return
				}
			}
		})
	}
	var bytes arrow.ArrayData
	if len(a.byOff) == e+1 {
		bytes = a.binData(arrow.BinaryTypes.Binary, e, a.byOff, &a.byOffB, a.byData, &a.byDataB)
		a.byOff = nil
	} else {
		// byOff holds only [0] when no entry has bytes: the offsets are
		// all zero. The slice is kept unless it is the allocator's.
		bytes = a.fixedData(arrow.BinaryTypes.Binary, e, z.slice(a.mem, 4*(e+1)), give(a.mem, a.byData, &a.byDataB))
		if a.byOffB.b != nil {
			a.byOffB.free()
			a.byOff = nil
		}
		a.byOff, a.byOffB.hint = a.byOff[:0], 0
	}
	children := []arrow.ArrayData{
		a.fixedData(arrow.PrimitiveTypes.Uint8, e, give(a.mem, a.typs, &a.typsB)),
		a.binData(arrow.BinaryTypes.String, e, a.strOff, &a.strOffB, a.strData, &a.strDataB),
		a.fixedData(arrow.PrimitiveTypes.Int64, e, ints),
		a.fixedData(arrow.PrimitiveTypes.Float64, e, dbls),
		a.fixedData(arrow.FixedWidthTypes.Boolean, e, bools),
		bytes,
	}
	vals := array.NewData(AnyValueType, e, []*memory.Buffer{nil}, children, 0, 0)
	keys := a.binData(arrow.BinaryTypes.String, e, a.keyOff, &a.keyOffB, a.keyData, &a.keyDataB)
	entries := array.NewData(AttributesType.Elem(), e, []*memory.Buffer{nil}, []arrow.ArrayData{keys, vals}, 0, 0)
	var validity *memory.Buffer
	if a.nulls > 0 {
		validity = a.bitmap(r, func(yield func(int) bool) {
			for i, v := range a.rowValid {
				if v && !yield(i) {
					return
				}
			}
		})
	}
	a.rowOff = append(a.rowOff, int32(e))
	rowOff := give(a.mem, a.rowOff, &a.rowOffB)
	m := array.NewData(AttributesType, r, []*memory.Buffer{validity, rowOff}, []arrow.ArrayData{entries}, a.nulls, 0)
	rowOff.Release()
	if validity != nil {
		validity.Release()
	}
	arr := array.NewMapData(m)
	for _, d := range children {
		d.Release()
	}
	vals.Release()
	keys.Release()
	entries.Release()
	m.Release()
	a.reset()
	return arr
}

// subst is a column of a record built by an attrTable or a batch column
// (colbuf.go) rather than by the record builder.
type subst struct {
	i int
	a interface{ newArray(*Zeros) arrow.Array }
}

// newRecord builds the record of rb with the columns in subs replaced, their
// zero buffers sliced from z.
func newRecord(rb *array.RecordBuilder, z *Zeros, subs ...subst) arrow.RecordBatch {
	defer z.Release()
	fields := rb.Fields()
	cols := make([]arrow.Array, len(fields))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	rows := -1
	for _, s := range subs {
		cols[s.i] = s.a.newArray(z)
		if rows < 0 {
			rows = cols[s.i].Len()
		}
	}
	for i, fb := range fields {
		if cols[i] == nil {
			cols[i] = fb.NewArray()
			rows = cols[i].Len()
		}
	}
	return array.NewRecordBatch(rb.Schema(), cols, int64(rows))
}
