package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Batch is the Arrow form of one or more OTLP requests of one signal: a table
// of items (data points, log records or spans) and the tables of the
// resources, scopes and (for metrics) metrics they belong to. Items refer to
// their parents by row number (resource_id, scope_id, metric_id).
//
// A Batch owns one reference to each of its records; Release drops them.
type Batch struct {
	Signal    otlpwire.Signal
	Resources arrow.RecordBatch // ResourcesSchema
	Scopes    arrow.RecordBatch // ScopesSchema
	Metrics   arrow.RecordBatch // MetricsSchema; nil unless Signal is otlpwire.Metrics
	Items     arrow.RecordBatch // ItemsSchema(Signal)
	// Tenant is the tenant the items belong to, when the holder knows it
	// (the worker sets it from the sluice-tenant header, for rules that
	// keep state per tenant). It lives in memory only: the batch record
	// does not carry it.
	Tenant string
	// ItemAttrSets, when not nil, names each item's attribute set: items
	// with the same number have equal attributes. ReadBatch sets it when
	// the record stored the items' attributes as a table of distinct sets
	// (the writer does when at most half the items are distinct), and
	// Builder.Build when it numbered the data points' sets as it decoded
	// them and at most half are distinct (see FindItemAttrSets), so that
	// a reader can do its per-set work once per set. It says nothing
	// across batches, and is no longer true once the items are changed.
	ItemAttrSets []uint32
	// ItemAttrSetTable, when not nil, holds the items' attributes as a
	// table of distinct sets (a map column of the items' attributes type):
	// item i's attributes are its row ItemAttrSets[i], and the items'
	// attributes column is null in every row. ReadBatchSets makes it when
	// the record stored them so, and the rules engine for a batch it
	// changed (columnar.Options.AttrSetTable). Such a batch is for a
	// reader that reads attributes by set (the cardinality tracker, a
	// sink) and for WriteBatch; ToOTLP refuses it.
	ItemAttrSetTable arrow.Array
	// ItemSetIDs, when not nil, numbers each item's attribute set as the
	// Builder that decoded the batch keeps it from batch to batch: items of
	// batches of the same SetSpace (never 0) whose numbers are equal have
	// equal attributes. Build sets it whenever it numbered every data
	// point's set, even when all are distinct (live traffic, each series
	// once a batch), so that a reader can keep its per-set work from one
	// batch to the next (the cardinality tracker's hashes). The numbers stay
	// below the sets the Builder keeps (see wireSets: tens of thousands).
	// Like ItemAttrSets it is no longer true once the items are changed,
	// and like the records it is not to be read after Release.
	ItemSetIDs []uint32
	SetSpace   uint64
	// setsFound: the Builder numbered the items' sets as it decoded them,
	// and builtSets is what FindItemAttrSets would find (nil when not
	// worth it), as long as ItemAttrSets is still it.
	setsFound bool
	builtSets []uint32
	// setIDs holds ItemSetIDs for Release to give back to setIDBufs.
	setIDs *[]uint32
}

// Len is the number of items.
func (b *Batch) Len() int {
	if b == nil || b.Items == nil {
		return 0
	}
	return int(b.Items.NumRows())
}

// Release releases the records of b.
func (b *Batch) Release() {
	for _, r := range []arrow.RecordBatch{b.Resources, b.Scopes, b.Metrics, b.Items} {
		if r != nil {
			r.Release()
		}
	}
	if b.ItemAttrSetTable != nil {
		b.ItemAttrSetTable.Release()
	}
	if b.setIDs != nil {
		setIDBufs.Put(b.setIDs)
	}
	*b = Batch{Signal: b.Signal}
}

// Builder decodes OTLP requests of one signal straight into Arrow builders.
// It is not safe for concurrent use; reuse it across batches.
type Builder struct {
	sig   otlpwire.Signal
	mem   memory.Allocator
	items int

	res    resBuilder
	scopes scopeBuilder
	met    *metricBuilder
	pts    *pointBuilder
	logs   *logBuilder
	spans  *spanBuilder

	// scratch buffers, one per level so nested levels do not clobber them
	rxExtra, resExtra, sxExtra, scExtra, sxExtraMetric, itemExtra, dataExtra []byte
	resParts, scParts, bodyParts                                             [][]byte
	concat                                                                   []byte
	arena                                                                    []byte // see stable

	// strict: check the UTF-8 of attribute strings as they are read (see
	// attrTable), set while a request that failed the batched check is decoded
	// again for its error.
	strict bool

	// numbers are the points AppendNumbers gives the metrics of its
	// request, the next metric's at numbers[numberAt].
	numbers  [][]NumberPoint
	numberAt int
}

