package schemas

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type logBuilder struct {
	rb                  *array.RecordBuilder
	resourceID, scopeID *array.Uint32Builder
	time, observed      *array.Uint64Builder
	severity            *array.Int32Builder
	severityText        *array.StringBuilder
	body                anyBuilder
	attrs               attrTable
	dropped, flags      *array.Uint32Builder
	traceID, spanID     *array.BinaryBuilder
	eventName           *array.StringBuilder
	extra               *array.BinaryBuilder
}

func newLogBuilder(mem memory.Allocator, strict *bool) *logBuilder {
	rb := array.NewRecordBuilder(mem, LogRecordsSchema)
	return &logBuilder{
		rb:           rb,
		resourceID:   rb.Field(LogResourceID).(*array.Uint32Builder),
		scopeID:      rb.Field(LogScopeID).(*array.Uint32Builder),
		time:         rb.Field(LogTimeUnixNano).(*array.Uint64Builder),
		observed:     rb.Field(LogObservedTimeUnixNano).(*array.Uint64Builder),
		severity:     rb.Field(LogSeverityNumber).(*array.Int32Builder),
		severityText: rb.Field(LogSeverityText).(*array.StringBuilder),
		body:         newAnyBuilder(rb.Field(LogBody).(*array.StructBuilder)),
		attrs:        newAttrTable(strict),
		dropped:      rb.Field(LogDroppedAttributesCount).(*array.Uint32Builder),
		flags:        rb.Field(LogFlags).(*array.Uint32Builder),
		traceID:      rb.Field(LogTraceID).(*array.BinaryBuilder),
		spanID:       rb.Field(LogSpanID).(*array.BinaryBuilder),
		eventName:    rb.Field(LogEventName).(*array.StringBuilder),
		extra:        rb.Field(LogExtra).(*array.BinaryBuilder),
	}
}

// logRecord decodes one LogRecord into one row.
func (b *Builder) logRecord(p []byte, rid, sid uint32) error {
	t := b.logs
	t.attrs.row(true)
	b.itemExtra = b.itemExtra[:0]
	var tm, observed uint64
	var severity int32
	var dropped, flags uint32
	var sevText, traceID, spanID, eventName []byte
	bodyParts := b.bodyParts[:0]
	for i := 0; i < len(p); {
		num, typ, x, q, n := next(p[i:])
		if n < 0 {
			return malformed("LogRecord", num)
		}
		switch {
		case num == 1 && typ == wtI64:
			tm = x
		case num == 11 && typ == wtI64:
			observed = x
		case num == 2 && typ == wtVarint:
			severity = int32(x)
		case num == 3 && typ == wtLen:
			sevText = q
		case num == 5 && typ == wtLen:
			bodyParts = append(bodyParts, q)
		case num == 6 && typ == wtLen:
			if err := t.attrs.appendKV(q); err != nil {
				return err
			}
		case num == 7 && typ == wtVarint:
			dropped = uint32(x)
		case num == 8 && typ == wtI32:
			flags = uint32(x)
		case num == 9 && typ == wtLen:
			traceID = q
		case num == 10 && typ == wtLen:
			spanID = q
		case num == 12 && typ == wtLen:
			eventName = q
		default:
			b.itemExtra = append(b.itemExtra, p[i:i+n]...)
		}
		i += n
	}
	if err := validString(sevText, "LogRecord", 3); err != nil {
		return err
	}
	if err := validString(eventName, "LogRecord", 12); err != nil {
		return err
	}
	b.bodyParts = bodyParts[:0]
	if len(bodyParts) == 0 {
		t.body.put(ValueNone, nil, 0, nil)
	} else if err := t.body.appendAny(b.joined(bodyParts)); err != nil {
		return err
	}
	t.resourceID.Append(rid)
	t.scopeID.Append(sid)
	t.time.Append(tm)
	t.observed.Append(observed)
	t.severity.Append(severity)
	t.severityText.BinaryBuilder.Append(sevText)
	t.dropped.Append(dropped)
	t.flags.Append(flags)
	t.traceID.Append(traceID)
	t.spanID.Append(spanID)
	t.eventName.BinaryBuilder.Append(eventName)
	t.extra.Append(b.itemExtra)
	b.items++
	return nil
}

func (t *logBuilder) flush() {
	t.body.flush()
	t.attrs.flush()
}
