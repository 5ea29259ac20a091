package aggregate

import (
	"math"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"google.golang.org/protobuf/encoding/protowire"
)

// header is the part of an output series' labels that many series share:
// the resource, the scope and the metric without its data points, as
// OTLP encodings cut into parts (see appendHeader). Headers are interned
// and shared by reference count.
type header struct {
	blob string    // res | scope | metric | dataExtra | kind, temp (4 bytes LE), mono: the interning key
	cut  [3]uint32 // ends of res, scope, metric in blob
	kind uint8     // schemas.Metric*
	temp int32     // aggregation temporality
	mono bool
	refs uint32
}

func (h *header) res() string       { return h.blob[:h.cut[0]] }
func (h *header) scope() string     { return h.blob[h.cut[0]:h.cut[1]] }
func (h *header) metric() string    { return h.blob[h.cut[1]:h.cut[2]] }
func (h *header) dataExtra() string { return h.blob[h.cut[2] : len(h.blob)-headerTail] }

// headerTail is the length of the type suffix of a header's blob.
const headerTail = 6

func appendTag(dst []byte, num otlpwire.FieldNum, typ protowire.Type) []byte {
	return protowire.AppendTag(dst, protowire.Number(num), typ)
}

func appendStr(dst []byte, num otlpwire.FieldNum, s string) []byte {
	if s == "" {
		return dst
	}
	dst = appendTag(dst, num, protowire.BytesType)
	return protowire.AppendString(dst, s)
}

func appendBytes(dst []byte, num otlpwire.FieldNum, b []byte) []byte {
	dst = appendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, b)
}

