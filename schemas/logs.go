package schemas

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/otlpwire"
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
//
//	message LogRecord {
//	  fixed64 time_unix_nano = 1;
//	  fixed64 observed_time_unix_nano = 11;
//	  SeverityNumber severity_number = 2;
//	  string severity_text = 3;
//	  AnyValue body = 5;
//	  repeated KeyValue attributes = 6;
//	  uint32 dropped_attributes_count = 7;
//	  fixed32 flags = 8;
//	  bytes trace_id = 9;
//	  bytes span_id = 10;
//	  string event_name = 12;
//	}
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
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("LogRecord", f.Num)
		}
		switch {
		case f.Num == otlpwire.LogRecordTimeUnixNano && f.Type == otlpwire.WireI64:
			tm = f.X
		case f.Num == otlpwire.LogRecordObservedTimeUnixNano && f.Type == otlpwire.WireI64:
			observed = f.X
		case f.Num == otlpwire.LogRecordSeverityNumber && f.Type == otlpwire.WireVarint:
			severity = int32(f.X)
		case f.Num == otlpwire.LogRecordSeverityText && f.Type == otlpwire.WireLen:
			sevText = p[f.Val:f.End]
		case f.Num == otlpwire.LogRecordBody && f.Type == otlpwire.WireLen:
			bodyParts = append(bodyParts, p[f.Val:f.End])
		case f.Num == otlpwire.LogRecordAttributes && f.Type == otlpwire.WireLen:
			if err := t.attrs.appendKV(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.LogRecordDroppedAttributesCount && f.Type == otlpwire.WireVarint:
			dropped = uint32(f.X)
		case f.Num == otlpwire.LogRecordFlags && f.Type == otlpwire.WireI32:
			flags = uint32(f.X)
		case f.Num == otlpwire.LogRecordTraceID && f.Type == otlpwire.WireLen:
			traceID = p[f.Val:f.End]
		case f.Num == otlpwire.LogRecordSpanID && f.Type == otlpwire.WireLen:
			spanID = p[f.Val:f.End]
		case f.Num == otlpwire.LogRecordEventName && f.Type == otlpwire.WireLen:
			eventName = p[f.Val:f.End]
		default:
			b.itemExtra = append(b.itemExtra, p[i:f.End]...)
		}
		i = f.End
	}
	if err := validString(sevText, "LogRecord", otlpwire.LogRecordSeverityText); err != nil {
		return err
	}
	if err := validString(eventName, "LogRecord", otlpwire.LogRecordEventName); err != nil {
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
