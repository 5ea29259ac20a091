package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

func spansWriter(b *Batch) (func([]byte, int) []byte, error) {
	c := newCols(b.Items, SpansSchema, "spans")
	scope := col[*array.Uint32](c, SpanScopeID)
	traceID := col[*array.Binary](c, SpanTraceID)
	spanID := col[*array.Binary](c, SpanSpanID)
	state := col[*array.String](c, SpanTraceState)
	parent := col[*array.Binary](c, SpanParentSpanID)
	flags := col[*array.Uint32](c, SpanFlags)
	name := col[*array.String](c, SpanName)
	kind := col[*array.Int32](c, SpanKind)
	start := col[*array.Uint64](c, SpanStartTimeUnixNano)
	end := col[*array.Uint64](c, SpanEndTimeUnixNano)
	attrs := attrCol(c, SpanAttributes)
	dropped := col[*array.Uint32](c, SpanDroppedAttributesCount)
	events := col[*array.List](c, SpanEvents)
	droppedEvents := col[*array.Uint32](c, SpanDroppedEventsCount)
	links := col[*array.List](c, SpanLinks)
	droppedLinks := col[*array.Uint32](c, SpanDroppedLinksCount)
	statusCode := col[*array.Int32](c, SpanStatusCode)
	statusMsg := col[*array.String](c, SpanStatusMessage)
	extra := col[*array.Binary](c, SpanExtra)
	if c.err != nil {
		return nil, c.err
	}
	ev := events.ListValues().(*array.Struct)
	evTime := ev.Field(EvTimeUnixNano).(*array.Uint64)
	evName := ev.Field(EvName).(*array.String)
	evAttrs, ok1 := newAttrReader(ev.Field(EvAttributes))
	evDropped := ev.Field(EvDroppedAttributesCount).(*array.Uint32)
	lk := links.ListValues().(*array.Struct)
	lkTrace := lk.Field(LinkTraceID).(*array.Binary)
	lkSpan := lk.Field(LinkSpanID).(*array.Binary)
	lkState := lk.Field(LinkTraceState).(*array.String)
	lkAttrs, ok2 := newAttrReader(lk.Field(LinkAttributes))
	lkDropped := lk.Field(LinkDroppedAttributesCount).(*array.Uint32)
	lkFlags := lk.Field(LinkFlags).(*array.Uint32)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: span events or links attributes", ErrSchema)
	}
	g, err := groupBy(scope, int(b.Scopes.NumRows()), "spans")
	if err != nil {
		return nil, err
	}
	return func(dst []byte, s int) []byte {
		for _, i := range g.of(s) {
			i := int(i)
			var st int
			dst, st = openMsg(dst, otlpwire.ScopeSpansSpans, 2)
			dst = appendBin(dst, otlpwire.SpanTraceID, traceID.Value(i))
			dst = appendBin(dst, otlpwire.SpanSpanID, spanID.Value(i))
			dst = appendStr(dst, otlpwire.SpanTraceState, state.Value(i))
			dst = appendBin(dst, otlpwire.SpanParentSpanID, parent.Value(i))
			dst = appendStr(dst, otlpwire.SpanName, name.Value(i))
			dst = appendVarintF(dst, otlpwire.SpanKind, i32v(kind.Value(i)))
			dst = appendFixed64F(dst, otlpwire.SpanStartTimeUnixNano, start.Value(i))
			dst = appendFixed64F(dst, otlpwire.SpanEndTimeUnixNano, end.Value(i))
			dst = attrs.appendKVs(dst, otlpwire.SpanAttributes, i)
			dst = appendVarintF(dst, otlpwire.SpanDroppedAttributesCount, uint64(dropped.Value(i)))
			from, to := events.ValueOffsets(i)
			for e := int(from); e < int(to); e++ {
				var es int
				dst, es = openMsg(dst, otlpwire.SpanEvents, 2)
				dst = appendFixed64F(dst, otlpwire.SpanEventTimeUnixNano, evTime.Value(e))
				dst = appendStr(dst, otlpwire.SpanEventName, evName.Value(e))
				dst = evAttrs.appendKVs(dst, otlpwire.SpanEventAttributes, e)
				dst = appendVarintF(dst, otlpwire.SpanEventDroppedAttributesCount, uint64(evDropped.Value(e)))
				dst = closeMsg(dst, es, 2)
			}
			dst = appendVarintF(dst, otlpwire.SpanDroppedEventsCount, uint64(droppedEvents.Value(i)))
			from, to = links.ValueOffsets(i)
			for l := int(from); l < int(to); l++ {
				var ls int
				dst, ls = openMsg(dst, otlpwire.SpanLinks, 2)
				dst = appendBin(dst, otlpwire.SpanLinkTraceID, lkTrace.Value(l))
				dst = appendBin(dst, otlpwire.SpanLinkSpanID, lkSpan.Value(l))
				dst = appendStr(dst, otlpwire.SpanLinkTraceState, lkState.Value(l))
				dst = lkAttrs.appendKVs(dst, otlpwire.SpanLinkAttributes, l)
				dst = appendVarintF(dst, otlpwire.SpanLinkDroppedAttributesCount, uint64(lkDropped.Value(l)))
				dst = appendFixed32F(dst, otlpwire.SpanLinkFlags, lkFlags.Value(l))
				dst = closeMsg(dst, ls, 2)
			}
			dst = appendVarintF(dst, otlpwire.SpanDroppedLinksCount, uint64(droppedLinks.Value(i)))
			if !statusCode.IsNull(i) {
				var ss int
				dst, ss = openMsg(dst, otlpwire.SpanStatus, 1)
				dst = appendStr(dst, otlpwire.StatusMessage, statusMsg.Value(i))
				dst = appendVarintF(dst, otlpwire.StatusCode, i32v(statusCode.Value(i)))
				dst = closeMsg(dst, ss, 1)
			}
			dst = appendFixed32F(dst, otlpwire.SpanFlags, flags.Value(i))
			dst = append(dst, extra.Value(i)...)
			dst = closeMsg(dst, st, 2)
		}
		return dst
	}, nil
}