// NewBuilder returns a Builder of sig that allocates from mem (nil means
// memory.DefaultAllocator).
func NewBuilder(sig otlpwire.Signal, mem memory.Allocator) *Builder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := &Builder{sig: sig, mem: mem}
	b.init()
	return b
}

func (b *Builder) init() {
	mem := b.mem
	b.items = 0
	b.res = newResBuilder(mem, &b.strict)
	b.scopes = newScopeBuilder(mem, &b.strict)
	switch b.sig {
	case otlpwire.Metrics:
		b.met = newMetricBuilder(mem, &b.strict)
		var sets wireSets
		if b.pts != nil {
			sets = b.pts.sets // kept across a reset (forgotten on errors)
		}
		b.pts = newPointBuilder(mem, &b.strict)
		b.pts.sets = sets
		b.pts.sets.restart()
	case otlpwire.Logs:
		b.logs = newLogBuilder(mem, &b.strict)
	default:
		b.spans = newSpanBuilder(mem, &b.strict)
	}
}

// Signal is the signal of the builder.
func (b *Builder) Signal() otlpwire.Signal { return b.sig }

// Len is the number of items appended since the last Build.
func (b *Builder) Len() int { return b.items }

// NumberPoint is a data point of a gauge or a sum without attributes,
// exemplars or flags, as AppendNumbers takes it: times in Unix
// nanoseconds, Value an int64 (IsInt) or the bits of a float64.
type NumberPoint struct {
	Start, Time, Value uint64
	IsInt              bool
}

// AppendNumbers is Append of a metrics request whose metrics take their
// points, after those of their own data message, from pts: the k-th
// metric of req (in the order of the request) gets pts[k], which must be
// empty unless that metric is a gauge or a sum. It is the batch Append
// gives the request with those points in it, for a fraction of the cost:
// nothing encodes them, nothing parses them (an aggregator's output).
// len(pts) must be the number of metrics in req (nil: Append).
func (b *Builder) AppendNumbers(req []byte, pts [][]NumberPoint) (int, error) {
	if b.sig != otlpwire.Metrics {
		return 0, fmt.Errorf("AppendNumbers on a builder of %s", b.sig)
	}
	b.numbers, b.numberAt = pts, 0
	defer func() { b.numbers, b.numberAt = nil, 0 }()
	n, err := b.Append(req)
	if err == nil && b.numberAt != len(pts) {
		b.reset()
		return 0, fmt.Errorf("AppendNumbers: points for %d metrics, but the request holds %d", len(pts), b.numberAt)
	}
	return n, err
}

// Append decodes one Export{Metrics,Logs,Trace}ServiceRequest (protobuf
// encoding) and appends its items; it returns how many. body is not retained.
//
// On error nothing of body is kept, and neither is anything appended since
// the last Build: Arrow builders cannot be truncated, so the builder is
// reset. Build after each request whose loss would matter.
//
//	message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
//	message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
//	message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
func (b *Builder) Append(body []byte) (int, error) {
	before := b.items
	b.concat = b.concat[:0]
	b.numberAt = 0 // AppendNumbers: from the first metric (again when strict)
	for i := 0; i < len(body); {
		f, code := otlpwire.ReadField(body, i)
		if code != otlpwire.ReadOK {
			b.reset()
			return 0, malformed("request", f.Num)
		}
		i = f.End
		if f.Num != otlpwire.RequestResourceX || f.Type != otlpwire.WireLen {
			continue // unknown request fields are dropped (see README)
		}
		if err := b.resourceX(body[f.Val:f.End]); err != nil {
			b.reset()
			return 0, fmt.Errorf("resource %d: %w", b.res.n, err)
		}
	}
	if !b.strict && !b.attrsValid() {
		// Some attribute string is not UTF-8: decode again checking each
		// one, for the error a per-value check returns.
		b.reset()
		b.strict = true
		n, err := b.Append(body)
		b.strict = false
		return n, err
	}
	b.flush()
	b.concat = b.concat[:0]
	return b.items - before, nil
}

