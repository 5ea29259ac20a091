package otlpwire

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckItem and the functions below it refuse exactly what the workers'
// decoder (package schemas: metrics.go, logs.go, traces.go, attrs.go)
// refuses inside an item: bad framing anywhere in it, a string that is not
// UTF-8, an AnyValue nested too deep, and a field the Arrow layout cannot
// keep in a message that keeps no unknown fields (KeyValue, Exemplar,
// Span.Event, Span.Link, Status, Buckets, ValueAtQuantile). A string field
// that occurs more than once is checked in its last occurrence, the one
// the decoder keeps. schemas.FuzzLimits checks the two against each other.
//
// The scanner runs them on every item the ingester takes in, so the usual
// encodings take an inline path: one-byte tags and lengths, attributes of a
// key and one short value.

// ItemProblem is what CheckItem found wrong with an item.
type ItemProblem struct {
	Problem Problem
	// Field is the item's field at fault (0 when its tag is unreadable).
	// Index is its occurrence among the item's fields of that number when
	// it is a repeated message (exemplars, quantile_values, events, links).
	Field FieldNum
	Index int
	// Sub is the field at fault inside the message Field holds, 0 when
	// Field itself is at fault.
	Sub FieldNum
	// Attr is the index of the bad attribute in the list at fault (the
	// item's attributes, or those of the message in Field), and AttrField
	// the KeyValue field at fault; Attr is -1 when no attribute is at fault.
	Attr      int
	AttrField FieldNum
}

// noAttr makes the ItemProblem pr for a field that is not an attribute.
func noAttr(pr Problem, field FieldNum) ItemProblem {
	return ItemProblem{Problem: pr, Field: field, Attr: -1}
}

// CheckItem checks an item against the limits: a data point of a metric
// whose data field is dataNum, a log record or a span, without its tag and
// length. It allocates nothing.
func CheckItem(sig Signal, dataNum FieldNum, item []byte) ItemProblem {
	switch sig {
	case Logs:
		return checkLogRecord(item)
	case Traces:
		return checkSpan(item)
	}
	return checkPoint(dataNum, item)
}

// next reads the field at p[i] as ReadField does, inline for the common
// case: a one-byte tag of a length-delimited field shorter than 128 bytes.
func next(p []byte, i int) (Field, ReadErr) {
	if i+1 < len(p) {
		if c, n := p[i], int(p[i+1]); c < 0x80 && c >= 8 && c&7 == byte(WireLen) && n < 0x80 && n <= len(p)-i-2 {
			return Field{Tag{FieldNum(c >> 3), WireLen}, i + 2, i + 2 + n, 0}, ReadOK
		}
	}
	return ReadField(p, i)
}

// fixed64 skips the fixed64 field at p[i] when its tag is one byte.
func fixed64(p []byte, i int) (end int, ok bool) {
	if c := p[i]; c&7 == byte(WireI64) && c >= 8 && c < 0x80 && len(p)-i >= 9 {
		return i + 9, true
	}
	return i, false
}

// ValidUTF8 is utf8.Valid, with ASCII, the common case, first.
func ValidUTF8(p []byte) bool { return IsASCII(p) || utf8.Valid(p) }

// attrRun checks the run of attributes that starts at p[i]: fields with the
// one-byte tag tag, each shorter than 128 bytes. It returns where the run
// ends and how many attributes it holds, or the problem with attribute n of
// the run and its field at fault. end is i when the field at p[i] is longer:
// the caller reads it the general way.
//
// An attribute of a key and a short string, int, double or bool value has
// only its structure checked here; the bytes of the run, but for those of
// numbers, are ORed together and checked for ASCII once, at the end (tags
// and one-byte lengths are below 0x80). Only a run that is not all ASCII
// has its attributes checked one by one.
func attrRun(p []byte, i int, tag byte) (end, n int, pr Problem, af FieldNum) {
	start, seg := i, i
	var acc uint64
	for i+1 < len(p) && p[i] == tag {
		l := int(p[i+1])
		if l >= 0x80 || l > len(p)-i-2 {
			break
		}
		kv := p[i+2 : i+2+l]
		// The key's, value's and string's lengths are read as one byte
		// each without checking that it is below 0x80 (a varint of one
		// byte): the attribute is shorter than 0x80 bytes, so a length
		// of 0x80 or more cannot add up to it.
		if len(kv) >= 4 && kv[0] == keyTag {
			v := 2 + int(kv[1])
			if v+2 <= len(kv) && kv[v] == valueTag && v+2+int(kv[v+1]) == len(kv) {
				val := kv[v+2:]
				switch {
				case len(val) == 0, len(val) >= 2 && val[0] == stringTag && int(val[1])+2 == len(val):
					i += 2 + l
					n++
					continue
				case val[0] == doubleTag && len(val) == 9,
					(val[0] == intTag || val[0] == boolTag) && varintExact(val[1:]):
					// A number: its bytes stay out of the ASCII check.
					acc |= orBytes(p[seg : i+2+v+3])
					i += 2 + l
					seg = i
					n++
					continue
				}
			}
		}
		if pr, af := CheckKeyValue(kv); pr != ProblemNone {
			return i, n, pr, af
		}
		i += 2 + l
		n++
	}
	acc |= orBytes(p[seg:i])
	if acc&0x8080808080808080 != 0 {
		// A key or string is not ASCII: check them one by one.
		for j, k := start, 0; j < i; k++ {
			l := int(p[j+1])
			if pr, af := CheckKeyValue(p[j+2 : j+2+l]); pr != ProblemNone {
				return j, k, pr, af
			}
			j += 2 + l
		}
	}
	return i, n, ProblemNone, 0
}

