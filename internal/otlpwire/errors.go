package otlpwire

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is what every *FormatError unwraps to: the request is not a
// well-formed OTLP export request and retrying it cannot help.
var ErrMalformed = errors.New("otlpwire: malformed request")

// ErrOptions is what an error about Options (rather than the body) wraps.
var ErrOptions = errors.New("otlpwire: invalid options")

// FormatError describes a malformed request: which message, where and what.
type FormatError struct {
	// Path names the message that holds the bad field, in the .proto field
	// names, such as resource_metrics[3].scope_metrics[0].metrics[12]; it is
	// empty for the request message itself.
	Path string
	// Offset is the byte offset in the body of the bad field's tag.
	Offset int
	// Msg says what is wrong, naming the field by number and name, such as
	// "truncated length-delimited field 9 (histogram): ...".
	Msg string
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("otlpwire: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	fmt.Fprintf(&b, " (protobuf offset %d)", e.Offset)
	return b.String()
}

func (e *FormatError) Unwrap() error { return ErrMalformed }

// kind is a message type the scanner walks, for error paths and field names.
type kind uint8

const (
	kRequest   kind = iota // Export{Metrics,Logs,Trace}ServiceRequest
	kResourceX             // ResourceMetrics, ResourceLogs, ResourceSpans
	kResource              // Resource
	kScopeX                // ScopeMetrics, ScopeLogs, ScopeSpans
	kScope                 // InstrumentationScope
	kMetric                // Metric
	kData                  // Gauge, Sum, Histogram, ExponentialHistogram, Summary
	kItem                  // LogRecord or Span, read only for its trace_id
)

// signalNames are the field names that differ between the signals.
type signalNames struct {
	resources, scopes, items, item string
}

var names = [...]signalNames{
	Metrics: {"resource_metrics", "scope_metrics", "metrics", "data point"},
	Logs:    {"resource_logs", "scope_logs", "log_records", "log record"},
	Traces:  {"resource_spans", "scope_spans", "spans", "span"},
}

// dataName names the data fields of Metric.
func dataName(num FieldNum) string {
	switch num {
	case MetricGauge:
		return "gauge"
	case MetricSum:
		return "sum"
	case MetricHistogram:
		return "histogram"
	case MetricExponentialHistogram:
		return "exponential_histogram"
	case MetricSummary:
		return "summary"
	}
	return ""
}

// fieldName names field num of a message of kind k, or returns "" for a
// field the scanner does not know.
func (s *scanner) fieldName(k kind, num FieldNum) string {
	n := &names[s.sig]
	switch k {
	case kRequest:
		if num == RequestResourceX {
			return n.resources
		}
	case kResourceX:
		switch num {
		case ResourceXResource:
			return "resource"
		case ResourceXScopeX:
			return n.scopes
		case ResourceXSchemaURL:
			return "schema_url"
		}
	case kScopeX:
		switch num {
		case ScopeXScope:
			return "scope"
		case ScopeXItems:
			return n.items
		case ScopeXSchemaURL:
			return "schema_url"
		}
	case kResource:
		switch num {
		case ResourceAttributes:
			return "attributes"
		case ResourceDroppedAttributesCount:
			return "dropped_attributes_count"
		case ResourceEntityRefs:
			return "entity_refs"
		}
	case kScope:
		switch num {
		case InstrumentationScopeName:
			return "name"
		case InstrumentationScopeVersion:
			return "version"
		case InstrumentationScopeAttributes:
			return "attributes"
		case InstrumentationScopeDroppedAttributesCount:
			return "dropped_attributes_count"
		}
	case kMetric:
		switch num {
		case MetricName:
			return "name"
		case MetricDescription:
			return "description"
		case MetricUnit:
			return "unit"
		case MetricMetadata:
			return "metadata"
		}
		return dataName(num)
	case kData:
		switch {
		case num == DataPoints:
			return "data_points"
		case num == DataAggregationTemporality && hasTemporality(s.dataNum):
			return "aggregation_temporality"
		case num == SumIsMonotonic && s.dataNum == MetricSum:
			return "is_monotonic"
		}
	case kItem:
		if num == s.traceIDField() {
			return "trace_id"
		}
	}
	return ""
}

// hasTemporality reports whether the data message in Metric field num has
// aggregation_temporality.
func hasTemporality(num FieldNum) bool {
	return num == MetricSum || num == MetricHistogram || num == MetricExponentialHistogram
}

// path names the message of kind k the scanner is in.
func (s *scanner) path(k kind) string {
	if k == kRequest {
		return ""
	}
	n := &names[s.sig]
	var b strings.Builder
	fmt.Fprintf(&b, "%s[%d]", n.resources, s.ri)
	switch k {
	case kResource:
		b.WriteString(".resource")
	case kScopeX, kScope, kMetric, kData, kItem:
		fmt.Fprintf(&b, ".%s[%d]", n.scopes, s.si)
		switch k {
		case kScope:
			b.WriteString(".scope")
		case kMetric, kData, kItem:
			fmt.Fprintf(&b, ".%s[%d]", n.items, s.ci)
			if k == kData {
				b.WriteString(".")
				b.WriteString(dataName(s.dataNum))
			}
		}
	}
	return b.String()
}

func (s *scanner) describe(k kind, num FieldNum) string {
	if name := s.fieldName(k, num); name != "" {
		return fmt.Sprintf("field %d (%s)", num, name)
	}
	return fmt.Sprintf("field %d", num)
}

// errorf reports a problem with the field at offset at of a message of kind k.
func (s *scanner) errorf(k kind, at int, format string, args ...any) error {
	return &FormatError{Path: s.path(k), Offset: at, Msg: fmt.Sprintf(format, args...)}
}

// fail turns the code ReadField returned for the field at b[at] into an
// error. b ends where the message of kind k ends.
func (s *scanner) fail(k kind, b []byte, at int, code ReadErr) error {
	tag, n := protowire.ConsumeVarint(b[at:])
	num, typ := FieldNum(tag>>3), WireType(tag&7)
	val := at + n
	switch code {
	case errTag:
		return s.errorf(k, at, "malformed tag: %v", wireProblem(n))
	case errFieldNum:
		return s.errorf(k, at, "invalid field number %d", tag>>3)
	case errWireType:
		return s.errorf(k, at, "invalid wire type %d for %s", typ, s.describe(k, num))
	case errEndGroup:
		return s.errorf(k, at, "end-group tag for %s with no group open", s.describe(k, num))
	case errVarint:
		_, m := protowire.ConsumeVarint(b[val:])
		return s.errorf(k, at, "malformed varint %s: %v", s.describe(k, num), wireProblem(m))
	case errLength:
		_, m := protowire.ConsumeVarint(b[val:])
		return s.errorf(k, at, "malformed length of %s: %v", s.describe(k, num), wireProblem(m))
	case errTruncLen:
		l, m := protowire.ConsumeVarint(b[val:])
		return s.errorf(k, at, "truncated length-delimited %s: length %d exceeds the %d bytes left in the message",
			s.describe(k, num), l, len(b)-val-m)
	case errFixed:
		w := 64
		if typ == WireI32 {
			w = 32
		}
		return s.errorf(k, at, "truncated fixed%d %s", w, s.describe(k, num))
	case errGroup:
		m := protowire.ConsumeFieldValue(protowire.Number(num), protowire.StartGroupType, b[val:])
		return s.errorf(k, at, "malformed group %s: %v", s.describe(k, num), wireProblem(m))
	}
	return s.errorf(k, at, "malformed field")
}

// wireProblem describes a negative result of a protowire Consume function.
func wireProblem(n int) string {
	msg := protowire.ParseError(n).Error()
	if rest, ok := strings.CutPrefix(msg, "proto:"); ok {
		msg = strings.TrimLeft(rest, " \u00a0")
	}
	return msg
}

// wrongType reports a known field encoded with the wrong wire type.
// proto.Unmarshal would keep it as an unknown field and the worker would see
// the field as absent; the ingester rejects it instead.
func (s *scanner) wrongType(k kind, at int, f Field) error {
	return s.errorf(k, at, "wrong wire type %d for %s", f.Type, s.describe(k, f.Num))
}

func (s *scanner) badUTF8(k kind, at int, num FieldNum) error {
	return s.errorf(k, at, "invalid UTF-8 in string %s", s.describe(k, num))
}