// stable returns a copy of scratch bytes p that stays unchanged until the
// next flush, for the column buffers; nil when p is empty.
func (b *Builder) stable(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	start := len(b.arena)
	b.arena = append(b.arena, p...)
	return b.arena[start:len(b.arena):len(b.arena)]
}

// attrsValid runs the batched UTF-8 check of the attribute columns.
func (b *Builder) attrsValid() bool {
	ok := b.res.attrs.valid()
	ok = b.scopes.attrs.valid() && ok
	switch b.sig {
	case otlpwire.Metrics:
		ok = b.met.metadata.valid() && ok
		ok = b.pts.attrs.valid() && ok
	case otlpwire.Logs:
		ok = b.logs.attrs.valid() && ok
	default:
		ok = b.spans.attrs.valid() && ok
	}
	return ok
}

// flushEvery (a power of two) is how many items are buffered at most.
const flushEvery = 512

// flush appends the buffered column values (see colbuf.go) to the Arrow
// builders. Append calls it before returning, while body is still valid.
func (b *Builder) flush() {
	b.res.attrs.flush()
	b.scopes.attrs.flush()
	switch b.sig {
	case otlpwire.Metrics:
		b.met.metadata.flush()
		b.pts.flush()
	case otlpwire.Logs:
		b.logs.flush()
	default:
		b.spans.flush()
	}
	b.arena = b.arena[:0]
}

// Build returns the batch of everything appended since the last Build and
// resets the builder. The caller owns the batch and must Release it.
func (b *Builder) Build() *Batch {
	bt := &Batch{Signal: b.sig}
	bt.Resources = newRecord(b.res.rb, b.res.attrs.zeros(), subst{ResAttributes, &b.res.attrs})
	bt.Scopes = newRecord(b.scopes.rb, b.scopes.attrs.zeros(), subst{ScopeAttributes, &b.scopes.attrs})
	switch b.sig {
	case otlpwire.Metrics:
		bt.Metrics = newRecord(b.met.rb, b.met.metadata.zeros(), subst{MetMetadata, &b.met.metadata})
		bt.Items = newRecord(b.pts.rb, NewZeros(max(b.pts.n, b.pts.attrs.values())), b.pts.columns()...)
		if bt.setIDs, bt.SetSpace = b.pts.sets.kept(b.pts.n); bt.setIDs != nil {
			bt.ItemSetIDs = *bt.setIDs
		}
		bt.builtSets, bt.setsFound = b.pts.sets.take(b.pts.n)
		bt.ItemAttrSets = bt.builtSets
	case otlpwire.Logs:
		bt.Items = newRecord(b.logs.rb, b.logs.attrs.zeros(), subst{LogAttributes, &b.logs.attrs})
	default:
		bt.Items = newRecord(b.spans.rb, b.spans.attrs.zeros(), subst{SpanAttributes, &b.spans.attrs})
	}
	b.items, b.res.n, b.scopes.n = 0, 0, 0
	if b.met != nil {
		b.met.n, b.pts.n = 0, 0
	}
	return bt
}

// Release frees the builder's memory.
func (b *Builder) Release() {
	b.res.rb.Release()
	b.res.attrs.release()
	b.scopes.rb.Release()
	b.scopes.attrs.release()
	switch b.sig {
	case otlpwire.Metrics:
		b.met.rb.Release()
		b.met.metadata.release()
		b.pts.rb.Release()
		b.pts.release()
	case otlpwire.Logs:
		b.logs.rb.Release()
		b.logs.attrs.release()
	default:
		b.spans.rb.Release()
		b.spans.attrs.release()
	}
}

// reset drops everything appended since the last Build. After an error the
// columns may differ in length, so the builders are replaced, not built.
func (b *Builder) reset() {
	if b.pts != nil {
		// The request's sets may hold strings whose check failed.
		b.pts.sets.forget()
	}
	b.Release()
	b.init()
}

// parts returns the concatenation of the occurrences of a singular message
// field; protobuf merges such occurrences exactly like their concatenation.
func (b *Builder) joined(parts [][]byte) []byte {
	if len(parts) == 1 {
		return parts[0]
	}
	// b.concat only grows during an Append: the buffered column values may
	// point into earlier joins (see colbuf.go).
	start := len(b.concat)
	for _, p := range parts {
		b.concat = append(b.concat, p...)
	}
	return b.concat[start:len(b.concat):len(b.concat)]
}