// varintExact reports whether b is one varint as ReadVarint reads it.
func varintExact(b []byte) bool {
	if len(b) == 1 {
		return b[0] < 0x80
	}
	_, end, ok := ReadVarint(b, 0)
	return ok && end == len(b)
}

// orBytes ORs the bytes of p together, eight at a time (the bytes of a
// short p in its low byte).
func orBytes(p []byte) uint64 {
	if len(p) < 8 {
		var acc uint64
		for _, c := range p {
			acc |= uint64(c)
		}
		return acc
	}
	// The last eight bytes, then the others sixteen and eight at a time;
	// the words may overlap.
	acc := binary.LittleEndian.Uint64(p[len(p)-8:])
	for ; len(p) >= 16; p = p[16:] {
		acc |= binary.LittleEndian.Uint64(p) | binary.LittleEndian.Uint64(p[8:16])
	}
	if len(p) >= 8 {
		acc |= binary.LittleEndian.Uint64(p)
	}
	return acc
}

// pointFields returns the fields of the attributes and exemplars (0: none)
// of the data points of the Metric data field dataNum.
func pointFields(dataNum FieldNum) (attrs, exemplars FieldNum) {
	switch dataNum {
	case MetricHistogram:
		return HistogramDataPointAttributes, HistogramDataPointExemplars
	case MetricExponentialHistogram:
		return ExponentialHistogramDataPointAttributes, ExponentialHistogramDataPointExemplars
	case MetricSummary:
		return SummaryDataPointAttributes, 0
	}
	return NumberDataPointAttributes, NumberDataPointExemplars
}

// checkPoint checks a data point of the Metric data field dataNum.
//
// checkPoint, checkLogRecord and checkSpan open with the same walk of the
// item's fields, written out in each: one walker calling back for the
// item's own fields made the check 15-35% slower (BenchmarkCheckItem).
func checkPoint(dataNum FieldNum, p []byte) ItemProblem {
	attrs, exemplars := pointFields(dataNum)
	tag := byte(attrs)<<3 | byte(WireLen)
	na, nx := 0, 0
	for i := 0; i < len(p); {
		if p[i] == tag {
			end, n, pr, af := attrRun(p, i, tag)
			if pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: attrs, Attr: na + n, AttrField: af}
			}
			if end > i {
				i, na = end, na+n
				continue
			}
		}
		if end, ok := fixed64(p, i); ok {
			i = end // times and values: nothing to check
			continue
		}
		f, code := next(p, i)
		if code != ReadOK {
			return noAttr(ProblemMalformed, f.Num)
		}
		i = f.End
		if f.Type != WireLen {
			continue
		}
		q := p[f.Val:f.End]
		switch {
		case f.Num == attrs:
			if pr, af := CheckKeyValue(q); pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: f.Num, Attr: na, AttrField: af}
			}
			na++
		case f.Num == exemplars:
			if pr := exemplarMessage.check(q); pr.Problem != ProblemNone {
				pr.Field, pr.Index = f.Num, nx
				return pr
			}
			nx++
		case dataNum == MetricHistogram && (f.Num == HistogramDataPointBucketCounts || f.Num == HistogramDataPointExplicitBounds):
			if len(q)%8 != 0 { // packed fixed64 or double
				return noAttr(ProblemMalformed, f.Num)
			}
		case dataNum == MetricExponentialHistogram && (f.Num == ExponentialHistogramDataPointPositive || f.Num == ExponentialHistogramDataPointNegative):
			if pr, sub := checkBuckets(q); pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: f.Num, Sub: sub, Attr: -1}
			}
		case dataNum == MetricSummary && f.Num == SummaryDataPointQuantileValues:
			if pr, sub := checkQuantile(q); pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: f.Num, Index: nx, Sub: sub, Attr: -1}
			}
			nx++
		}
	}
	return ItemProblem{}
}

