package schemas

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type spanBuilder struct {
	rb                                   *array.RecordBuilder
	resourceID, scopeID                  bufCol[uint32]
	traceID, spanID, parentSpanID        bufBin
	traceState, name                     bufBin
	flags                                bufCol[uint32]
	kind                                 bufCol[int32]
	start, end                           bufCol[uint64]
	attrs                                attrTable
	dropped, droppedEvents, droppedLinks bufCol[uint32]
	events                               bufList
	ev                                   *array.StructBuilder
	evTime                               *array.Uint64Builder
	evName                               *array.StringBuilder
	evAttrs                              attrBuilder
	evDropped                            *array.Uint32Builder
	links                                bufList
	lk                                   *array.StructBuilder
	lkTrace, lkSpan                      *array.BinaryBuilder
	lkState                              *array.StringBuilder
	lkAttrs                              attrBuilder
	lkDropped, lkFlags                   *array.Uint32Builder
	statusCode                           bufOpt[int32]
	statusMessage                        bufBin
	extra                                bufBin
}

func newSpanBuilder(mem memory.Allocator, strict *bool) *spanBuilder {
	rb := array.NewRecordBuilder(mem, SpansSchema)
	t := &spanBuilder{rb: rb}
	t.resourceID = newBufCol[uint32](rb.Field(SpanResourceID))
	t.scopeID = newBufCol[uint32](rb.Field(SpanScopeID))
	t.traceID = newBufBin(rb.Field(SpanTraceID))
	t.spanID = newBufBin(rb.Field(SpanSpanID))
	t.traceState = newBufBin(rb.Field(SpanTraceState))
	t.parentSpanID = newBufBin(rb.Field(SpanParentSpanID))
	t.flags = newBufCol[uint32](rb.Field(SpanFlags))
	t.name = newBufBin(rb.Field(SpanName))
	t.kind = newBufCol[int32](rb.Field(SpanKind))
	t.start = newBufCol[uint64](rb.Field(SpanStartTimeUnixNano))
	t.end = newBufCol[uint64](rb.Field(SpanEndTimeUnixNano))
	t.attrs = newAttrTable(strict, mem)
	t.dropped = newBufCol[uint32](rb.Field(SpanDroppedAttributesCount))
	t.events = newBufList(rb.Field(SpanEvents))
	t.ev = t.events.vb.(*array.StructBuilder)
	t.evTime = t.ev.FieldBuilder(EvTimeUnixNano).(*array.Uint64Builder)
	t.evName = t.ev.FieldBuilder(EvName).(*array.StringBuilder)
	t.evAttrs = newAttrBuilder(t.ev.FieldBuilder(EvAttributes))
	t.evDropped = t.ev.FieldBuilder(EvDroppedAttributesCount).(*array.Uint32Builder)
	t.droppedEvents = newBufCol[uint32](rb.Field(SpanDroppedEventsCount))
	t.links = newBufList(rb.Field(SpanLinks))
	t.lk = t.links.vb.(*array.StructBuilder)
	t.lkTrace = t.lk.FieldBuilder(LinkTraceID).(*array.BinaryBuilder)
	t.lkSpan = t.lk.FieldBuilder(LinkSpanID).(*array.BinaryBuilder)
	t.lkState = t.lk.FieldBuilder(LinkTraceState).(*array.StringBuilder)
	t.lkAttrs = newAttrBuilder(t.lk.FieldBuilder(LinkAttributes))
	t.lkDropped = t.lk.FieldBuilder(LinkDroppedAttributesCount).(*array.Uint32Builder)
	t.lkFlags = t.lk.FieldBuilder(LinkFlags).(*array.Uint32Builder)
	t.droppedLinks = newBufCol[uint32](rb.Field(SpanDroppedLinksCount))
	t.statusCode = newBufOpt[int32](rb.Field(SpanStatusCode))
	t.statusMessage = newBufBin(rb.Field(SpanStatusMessage))
	t.extra = newBufBin(rb.Field(SpanExtra))
	return t
}

// span decodes one Span into one row.
func (b *Builder) span(p []byte, rid, sid uint32) error {
	t := b.spans
	t.attrs.row(true)
	t.events.open()
	t.links.open()
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
	t.resourceID.add(rid)
	t.scopeID.add(sid)
	t.traceID.add(traceID)
	t.spanID.add(spanID)
	t.traceState.add(state)
	t.parentSpanID.add(parent)
	t.flags.add(flags)
	t.name.add(name)
	t.kind.add(kind)
	t.start.add(start)
	t.end.add(end)
	t.dropped.add(dropped)
	t.droppedEvents.add(droppedEvents)
	t.droppedLinks.add(droppedLinks)
	t.statusCode.add(statusCode, hasStatus)
	t.statusMessage.add(statusMsg)
	t.extra.add(b.stable(b.itemExtra))
	b.items++
	return nil
}

func (t *spanBuilder) event(p []byte) error {
	t.ev.Append(true)
	t.evAttrs.row(true)
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
	t.lkAttrs.row(true)
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

func (t *spanBuilder) flush() {
	t.attrs.flush()
	t.evAttrs.flush()
	t.lkAttrs.flush()
	for _, c := range []*bufCol[uint32]{&t.resourceID, &t.scopeID, &t.flags, &t.dropped, &t.droppedEvents, &t.droppedLinks} {
		c.flush()
	}
	for _, c := range []*bufBin{&t.traceID, &t.spanID, &t.traceState, &t.parentSpanID, &t.name, &t.statusMessage, &t.extra} {
		c.flush()
	}
	t.kind.flush()
	t.start.flush()
	t.end.flush()
	t.events.flush()
	t.links.flush()
	t.statusCode.flush()
}
