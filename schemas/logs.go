package schemas

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type logBuilder struct {
	rb                      *array.RecordBuilder
	resourceID, scopeID     bufCol[uint32]
	time, observed          bufCol[uint64]
	severity                bufCol[int32]
	severityText, eventName bufBin
	body                    anyBuilder
	attrs                   attrTable
	dropped, flags          bufCol[uint32]
	traceID, spanID, extra  bufBin
}

func newLogBuilder(mem memory.Allocator, strict *bool) *logBuilder {
	rb := array.NewRecordBuilder(mem, LogRecordsSchema)
	return &logBuilder{
		rb:           rb,
		resourceID:   newBufCol[uint32](rb.Field(LogResourceID)),
		scopeID:      newBufCol[uint32](rb.Field(LogScopeID)),
		time:         newBufCol[uint64](rb.Field(LogTimeUnixNano)),
		observed:     newBufCol[uint64](rb.Field(LogObservedTimeUnixNano)),
		severity:     newBufCol[int32](rb.Field(LogSeverityNumber)),
		severityText: newBufBin(rb.Field(LogSeverityText)),
		body:         newAnyBuilder(rb.Field(LogBody).(*array.StructBuilder)),
		attrs:        newAttrTable(strict, mem),
		dropped:      newBufCol[uint32](rb.Field(LogDroppedAttributesCount)),
		flags:        newBufCol[uint32](rb.Field(LogFlags)),
		traceID:      newBufBin(rb.Field(LogTraceID)),
		spanID:       newBufBin(rb.Field(LogSpanID)),
		eventName:    newBufBin(rb.Field(LogEventName)),
		extra:        newBufBin(rb.Field(LogExtra)),
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
	t.resourceID.add(rid)
	t.scopeID.add(sid)
	t.time.add(tm)
	t.observed.add(observed)
	t.severity.add(severity)
	t.severityText.add(sevText)
	t.dropped.add(dropped)
	t.flags.add(flags)
	t.traceID.add(traceID)
	t.spanID.add(spanID)
	t.eventName.add(eventName)
	t.extra.add(b.stable(b.itemExtra))
	b.items++
	return nil
}

func (t *logBuilder) flush() {
	t.body.flush()
	t.attrs.flush()
	for _, c := range []*bufCol[uint32]{&t.resourceID, &t.scopeID, &t.dropped, &t.flags} {
		c.flush()
	}
	for _, c := range []*bufBin{&t.severityText, &t.eventName, &t.traceID, &t.spanID, &t.extra} {
		c.flush()
	}
	t.time.flush()
	t.observed.flush()
	t.severity.flush()
}