// checkBuckets checks ExponentialHistogramDataPoint.Buckets and returns
// the problem and the field at fault.
//
//	message Buckets { sint32 offset = 1; repeated uint64 bucket_counts = 2; }
func checkBuckets(p []byte) (Problem, FieldNum) {
	for i := 0; i < len(p); {
		f, code := next(p, i)
		if code != ReadOK {
			return ProblemMalformed, f.Num
		}
		i = f.End
		switch {
		case f.Type == WireVarint && (f.Num == ExponentialHistogramDataPointBucketsOffset || f.Num == ExponentialHistogramDataPointBucketsBucketCounts):
		case f.Type == WireLen && f.Num == ExponentialHistogramDataPointBucketsBucketCounts:
			for j := f.Val; j < f.End; { // packed varints
				_, end, ok := ReadVarint(p[:f.End], j)
				if !ok {
					return ProblemMalformed, f.Num
				}
				j = end
			}
		default:
			return ProblemUnsupported, f.Num
		}
	}
	return ProblemNone, 0
}

// checkQuantile checks a SummaryDataPoint.ValueAtQuantile.
//
//	message ValueAtQuantile { double quantile = 1; double value = 2; }
func checkQuantile(p []byte) (Problem, FieldNum) {
	for i := 0; i < len(p); {
		f, code := next(p, i)
		if code != ReadOK {
			return ProblemMalformed, f.Num
		}
		i = f.End
		if f.Type != WireI64 || (f.Num != SummaryDataPointValueAtQuantileQuantile && f.Num != SummaryDataPointValueAtQuantileValue) {
			return ProblemUnsupported, f.Num
		}
	}
	return ProblemNone, 0
}

// lastString keeps the last occurrence of a string field, the one the
// decoder keeps and checks.
type lastString []byte

func (l lastString) valid() bool { return ValidUTF8(l) }

// checkLogRecord checks a LogRecord: its attributes, body, severity_text
// and event_name.
func checkLogRecord(p []byte) ItemProblem {
	var sev, event lastString
	const tag = byte(LogRecordAttributes)<<3 | byte(WireLen)
	na := 0
	for i := 0; i < len(p); {
		if p[i] == tag {
			end, n, pr, af := attrRun(p, i, tag)
			if pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: LogRecordAttributes, Attr: na + n, AttrField: af}
			}
			if end > i {
				i, na = end, na+n
				continue
			}
		}
		if end, ok := fixed64(p, i); ok {
			i = end // times and values: nothing to check
			continue
		}
		f, code := next(p, i)
		if code != ReadOK {
			return noAttr(ProblemMalformed, f.Num)
		}
		i = f.End
		if f.Type != WireLen {
			continue
		}
		switch f.Num {
		case LogRecordAttributes:
			if pr, af := CheckKeyValue(p[f.Val:f.End]); pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: f.Num, Attr: na, AttrField: af}
			}
			na++
		case LogRecordBody:
			// Several occurrences merge: the decoder checks their
			// concatenation, which is the same as checking each.
			if pr := CheckAnyValue(p[f.Val:f.End], 0); pr != ProblemNone {
				return noAttr(pr, f.Num)
			}
		case LogRecordSeverityText:
			sev = p[f.Val:f.End]
		case LogRecordEventName:
			event = p[f.Val:f.End]
		}
	}
	switch {
	case !sev.valid():
		return noAttr(ProblemUTF8, LogRecordSeverityText)
	case !event.valid():
		return noAttr(ProblemUTF8, LogRecordEventName)
	}
	return ItemProblem{}
}

