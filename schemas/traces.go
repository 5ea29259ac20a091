package schemas

import (
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/otlpwire"
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
//
//	message Span {
//	  bytes trace_id = 1;
//	  bytes span_id = 2;
//	  string trace_state = 3;
//	  bytes parent_span_id = 4;
//	  fixed32 flags = 16;
//	  string name = 5;
//	  SpanKind kind = 6;
//	  fixed64 start_time_unix_nano = 7;
//	  fixed64 end_time_unix_nano = 8;
//	  repeated KeyValue attributes = 9;
//	  uint32 dropped_attributes_count = 10;
//	  repeated Event events = 11;
//	  uint32 dropped_events_count = 12;
//	  repeated Link links = 13;
//	  uint32 dropped_links_count = 14;
//	  Status status = 15;
//	}
//	message Status {
//	  string message = 2;
//	  StatusCode code = 3;
//	}
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
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Span", f.Num)
		}
		switch {
		case f.Num == otlpwire.SpanTraceID && f.Type == otlpwire.WireLen:
			traceID = p[f.Val:f.End]
		case f.Num == otlpwire.SpanSpanID && f.Type == otlpwire.WireLen:
			spanID = p[f.Val:f.End]
		case f.Num == otlpwire.SpanTraceState && f.Type == otlpwire.WireLen:
			state = p[f.Val:f.End]
		case f.Num == otlpwire.SpanParentSpanID && f.Type == otlpwire.WireLen:
			parent = p[f.Val:f.End]
		case f.Num == otlpwire.SpanFlags && f.Type == otlpwire.WireI32:
			flags = uint32(f.X)
		case f.Num == otlpwire.SpanName && f.Type == otlpwire.WireLen:
			name = p[f.Val:f.End]
		case f.Num == otlpwire.SpanKind && f.Type == otlpwire.WireVarint:
			kind = int32(f.X)
		case f.Num == otlpwire.SpanStartTimeUnixNano && f.Type == otlpwire.WireI64:
			start = f.X
		case f.Num == otlpwire.SpanEndTimeUnixNano && f.Type == otlpwire.WireI64:
			end = f.X
		case f.Num == otlpwire.SpanAttributes && f.Type == otlpwire.WireLen:
			if err := t.attrs.appendKV(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.SpanDroppedAttributesCount && f.Type == otlpwire.WireVarint:
			dropped = uint32(f.X)
		case f.Num == otlpwire.SpanEvents && f.Type == otlpwire.WireLen:
			if err := t.event(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.SpanDroppedEventsCount && f.Type == otlpwire.WireVarint:
			droppedEvents = uint32(f.X)
		case f.Num == otlpwire.SpanLinks && f.Type == otlpwire.WireLen:
			if err := t.link(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.SpanDroppedLinksCount && f.Type == otlpwire.WireVarint:
			droppedLinks = uint32(f.X)
		case f.Num == otlpwire.SpanStatus && f.Type == otlpwire.WireLen:
			// Occurrences of status merge: its fields are scalars, the last wins.
			hasStatus = true
			q := p[f.Val:f.End]
			for j := 0; j < len(q); {
				g, code := otlpwire.ReadField(q, j)
				if code != otlpwire.ReadOK {
					return malformed("Status", g.Num)
				}
				j = g.End
				switch {
				case g.Num == otlpwire.StatusMessage && g.Type == otlpwire.WireLen:
					statusMsg = q[g.Val:g.End]
				case g.Num == otlpwire.StatusCode && g.Type == otlpwire.WireVarint:
					statusCode = int32(g.X)
				default:
					return unsupported("Status", g.Num)
				}
			}
		default:
			b.itemExtra = append(b.itemExtra, p[i:f.End]...)
		}
		i = f.End
	}
	if err := validString(state, "Span", otlpwire.SpanTraceState); err != nil {
		return err
	}
	if err := validString(name, "Span", otlpwire.SpanName); err != nil {
		return err
	}
	if err := validString(statusMsg, "Status", otlpwire.StatusMessage); err != nil {
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

// event decodes one Span.Event into the open events list.
//
//	message Event {
//	  fixed64 time_unix_nano = 1;
//	  string name = 2;
//	  repeated KeyValue attributes = 3;
//	  uint32 dropped_attributes_count = 4;
//	}
func (t *spanBuilder) event(p []byte) error {
	t.ev.Append(true)
	t.evAttrs.row(true)
	var tm uint64
	var name []byte
	var dropped uint32
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Span.Event", f.Num)
		}
		i = f.End
		switch {
		case f.Num == otlpwire.SpanEventTimeUnixNano && f.Type == otlpwire.WireI64:
			tm = f.X
		case f.Num == otlpwire.SpanEventName && f.Type == otlpwire.WireLen:
			name = p[f.Val:f.End]
		case f.Num == otlpwire.SpanEventAttributes && f.Type == otlpwire.WireLen:
			if err := t.evAttrs.appendKV(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.SpanEventDroppedAttributesCount && f.Type == otlpwire.WireVarint:
			dropped = uint32(f.X)
		default:
			return unsupported("Span.Event", f.Num)
		}
	}
	if err := validString(name, "Span.Event", otlpwire.SpanEventName); err != nil {
		return err
	}
	t.evTime.Append(tm)
	t.evName.BinaryBuilder.Append(name)
	t.evDropped.Append(dropped)
	return nil
}

// link decodes one Span.Link into the open links list.
//
//	message Link {
//	  bytes trace_id = 1;
//	  bytes span_id = 2;
//	  string trace_state = 3;
//	  repeated KeyValue attributes = 4;
//	  uint32 dropped_attributes_count = 5;
//	  fixed32 flags = 6;
//	}
func (t *spanBuilder) link(p []byte) error {
	t.lk.Append(true)
	t.lkAttrs.row(true)
	var trace, span, state []byte
	var dropped, flags uint32
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Span.Link", f.Num)
		}
		i = f.End
		switch {
		case f.Num == otlpwire.SpanLinkTraceID && f.Type == otlpwire.WireLen:
			trace = p[f.Val:f.End]
		case f.Num == otlpwire.SpanLinkSpanID && f.Type == otlpwire.WireLen:
			span = p[f.Val:f.End]
		case f.Num == otlpwire.SpanLinkTraceState && f.Type == otlpwire.WireLen:
			state = p[f.Val:f.End]
		case f.Num == otlpwire.SpanLinkAttributes && f.Type == otlpwire.WireLen:
			if err := t.lkAttrs.appendKV(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.SpanLinkDroppedAttributesCount && f.Type == otlpwire.WireVarint:
			dropped = uint32(f.X)
		case f.Num == otlpwire.SpanLinkFlags && f.Type == otlpwire.WireI32:
			flags = uint32(f.X)
		default:
			return unsupported("Span.Link", f.Num)
		}
	}
	if err := validString(state, "Span.Link", otlpwire.SpanLinkTraceState); err != nil {
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