type resBuilder struct {
	rb        *array.RecordBuilder
	n         uint32
	attrs     attrTable
	dropped   *array.Uint32Builder
	schemaURL *array.StringBuilder
	resExtra  *array.BinaryBuilder
	extra     *array.BinaryBuilder
}

func newResBuilder(mem memory.Allocator, strict *bool) resBuilder {
	rb := array.NewRecordBuilder(mem, ResourcesSchema)
	return resBuilder{
		rb:        rb,
		attrs:     newAttrTable(strict, mem),
		dropped:   rb.Field(ResDroppedAttributesCount).(*array.Uint32Builder),
		schemaURL: rb.Field(ResSchemaURL).(*array.StringBuilder),
		resExtra:  rb.Field(ResResourceExtra).(*array.BinaryBuilder),
		extra:     rb.Field(ResExtra).(*array.BinaryBuilder),
	}
}

type scopeBuilder struct {
	rb         *array.RecordBuilder
	n          uint32
	resourceID *array.Uint32Builder
	name       *array.StringBuilder
	version    *array.StringBuilder
	attrs      attrTable
	dropped    *array.Uint32Builder
	schemaURL  *array.StringBuilder
	scopeExtra *array.BinaryBuilder
	extra      *array.BinaryBuilder
}

func newScopeBuilder(mem memory.Allocator, strict *bool) scopeBuilder {
	rb := array.NewRecordBuilder(mem, ScopesSchema)
	return scopeBuilder{
		rb:         rb,
		resourceID: rb.Field(ScopeResourceID).(*array.Uint32Builder),
		name:       rb.Field(ScopeName).(*array.StringBuilder),
		version:    rb.Field(ScopeVersion).(*array.StringBuilder),
		attrs:      newAttrTable(strict, mem),
		dropped:    rb.Field(ScopeDroppedAttributesCount).(*array.Uint32Builder),
		schemaURL:  rb.Field(ScopeSchemaURL).(*array.StringBuilder),
		scopeExtra: rb.Field(ScopeScopeExtra).(*array.BinaryBuilder),
		extra:      rb.Field(ScopeExtra).(*array.BinaryBuilder),
	}
}