func appendVarint(dst []byte, num otlpwire.FieldNum, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = appendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

func appendFixed64(dst []byte, num otlpwire.FieldNum, v uint64) []byte {
	dst = appendTag(dst, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(dst, v)
}

func appendDouble(dst []byte, num otlpwire.FieldNum, v float64) []byte {
	return appendFixed64(dst, num, math.Float64bits(v))
}

// openMsg starts a length-delimited field whose length is patched by
// closeMsg (5 bytes reserved: lengths below 2^35).
func openMsg(dst []byte, num otlpwire.FieldNum) ([]byte, int) {
	dst = appendTag(dst, num, protowire.BytesType)
	return append(dst, 0, 0, 0, 0, 0), len(dst)
}

func closeMsg(dst []byte, at int) []byte {
	n := len(dst) - at - 5
	// a padded varint: 5 bytes, continuation bits on the first four
	for i := 0; i < 4; i++ {
		dst[at+i] = byte(n>>(7*i)) | 0x80
	}
	dst[at+4] = byte(n >> 28)
	return dst
}

// closeMsgShort is closeMsg with the shortest length: the body moves back
// over the unused bytes. For what is kept per series, where 4 bytes a
// message add up.
func closeMsgShort(dst []byte, at int) []byte {
	n := uint64(len(dst) - at - 5)
	k := protowire.SizeVarint(n)
	protowire.AppendVarint(dst[:at], n)
	copy(dst[at+k:], dst[at+5:])
	return dst[:len(dst)-5+k]
}

// appendKVs appends the entries of row i of a as KeyValue fields num,
// their lengths the shortest if short (series attributes) or 5 bytes
// (headers, whose encoding is their interning key: a snapshot carries it,
// and a header restored must match the same one built anew).
func appendKVs(dst []byte, num otlpwire.FieldNum, a *attrCol, i int, short bool) []byte {
	s, e := a.span(i)
	for j := s; j < e; j++ {
		var at int
		dst, at = openMsg(dst, num)
		dst = appendStr(dst, otlpwire.KeyValueKey, a.keys.Value(j))
		dst = appendAnyField(dst, otlpwire.KeyValueValue, &a.vals, j, short)
		if short {
			dst = closeMsgShort(dst, at)
		} else {
			dst = closeMsg(dst, at)
		}
	}
	return dst
}

// appendAnyField appends the AnyValue at j as field num (nothing for
// ValueNone); short as for appendKVs.
func appendAnyField(dst []byte, num otlpwire.FieldNum, v *schemas.AnyColumns, j int, short bool) []byte {
	typ := v.Type.Value(j)
	if typ == schemas.ValueNone {
		return dst
	}
	if typ == schemas.ValueRaw {
		return appendBytes(dst, num, v.Bytes.Value(j))
	}
	dst, at := openMsg(dst, num)
	switch typ {
	case schemas.ValueString:
		dst = appendTag(dst, otlpwire.AnyValueStringValue, protowire.BytesType)
		dst = protowire.AppendString(dst, v.Str.Value(j))
	case schemas.ValueBool:
		dst = appendTag(dst, otlpwire.AnyValueBoolValue, protowire.VarintType)
		dst = protowire.AppendVarint(dst, protowire.EncodeBool(v.Bool.Value(j)))
	case schemas.ValueInt:
		dst = appendTag(dst, otlpwire.AnyValueIntValue, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(v.Int.Value(j)))
	case schemas.ValueDouble:
		dst = appendDouble(dst, otlpwire.AnyValueDoubleValue, v.Double.Value(j))
	case schemas.ValueBytes:
		dst = appendBytes(dst, otlpwire.AnyValueBytesValue, v.Bytes.Value(j))
	case schemas.ValueArray:
		dst = appendBytes(dst, otlpwire.AnyValueArrayValue, v.Bytes.Value(j))
	case schemas.ValueKVList:
		dst = appendBytes(dst, otlpwire.AnyValueKvlistValue, v.Bytes.Value(j))
	}
	if short {
		return closeMsgShort(dst, at)
	}
	return closeMsg(dst, at)
}

// appendHeader appends the header parts of metric row m: the
// ResourceMetrics fields but its scope_metrics, the ScopeMetrics fields but
// its metrics, the Metric fields but its data, the data message's unknown
// fields. It returns the cuts.
func appendHeader(dst []byte, c *cols, m int) ([]byte, [3]uint32) {
	var cut [3]uint32
	r, s := int(c.mRes.Value(m)), int(c.mScope.Value(m))
	base := len(dst)
	if !c.resAttrs.m.IsNull(r) {
		var at int
		dst, at = openMsg(dst, otlpwire.ResourceMetricsResource)
		dst = appendKVs(dst, otlpwire.ResourceAttributes, &c.resAttrs, r, false)
		dst = appendVarint(dst, otlpwire.ResourceDroppedAttributesCount, uint64(c.resDropped.Value(r)))
		dst = append(dst, c.resResExtra.Value(r)...)
		dst = closeMsg(dst, at)
	}
	dst = appendStr(dst, otlpwire.ResourceMetricsSchemaURL, c.resSchema.Value(r))
	dst = append(dst, c.resExtra.Value(r)...)
	cut[0] = uint32(len(dst) - base)
	if !c.scAttrs.m.IsNull(s) {
		var at int
		dst, at = openMsg(dst, otlpwire.ScopeMetricsScope)
		dst = appendStr(dst, otlpwire.InstrumentationScopeName, c.scName.Value(s))
		dst = appendStr(dst, otlpwire.InstrumentationScopeVersion, c.scVersion.Value(s))
		dst = appendKVs(dst, otlpwire.InstrumentationScopeAttributes, &c.scAttrs, s, false)
		dst = appendVarint(dst, otlpwire.InstrumentationScopeDroppedAttributesCount, uint64(c.scDropped.Value(s)))
		dst = append(dst, c.scScopeExtra.Value(s)...)
		dst = closeMsg(dst, at)
	}
	dst = appendStr(dst, otlpwire.ScopeMetricsSchemaURL, c.scSchema.Value(s))
	dst = append(dst, c.scExtra.Value(s)...)
	cut[1] = uint32(len(dst) - base)
	dst = appendStr(dst, otlpwire.MetricName, c.mName.Value(m))
	dst = appendStr(dst, otlpwire.MetricDescription, c.mDesc.Value(m))
	dst = appendStr(dst, otlpwire.MetricUnit, c.mUnit.Value(m))
	dst = appendKVs(dst, otlpwire.MetricMetadata, &c.mMeta, m, false)
	dst = append(dst, c.mExtra.Value(m)...)
	cut[2] = uint32(len(dst) - base)
	dst = append(dst, c.mDataExtra.Value(m)...)
	return dst, cut
}

// overflowAttrs is the point attribute set of an overflow series.
var overflowAttrs = func() string {
	kv := appendStr(nil, otlpwire.KeyValueKey, "otel.metric.overflow")
	v := appendStr(nil, otlpwire.AnyValueStringValue, "true")
	kv = appendBytes(kv, otlpwire.KeyValueValue, v)
	return string(appendBytes(nil, 1, kv))
}()

// retag appends the KeyValue fields of attrs (stored as field 1) as field num.
func retag(dst []byte, num otlpwire.FieldNum, attrs string) []byte {
	// The stored entries are fields 1 with one-byte tags: copied at once,
	// their tags rewritten in place. (num is below 16 for every point
	// type, so its tag is one byte too.)
	tag := byte(num)<<3 | byte(protowire.BytesType)
	at := len(dst)
	dst = append(dst, attrs...)
	b := dst[at:]
	for k := 0; k < len(b); {
		if b[k] != storedKVTag || num >= 16 {
			return dst[:at+k] // corrupt (only from a corrupt snapshot)
		}
		l, n := protowire.ConsumeVarint(b[k+1:])
		if n < 0 || l > uint64(len(b)-k-1-n) {
			return dst[:at+k]
		}
		b[k] = tag
		k += 1 + n + int(l)
	}
	return dst
}

// storedKVTag is the tag of the KeyValue fields of series attributes as
// kept (appendKVs with field 1).
const storedKVTag = 1<<3 | byte(protowire.BytesType)
