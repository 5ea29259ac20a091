package schemas

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/protobuf/encoding/protowire"
)

// cols reads typed columns of a record, remembering the first mismatch.
type cols struct {
	rec  arrow.RecordBatch
	name string
	err  error
}

func col[T arrow.Array](c *cols, i int) T {
	var zero T
	if c.err != nil {
		return zero
	}
	a, ok := c.rec.Column(i).(T)
	if !ok {
		c.err = fmt.Errorf("%w: %s column %d (%s) is %s", ErrSchema, c.name, i, c.rec.Schema().Field(i).Name, c.rec.Column(i).DataType())
	}
	return a
}

func attrCol(c *cols, i int) attrReader {
	if c.err != nil {
		return attrReader{}
	}
	r, ok := newAttrReader(c.rec.Column(i))
	if !ok {
		c.err = fmt.Errorf("%w: %s column %d is not an attributes map", ErrSchema, c.name, i)
	}
	return r
}

func newCols(rec arrow.RecordBatch, want *arrow.Schema, name string) *cols {
	c := &cols{rec: rec, name: name}
	switch {
	case rec == nil:
		c.err = fmt.Errorf("%w: no %s table", ErrSchema, name)
	case !rec.Schema().Equal(want):
		c.err = fmt.Errorf("%w: %s table has schema %s", ErrSchema, name, rec.Schema())
	}
	return c
}

// groups orders the rows of a child table by parent: rows of parent p are
// order[start[p]:start[p+1]], in table order.
type groups struct {
	order, start []int32
}

func groupBy(ids *array.Uint32, parents int, what string) (groups, error) {
	g := groups{order: make([]int32, ids.Len()), start: make([]int32, parents+1)}
	for i := 0; i < ids.Len(); i++ {
		id := ids.Value(i)
		if int(id) >= parents {
			return g, fmt.Errorf("%w: %s row %d refers to parent %d of %d", ErrSchema, what, i, id, parents)
		}
		g.start[id+1]++
	}
	for p := 1; p <= parents; p++ {
		g.start[p] += g.start[p-1]
	}
	fill := append([]int32(nil), g.start[:parents]...)
	for i := 0; i < ids.Len(); i++ {
		id := ids.Value(i)
		g.order[fill[id]] = int32(i)
		fill[id]++
	}
	return g, nil
}

func (g groups) of(p int) []int32 { return g.order[g.start[p]:g.start[p+1]] }

// errBySet refuses a batch that holds its items' attributes as a table of
// sets (Batch.ItemAttrSetTable): its attributes column does not hold them.
var errBySet = fmt.Errorf("%w: a batch holding its items' attributes by set (ItemAttrSetTable) cannot be written as OTLP", ErrSchema)

// ToOTLP appends to dst the Export{Metrics,Logs,Trace}ServiceRequest encoding
// of b: every resource in row order, each with its scopes in row order, each
// with its items (and metrics) in row order. Resources, scopes and metrics
// left without items (for example by a rule that dropped rows) are written
// empty, as they would be had they arrived so; see Prune.
func ToOTLP(b *Batch, dst []byte) ([]byte, error) {
	if b.ItemAttrSetTable != nil {
		return dst, errBySet
	}
	rc := newCols(b.Resources, ResourcesSchema, "resources")
	rAttrs := attrCol(rc, ResAttributes)
	rDropped := col[*array.Uint32](rc, ResDroppedAttributesCount)
	rSchema := col[*array.String](rc, ResSchemaURL)
	rResExtra := col[*array.Binary](rc, ResResourceExtra)
	rExtra := col[*array.Binary](rc, ResExtra)
	if rc.err != nil {
		return dst, rc.err
	}
	sc := newCols(b.Scopes, ScopesSchema, "scopes")
	sRes := col[*array.Uint32](sc, ScopeResourceID)
	sName := col[*array.String](sc, ScopeName)
	sVersion := col[*array.String](sc, ScopeVersion)
	sAttrs := attrCol(sc, ScopeAttributes)
	sDropped := col[*array.Uint32](sc, ScopeDroppedAttributesCount)
	sSchema := col[*array.String](sc, ScopeSchemaURL)
	sScopeExtra := col[*array.Binary](sc, ScopeScopeExtra)
	sExtra := col[*array.Binary](sc, ScopeExtra)
	if sc.err != nil {
		return dst, sc.err
	}
	scopesOf, err := groupBy(sRes, int(b.Resources.NumRows()), "scopes")
	if err != nil {
		return dst, err
	}
	var items func(dst []byte, scope int) []byte
	switch b.Signal {
	case otlpwire.Metrics:
		items, err = metricsWriter(b)
	case otlpwire.Logs:
		items, err = logsWriter(b)
	case otlpwire.Traces:
		items, err = spansWriter(b)
	default:
		err = fmt.Errorf("%w: signal %v", ErrSchema, b.Signal)
	}
	if err != nil {
		return dst, err
	}
	for r := 0; r < int(b.Resources.NumRows()); r++ {
		var rx int
		dst, rx = openMsg(dst, otlpwire.RequestResourceX, 3)
		if !rAttrs.m.IsNull(r) {
			var rs int
			dst, rs = openMsg(dst, otlpwire.ResourceXResource, 2)
			dst = rAttrs.appendKVs(dst, otlpwire.ResourceAttributes, r)
			dst = appendVarintF(dst, otlpwire.ResourceDroppedAttributesCount, uint64(rDropped.Value(r)))
			dst = append(dst, rResExtra.Value(r)...)
			dst = closeMsg(dst, rs, 2)
		}
		for _, s := range scopesOf.of(r) {
			s := int(s)
			var sx int
			dst, sx = openMsg(dst, otlpwire.ResourceXScopeX, 3)
			if !sAttrs.m.IsNull(s) {
				var ss int
				dst, ss = openMsg(dst, otlpwire.ScopeXScope, 2)
				dst = appendStr(dst, otlpwire.InstrumentationScopeName, sName.Value(s))
				dst = appendStr(dst, otlpwire.InstrumentationScopeVersion, sVersion.Value(s))
				dst = sAttrs.appendKVs(dst, otlpwire.InstrumentationScopeAttributes, s)
				dst = appendVarintF(dst, otlpwire.InstrumentationScopeDroppedAttributesCount, uint64(sDropped.Value(s)))
				dst = append(dst, sScopeExtra.Value(s)...)
				dst = closeMsg(dst, ss, 2)
			}
			dst = items(dst, s)
			dst = appendStr(dst, otlpwire.ScopeXSchemaURL, sSchema.Value(s))
			dst = append(dst, sExtra.Value(s)...)
			dst = closeMsg(dst, sx, 3)
		}
		dst = appendStr(dst, otlpwire.ResourceXSchemaURL, rSchema.Value(r))
		dst = append(dst, rExtra.Value(r)...)
		dst = closeMsg(dst, rx, 3)
	}
	return dst, nil
}