// checkSpan checks a Span: its attributes, strings, events, links and
// status.
func checkSpan(p []byte) ItemProblem {
	var state, name, msg lastString
	const tag = byte(SpanAttributes)<<3 | byte(WireLen)
	na, ne, nl := 0, 0, 0
	for i := 0; i < len(p); {
		if p[i] == tag {
			end, n, pr, af := attrRun(p, i, tag)
			if pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: SpanAttributes, Attr: na + n, AttrField: af}
			}
			if end > i {
				i, na = end, na+n
				continue
			}
		}
		if end, ok := fixed64(p, i); ok {
			i = end // times and values: nothing to check
			continue
		}
		f, code := next(p, i)
		if code != ReadOK {
			return noAttr(ProblemMalformed, f.Num)
		}
		i = f.End
		if f.Type != WireLen {
			continue
		}
		q := p[f.Val:f.End]
		switch f.Num {
		case SpanAttributes:
			if pr, af := CheckKeyValue(q); pr != ProblemNone {
				return ItemProblem{Problem: pr, Field: f.Num, Attr: na, AttrField: af}
			}
			na++
		case SpanTraceState:
			state = p[f.Val:f.End]
		case SpanName:
			name = p[f.Val:f.End]
		case SpanEvents:
			if pr := eventMessage.check(q); pr.Problem != ProblemNone {
				pr.Field, pr.Index = f.Num, ne
				return pr
			}
			ne++
		case SpanLinks:
			if pr := linkMessage.check(q); pr.Problem != ProblemNone {
				pr.Field, pr.Index = f.Num, nl
				return pr
			}
			nl++
		case SpanStatus:
			// Occurrences merge; the last message wins.
			for j := 0; j < len(q); {
				g, code := next(q, j)
				if code != ReadOK {
					return ItemProblem{Problem: ProblemMalformed, Field: f.Num, Sub: g.Num, Attr: -1}
				}
				j = g.End
				switch {
				case g.Num == StatusMessage && g.Type == WireLen:
					msg = q[g.Val:g.End]
				case g.Num == StatusCode && g.Type == WireVarint:
				default:
					return ItemProblem{Problem: ProblemUnsupported, Field: f.Num, Sub: g.Num, Attr: -1}
				}
			}
		}
	}
	switch {
	case !state.valid():
		return noAttr(ProblemUTF8, SpanTraceState)
	case !name.valid():
		return noAttr(ProblemUTF8, SpanName)
	case !msg.valid():
		return ItemProblem{Problem: ProblemUTF8, Field: SpanStatus, Sub: StatusMessage, Attr: -1}
	}
	return ItemProblem{}
}

// subMessage describes a message inside an item that keeps no unknown
// fields: its attributes, its string field (0: none), checked in its last
// occurrence, and its other fields; any other field is unsupported.
type subMessage struct {
	attrs, str FieldNum
	others     []Tag
}

var (
	// message Exemplar {
	//   repeated KeyValue filtered_attributes = 7;
	//   fixed64 time_unix_nano = 2;
	//   oneof value { double as_double = 3; sfixed64 as_int = 6; }
	//   bytes span_id = 4;
	//   bytes trace_id = 5;
	// }
	exemplarMessage = subMessage{attrs: ExemplarFilteredAttributes, others: []Tag{
		{ExemplarTimeUnixNano, WireI64}, {ExemplarAsDouble, WireI64}, {ExemplarAsInt, WireI64},
		{ExemplarSpanID, WireLen}, {ExemplarTraceID, WireLen}}}
	// message Event {
	//   fixed64 time_unix_nano = 1;
	//   string name = 2;
	//   repeated KeyValue attributes = 3;
	//   uint32 dropped_attributes_count = 4;
	// }
	eventMessage = subMessage{attrs: SpanEventAttributes, str: SpanEventName, others: []Tag{
		{SpanEventTimeUnixNano, WireI64}, {SpanEventDroppedAttributesCount, WireVarint}}}
	// message Link {
	//   bytes trace_id = 1;
	//   bytes span_id = 2;
	//   string trace_state = 3;
	//   repeated KeyValue attributes = 4;
	//   uint32 dropped_attributes_count = 5;
	//   fixed32 flags = 6;
	// }
	linkMessage = subMessage{attrs: SpanLinkAttributes, str: SpanLinkTraceState, others: []Tag{
		{SpanLinkTraceID, WireLen}, {SpanLinkSpanID, WireLen},
		{SpanLinkDroppedAttributesCount, WireVarint}, {SpanLinkFlags, WireI32}}}
)

