package schemas

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type spanBuilder struct {
	rb                                   *array.RecordBuilder
	resourceID, scopeID                  *array.Uint32Builder
	traceID, spanID, parentSpanID        *array.BinaryBuilder
	traceState, name                     *array.StringBuilder
	flags                                *array.Uint32Builder
	kind                                 *array.Int32Builder
	start, end                           *array.Uint64Builder
	attrs                                attrBuilder
	dropped, droppedEvents, droppedLinks *array.Uint32Builder
	events                               *array.ListBuilder
	ev                                   *array.StructBuilder
	evTime                               *array.Uint64Builder
	evName                               *array.StringBuilder
	evAttrs                              attrBuilder
	evDropped                            *array.Uint32Builder
	links                                *array.ListBuilder
	lk                                   *array.StructBuilder
	lkTrace, lkSpan                      *array.BinaryBuilder
	lkState                              *array.StringBuilder
	lkAttrs                              attrBuilder
	lkDropped, lkFlags                   *array.Uint32Builder
	statusCode                           *array.Int32Builder
	statusMessage                        *array.StringBuilder
	extra                                *array.BinaryBuilder
}

func newSpanBuilder(mem memory.Allocator) *spanBuilder {
	rb := array.NewRecordBuilder(mem, SpansSchema)
	t := &spanBuilder{rb: rb}
	t.resourceID = rb.Field(SpanResourceID).(*array.Uint32Builder)
	t.scopeID = rb.Field(SpanScopeID).(*array.Uint32Builder)
	t.traceID = rb.Field(SpanTraceID).(*array.BinaryBuilder)
	t.spanID = rb.Field(SpanSpanID).(*array.BinaryBuilder)
	t.traceState = rb.Field(SpanTraceState).(*array.StringBuilder)
	t.parentSpanID = rb.Field(SpanParentSpanID).(*array.BinaryBuilder)
	t.flags = rb.Field(SpanFlags).(*array.Uint32Builder)
	t.name = rb.Field(SpanName).(*array.StringBuilder)
	t.kind = rb.Field(SpanKind).(*array.Int32Builder)
	t.start = rb.Field(SpanStartTimeUnixNano).(*array.Uint64Builder)
	t.end = rb.Field(SpanEndTimeUnixNano).(*array.Uint64Builder)
	t.attrs = newAttrBuilder(rb.Field(SpanAttributes))
	t.dropped = rb.Field(SpanDroppedAttributesCount).(*array.Uint32Builder)
	t.events = rb.Field(SpanEvents).(*array.ListBuilder)
	t.ev = t.events.ValueBuilder().(*array.StructBuilder)
	t.evTime = t.ev.FieldBuilder(EvTimeUnixNano).(*array.Uint64Builder)
	t.evName = t.ev.FieldBuilder(EvName).(*array.StringBuilder)
	t.evAttrs = newAttrBuilder(t.ev.FieldBuilder(EvAttributes))
	t.evDropped = t.ev.FieldBuilder(EvDroppedAttributesCount).(*array.Uint32Builder)
	t.droppedEvents = rb.Field(SpanDroppedEventsCount).(*array.Uint32Builder)
	t.links = rb.Field(SpanLinks).(*array.ListBuilder)
	t.lk = t.links.ValueBuilder().(*array.StructBuilder)
	t.lkTrace = t.lk.FieldBuilder(LinkTraceID).(*array.BinaryBuilder)
	t.lkSpan = t.lk.FieldBuilder(LinkSpanID).(*array.BinaryBuilder)
	t.lkState = t.lk.FieldBuilder(LinkTraceState).(*array.StringBuilder)
	t.lkAttrs = newAttrBuilder(t.lk.FieldBuilder(LinkAttributes))
	t.lkDropped = t.lk.FieldBuilder(LinkDroppedAttributesCount).(*array.Uint32Builder)
	t.lkFlags = t.lk.FieldBuilder(LinkFlags).(*array.Uint32Builder)
	t.droppedLinks = rb.Field(SpanDroppedLinksCount).(*array.Uint32Builder)
	t.statusCode = rb.Field(SpanStatusCode).(*array.Int32Builder)
	t.statusMessage = rb.Field(SpanStatusMessage).(*array.StringBuilder)
	t.extra = rb.Field(SpanExtra).(*array.BinaryBuilder)
	return t
}