func i32v(v int32) uint64 { return uint64(int64(v)) }

func appendDouble(dst []byte, num otlpwire.FieldNum, v float64) []byte {
	return appendFixed64F(dst, num, math.Float64bits(v))
}

// appendOptDouble writes a field with explicit presence (optional, oneof).
func appendOptDouble(dst []byte, num otlpwire.FieldNum, a *array.Float64, i int) []byte {
	if a.IsNull(i) {
		return dst
	}
	dst = otlpwire.AppendTag(dst, num, otlpwire.WireI64)
	return protowire.AppendFixed64(dst, math.Float64bits(a.Value(i)))
}

func appendOptInt64(dst []byte, num otlpwire.FieldNum, a *array.Int64, i int) []byte {
	if a.IsNull(i) {
		return dst
	}
	dst = otlpwire.AppendTag(dst, num, otlpwire.WireI64)
	return protowire.AppendFixed64(dst, uint64(a.Value(i)))
}

func logsWriter(b *Batch) (func([]byte, int) []byte, error) {
	c := newCols(b.Items, LogRecordsSchema, "log_records")
	scope := col[*array.Uint32](c, LogScopeID)
	tm := col[*array.Uint64](c, LogTimeUnixNano)
	observed := col[*array.Uint64](c, LogObservedTimeUnixNano)
	sev := col[*array.Int32](c, LogSeverityNumber)
	sevText := col[*array.String](c, LogSeverityText)
	var body anyReader
	if c.err == nil {
		var ok bool
		if body, ok = newAnyReader(c.rec.Column(LogBody)); !ok {
			c.err = fmt.Errorf("%w: log_records body", ErrSchema)
		}
	}
	attrs := attrCol(c, LogAttributes)
	dropped := col[*array.Uint32](c, LogDroppedAttributesCount)
	flags := col[*array.Uint32](c, LogFlags)
	traceID := col[*array.Binary](c, LogTraceID)
	spanID := col[*array.Binary](c, LogSpanID)
	event := col[*array.String](c, LogEventName)
	extra := col[*array.Binary](c, LogExtra)
	if c.err != nil {
		return nil, c.err
	}
	g, err := groupBy(scope, int(b.Scopes.NumRows()), "log_records")
	if err != nil {
		return nil, err
	}
	return func(dst []byte, s int) []byte {
		for _, i := range g.of(s) {
			i := int(i)
			var st int
			dst, st = openMsg(dst, otlpwire.ScopeLogsLogRecords, 2)
			dst = appendFixed64F(dst, otlpwire.LogRecordTimeUnixNano, tm.Value(i))
			dst = appendVarintF(dst, otlpwire.LogRecordSeverityNumber, i32v(sev.Value(i)))
			dst = appendStr(dst, otlpwire.LogRecordSeverityText, sevText.Value(i))
			dst = body.appendField(dst, otlpwire.LogRecordBody, i)
			dst = attrs.appendKVs(dst, otlpwire.LogRecordAttributes, i)
			dst = appendVarintF(dst, otlpwire.LogRecordDroppedAttributesCount, uint64(dropped.Value(i)))
			dst = appendFixed32F(dst, otlpwire.LogRecordFlags, flags.Value(i))
			dst = appendBin(dst, otlpwire.LogRecordTraceID, traceID.Value(i))
			dst = appendBin(dst, otlpwire.LogRecordSpanID, spanID.Value(i))
			dst = appendFixed64F(dst, otlpwire.LogRecordObservedTimeUnixNano, observed.Value(i))
			dst = appendStr(dst, otlpwire.LogRecordEventName, event.Value(i))
			dst = append(dst, extra.Value(i)...)
			dst = closeMsg(dst, st, 2)
		}
		return dst
	}, nil
}