// resourceX decodes a Resource{Metrics,Logs,Spans}. Its row is appended after
// its scopes and items, whose resource_id is known in advance.
//
//	message ResourceMetrics {
//	  Resource resource = 1;
//	  repeated ScopeMetrics scope_metrics = 2; // ScopeLogs scope_logs, ScopeSpans scope_spans
//	  string schema_url = 3;
//	}
//	message Resource {
//	  repeated KeyValue attributes = 1;
//	  uint32 dropped_attributes_count = 2;
//	}
func (b *Builder) resourceX(p []byte) error {
	rid := b.res.n
	b.res.n++
	b.rxExtra = b.rxExtra[:0]
	resParts := b.resParts[:0] // occurrences of the resource field
	var schemaURL []byte
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Resource*", f.Num)
		}
		switch {
		case f.Num == otlpwire.ResourceXResource && f.Type == otlpwire.WireLen:
			resParts = append(resParts, p[f.Val:f.End])
		case f.Num == otlpwire.ResourceXScopeX && f.Type == otlpwire.WireLen:
			if err := b.scopeX(p[f.Val:f.End], rid); err != nil {
				return fmt.Errorf("scope %d: %w", b.scopes.n-1, err)
			}
		case f.Num == otlpwire.ResourceXSchemaURL && f.Type == otlpwire.WireLen:
			q := p[f.Val:f.End]
			if err := validString(q, "Resource*", f.Num); err != nil {
				return err
			}
			schemaURL = q
		default:
			b.rxExtra = append(b.rxExtra, p[i:f.End]...)
		}
		i = f.End
	}
	b.resParts = resParts[:0]
	r := &b.res
	r.schemaURL.BinaryBuilder.Append(schemaURL)
	r.extra.Append(b.rxExtra)
	if len(resParts) == 0 {
		r.attrs.row(false)
		r.dropped.Append(0)
		r.resExtra.Append(nil)
		return nil
	}
	rp := b.joined(resParts)
	r.attrs.row(true)
	b.resExtra = b.resExtra[:0]
	var dropped uint32
	for i := 0; i < len(rp); {
		f, code := otlpwire.ReadField(rp, i)
		if code != otlpwire.ReadOK {
			return malformed("Resource", f.Num)
		}
		switch {
		case f.Num == otlpwire.ResourceAttributes && f.Type == otlpwire.WireLen:
			if err := r.attrs.appendKV(rp[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.ResourceDroppedAttributesCount && f.Type == otlpwire.WireVarint:
			dropped = uint32(f.X)
		default:
			b.resExtra = append(b.resExtra, rp[i:f.End]...)
		}
		i = f.End
	}
	r.dropped.Append(dropped)
	r.resExtra.Append(b.resExtra)
	return nil
}

// scopeX decodes a Scope{Metrics,Logs,Spans}.
//
//	message ScopeMetrics {
//	  InstrumentationScope scope = 1;
//	  repeated Metric metrics = 2; // LogRecord log_records, Span spans
//	  string schema_url = 3;
//	}
//	message InstrumentationScope {
//	  string name = 1;
//	  string version = 2;
//	  repeated KeyValue attributes = 3;
//	  uint32 dropped_attributes_count = 4;
//	}
func (b *Builder) scopeX(p []byte, rid uint32) error {
	sid := b.scopes.n
	b.scopes.n++
	var extra []byte // unknown fields, kept in b.sxExtra
	b.sxExtra = b.sxExtra[:0]
	scParts := b.scParts[:0]
	var schemaURL []byte
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Scope*", f.Num)
		}
		switch {
		case f.Num == otlpwire.ScopeXScope && f.Type == otlpwire.WireLen:
			scParts = append(scParts, p[f.Val:f.End])
		case f.Num == otlpwire.ScopeXItems && f.Type == otlpwire.WireLen:
			q := p[f.Val:f.End]
			var err error
			switch b.sig {
			case otlpwire.Metrics:
				err = b.metric(q, rid, sid)
			case otlpwire.Logs:
				err = b.logRecord(q, rid, sid)
			default:
				err = b.span(q, rid, sid)
			}
			if err != nil {
				return fmt.Errorf("item %d: %w", b.items, err)
			}
			if b.items&(flushEvery-1) == 0 {
				b.flush() // keep the buffers small (cache, GC scanning)
			}
		case f.Num == otlpwire.ScopeXSchemaURL && f.Type == otlpwire.WireLen:
			q := p[f.Val:f.End]
			if err := validString(q, "Scope*", f.Num); err != nil {
				return err
			}
			schemaURL = q
		default:
			b.sxExtra = append(b.sxExtra, p[i:f.End]...)
		}
		i = f.End
	}
	extra = b.sxExtra
	b.scParts = scParts[:0]
	s := &b.scopes
	s.resourceID.Append(rid)
	s.schemaURL.BinaryBuilder.Append(schemaURL)
	s.extra.Append(extra)
	if len(scParts) == 0 {
		s.name.Append("")
		s.version.Append("")
		s.attrs.row(false)
		s.dropped.Append(0)
		s.scopeExtra.Append(nil)
		return nil
	}
	sp := b.joined(scParts)
	s.attrs.row(true)
	b.scExtra = b.scExtra[:0]
	var name, version []byte
	var dropped uint32
	for i := 0; i < len(sp); {
		f, code := otlpwire.ReadField(sp, i)
		if code != otlpwire.ReadOK {
			return malformed("InstrumentationScope", f.Num)
		}
		switch {
		case f.Num == otlpwire.InstrumentationScopeName && f.Type == otlpwire.WireLen:
			name = sp[f.Val:f.End]
		case f.Num == otlpwire.InstrumentationScopeVersion && f.Type == otlpwire.WireLen:
			version = sp[f.Val:f.End]
		case f.Num == otlpwire.InstrumentationScopeAttributes && f.Type == otlpwire.WireLen:
			if err := s.attrs.appendKV(sp[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.InstrumentationScopeDroppedAttributesCount && f.Type == otlpwire.WireVarint:
			dropped = uint32(f.X)
		default:
			b.scExtra = append(b.scExtra, sp[i:f.End]...)
		}
		i = f.End
	}
	if err := validString(name, "InstrumentationScope", otlpwire.InstrumentationScopeName); err != nil {
		return err
	}
	if err := validString(version, "InstrumentationScope", otlpwire.InstrumentationScopeVersion); err != nil {
		return err
	}
	s.name.BinaryBuilder.Append(name)
	s.version.BinaryBuilder.Append(version)
	s.dropped.Append(dropped)
	s.scopeExtra.Append(b.scExtra)
	return nil
}