// check checks p, a message of m; the problem's Field and Index are the
// caller's to set.
func (m *subMessage) check(p []byte) ItemProblem {
	var str lastString
	na := 0
fields:
	for i := 0; i < len(p); {
		f, code := next(p, i)
		if code != ReadOK {
			return ItemProblem{Problem: ProblemMalformed, Sub: f.Num, Attr: -1}
		}
		i = f.End
		switch {
		case f.Num == m.attrs && f.Type == WireLen:
			if pr, af := CheckKeyValue(p[f.Val:f.End]); pr != ProblemNone {
				return ItemProblem{Problem: pr, Sub: f.Num, Attr: na, AttrField: af}
			}
			na++
			continue
		case f.Num == m.str && f.Type == WireLen:
			str = p[f.Val:f.End]
			continue
		}
		for _, t := range m.others {
			if f.Tag == t {
				continue fields
			}
		}
		return ItemProblem{Problem: ProblemUnsupported, Sub: f.Num, Attr: -1}
	}
	if !str.valid() {
		return ItemProblem{Problem: ProblemUTF8, Sub: m.str, Attr: -1}
	}
	return ItemProblem{}
}

// Path names what is at fault below the item, in the .proto field names,
// such as ".events[2].attributes[0].key" or ".status.message", for an item
// of sig (a data point of the Metric data field dataNum).
func (p ItemProblem) Path(sig Signal, dataNum FieldNum) string {
	var b strings.Builder
	name, repeated := itemFieldName(sig, dataNum, p.Field)
	b.WriteString(name)
	if repeated {
		fmt.Fprintf(&b, "[%d]", p.Index)
	}
	if p.Sub != 0 {
		b.WriteString(subFieldName(sig, dataNum, p.Field, p.Sub))
	}
	if p.Attr >= 0 {
		fmt.Fprintf(&b, "[%d]", p.Attr)
		switch p.AttrField {
		case KeyValueKey:
			b.WriteString(".key")
		case KeyValueValue:
			b.WriteString(".value")
		default:
			fmt.Fprintf(&b, " field %d", p.AttrField)
		}
	}
	return b.String()
}

// itemFieldName names field num of an item of sig (with its leading dot)
// and says whether it is a repeated message.
func itemFieldName(sig Signal, dataNum FieldNum, num FieldNum) (string, bool) {
	switch sig {
	case Logs:
		switch num {
		case LogRecordAttributes:
			return ".attributes", false
		case LogRecordBody:
			return ".body", false
		case LogRecordSeverityText:
			return ".severity_text", false
		case LogRecordEventName:
			return ".event_name", false
		}
	case Traces:
		switch num {
		case SpanAttributes:
			return ".attributes", false
		case SpanTraceState:
			return ".trace_state", false
		case SpanName:
			return ".name", false
		case SpanEvents:
			return ".events", true
		case SpanLinks:
			return ".links", true
		case SpanStatus:
			return ".status", false
		}
	default:
		attrs, exemplars := pointFields(dataNum)
		switch {
		case num == attrs:
			return ".attributes", false
		case num == exemplars:
			return ".exemplars", true
		case dataNum == MetricHistogram && num == HistogramDataPointBucketCounts:
			return ".bucket_counts", false
		case dataNum == MetricHistogram && num == HistogramDataPointExplicitBounds:
			return ".explicit_bounds", false
		case dataNum == MetricExponentialHistogram && num == ExponentialHistogramDataPointPositive:
			return ".positive", false
		case dataNum == MetricExponentialHistogram && num == ExponentialHistogramDataPointNegative:
			return ".negative", false
		case dataNum == MetricSummary && num == SummaryDataPointQuantileValues:
			return ".quantile_values", true
		}
	}
	return fmt.Sprintf(" field %d", num), false
}

// subFieldName names field sub of the message in field of an item of sig
// (a data point of the Metric data field dataNum), with its leading dot.
func subFieldName(sig Signal, dataNum, field, sub FieldNum) string {
	var name string
	_, exemplars := pointFields(dataNum)
	switch {
	case sig == Traces && field == SpanEvents:
		name = map[FieldNum]string{SpanEventName: "name", SpanEventAttributes: "attributes"}[sub]
	case sig == Traces && field == SpanLinks:
		name = map[FieldNum]string{SpanLinkTraceState: "trace_state", SpanLinkAttributes: "attributes"}[sub]
	case sig == Traces && field == SpanStatus && sub == StatusMessage:
		name = "message"
	case sig == Metrics && field == exemplars && sub == ExemplarFilteredAttributes:
		name = "filtered_attributes"
	case sig == Metrics && dataNum == MetricExponentialHistogram && sub == ExponentialHistogramDataPointBucketsBucketCounts &&
		(field == ExponentialHistogramDataPointPositive || field == ExponentialHistogramDataPointNegative):
		name = "bucket_counts"
	}
	if name == "" {
		return fmt.Sprintf(" field %d", sub)
	}
	return "." + name
}