// span decodes one Span into one row.
func (b *Builder) span(p []byte, rid, sid uint32) error {
	t := b.spans
	t.attrs.m.Append(true)
	t.events.Append(true)
	t.links.Append(true)
	b.itemExtra = b.itemExtra[:0]
	var traceID, spanID, parent, state, name, statusMsg []byte
	var flags, dropped, droppedEvents, droppedLinks uint32
	var kind, statusCode int32
	var start, end uint64
	hasStatus := false
	for i := 0; i < len(p); {
		num, typ, x, q, n := next(p[i:])
		if n < 0 {
			return malformed("Span", num)
		}
		switch {
		case num == 1 && typ == wtLen:
			traceID = q
		case num == 2 && typ == wtLen:
			spanID = q
		case num == 3 && typ == wtLen:
			state = q
		case num == 4 && typ == wtLen:
			parent = q
		case num == 16 && typ == wtI32:
			flags = uint32(x)
		case num == 5 && typ == wtLen:
			name = q
		case num == 6 && typ == wtVarint:
			kind = int32(x)
		case num == 7 && typ == wtI64:
			start = x
		case num == 8 && typ == wtI64:
			end = x
		case num == 9 && typ == wtLen:
			if err := t.attrs.appendKV(q); err != nil {
				return err
			}
		case num == 10 && typ == wtVarint:
			dropped = uint32(x)
		case num == 11 && typ == wtLen:
			if err := t.event(q); err != nil {
				return err
			}
		case num == 12 && typ == wtVarint:
			droppedEvents = uint32(x)
		case num == 13 && typ == wtLen:
			if err := t.link(q); err != nil {
				return err
			}
		case num == 14 && typ == wtVarint:
			droppedLinks = uint32(x)
		case num == 15 && typ == wtLen:
			// Occurrences of status merge: its fields are scalars, the last wins.
			hasStatus = true
			for j := 0; j < len(q); {
				num, typ, x, r, n := next(q[j:])
				if n < 0 {
					return malformed("Status", num)
				}
				j += n
				switch {
				case num == 2 && typ == wtLen:
					statusMsg = r
				case num == 3 && typ == wtVarint:
					statusCode = int32(x)
				default:
					return unsupported("Status", num)
				}
			}
		default:
			b.itemExtra = append(b.itemExtra, p[i:i+n]...)
		}
		i += n
	}
	if err := validString(state, "Span", 3); err != nil {
		return err
	}
	if err := validString(name, "Span", 5); err != nil {
		return err
	}
	if err := validString(statusMsg, "Status", 2); err != nil {
		return err
	}
	t.resourceID.Append(rid)
	t.scopeID.Append(sid)
	t.traceID.Append(traceID)
	t.spanID.Append(spanID)
	t.traceState.BinaryBuilder.Append(state)
	t.parentSpanID.Append(parent)
	t.flags.Append(flags)
	t.name.BinaryBuilder.Append(name)
	t.kind.Append(kind)
	t.start.Append(start)
	t.end.Append(end)
	t.dropped.Append(dropped)
	t.droppedEvents.Append(droppedEvents)
	t.droppedLinks.Append(droppedLinks)
	appendOptInt32(t.statusCode, statusCode, hasStatus)
	t.statusMessage.BinaryBuilder.Append(statusMsg)
	t.extra.Append(b.itemExtra)
	b.items++
	return nil
}

func (t *spanBuilder) event(p []byte) error {
	t.ev.Append(true)
	t.evAttrs.m.Append(true)
	var tm uint64
	var name []byte
	var dropped uint32
	for i := 0; i < len(p); {
		num, typ, x, q, n := next(p[i:])
		if n < 0 {
			return malformed("Span.Event", num)
		}
		i += n
		switch {
		case num == 1 && typ == wtI64:
			tm = x
		case num == 2 && typ == wtLen:
			name = q
		case num == 3 && typ == wtLen:
			if err := t.evAttrs.appendKV(q); err != nil {
				return err
			}
		case num == 4 && typ == wtVarint:
			dropped = uint32(x)
		default:
			return unsupported("Span.Event", num)
		}
	}
	if err := validString(name, "Span.Event", 2); err != nil {
		return err
	}
	t.evTime.Append(tm)
	t.evName.BinaryBuilder.Append(name)
	t.evDropped.Append(dropped)
	return nil
}

func (t *spanBuilder) link(p []byte) error {
	t.lk.Append(true)
	t.lkAttrs.m.Append(true)
	var trace, span, state []byte
	var dropped, flags uint32
	for i := 0; i < len(p); {
		num, typ, x, q, n := next(p[i:])
		if n < 0 {
			return malformed("Span.Link", num)
		}
		i += n
		switch {
		case num == 1 && typ == wtLen:
			trace = q
		case num == 2 && typ == wtLen:
			span = q
		case num == 3 && typ == wtLen:
			state = q
		case num == 4 && typ == wtLen:
			if err := t.lkAttrs.appendKV(q); err != nil {
				return err
			}
		case num == 5 && typ == wtVarint:
			dropped = uint32(x)
		case num == 6 && typ == wtI32:
			flags = uint32(x)
		default:
			return unsupported("Span.Link", num)
		}
	}
	if err := validString(state, "Span.Link", 3); err != nil {
		return err
	}
	t.lkTrace.Append(trace)
	t.lkSpan.Append(span)
	t.lkState.BinaryBuilder.Append(state)
	t.lkDropped.Append(dropped)
	t.lkFlags.Append(flags)
	return nil
}
