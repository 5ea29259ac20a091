package loki

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// arrowDecoder turns processed (Arrow) log records into Loki entries by
// reading the batch's columns directly: no OTLP encoding, no
// proto.Unmarshal, no Go OTLP structs. It yields exactly what the raw-OTLP
// path (Sink.add) yields for the same log records: the same streams,
// labels, lines, structured metadata, timestamps and order.
//
// decode stages a record's entries and commit moves them into a push, so
// that a record refused halfway leaves no trace in the push (Write
// dead-letters whole records).
//
// Strings read from a batch alias its buffers, which are recycled once the
// batch is released (internal/arrowpool). Every string an entry keeps is
// therefore copied into arena (or is a constant, or a fresh string).
//
// The decoder keeps state across records; it is used by one goroutine at a
// time (Write's).
type arrowDecoder struct {
	mem    memory.Allocator // of ReadBatch
	labels []labelSpec      // the Sink's
	sev    bool             // the Sink's: a severity label

	names map[string]string // attribute key → label name (sanitize), across records
	arena arena
	slab  pairSlab

	// per record
	c       logColumns
	res     []resInfo
	scopes  []scopeInfo
	order   []int32 // items in the order of the OTLP request
	rank    []int32 // scratch of itemOrder
	count   []int32 // scratch of itemOrder
	sets    [][]pair
	staged  []staged
	next    int           // the first staged entry not yet committed
	streams []*lokiStream // commit: the stream of each label set in the push
	recTime time.Time
}

// maxNames bounds the cache of sanitised attribute keys.
const maxNames = 1 << 16

func newArrowDecoder(labels []labelSpec, sev bool, mem memory.Allocator) *arrowDecoder {
	return &arrowDecoder{mem: mem, labels: labels, sev: sev, names: map[string]string{}}
}

// resInfo is what a resource gives its entries.
type resInfo struct {
	labels []pair // from the configured resource attributes
	meta   []pair // the other resource attributes
	// The label set of the resource's entries by severity: bySev by class
	// of severity number (severityClass; [0] serves all entries when there
	// is no severity label), byText by severity text for entries without a
	// class (few distinct texts: a linear scan).
	bySev  [len(severityNames)]int32
	byText []textSet
}

type textSet struct {
	text string // aliases the batch: valid until the record is staged
	set  int32
}

// scopeInfo is what a scope gives its entries.
type scopeInfo struct {
	res  int32  // resource row
	meta []pair // scope_name, scope_version, scope attributes
	// shared is the metadata of the resource and the scope, which starts
	// the metadata of each entry (entry.shared). It is handed out to
	// entries, so it comes from the slab: never reused.
	shared []pair
}

// staged is an entry of the record being decoded, with its label set (an
// index of arrowDecoder.sets).
type staged struct {
	set int32
	entry
}

// decode stages the entries of an Arrow logs record (a processed-topic
// value); recTime is the time of entries without one, as in Sink.add.
// On error nothing is staged.
func (d *arrowDecoder) decode(value []byte, recTime time.Time) error {
	b, err := schemas.ReadBatch(value, d.mem)
	if err != nil {
		return err
	}
	err = d.stage(b, recTime)
	// Nothing staged refers to the batch's buffers (see arrowDecoder); the
	// columns, which do, are dropped with it.
	d.c = logColumns{}
	b.Release()
	if err != nil {
		d.discard()
	}
	return err
}

// stage decodes b into d.staged.
func (d *arrowDecoder) stage(b *schemas.Batch, recTime time.Time) error {
	d.discard()
	d.sets = d.sets[:0]
	d.recTime = recTime
	if err := d.c.read(b); err != nil {
		return err
	}
	if err := d.resources(); err != nil {
		return err
	}
	if err := d.scopeInfos(); err != nil {
		return err
	}
	if err := d.itemOrder(); err != nil {
		return err
	}
	d.staged = slices.Grow(d.staged, len(d.order))
	for _, i := range d.order {
		if err := d.item(int(i)); err != nil {
			return err
		}
	}
	return nil
}

// discard empties the stage. (Its memory keeps the entries of the last
// record, and so their arena blocks, alive until overwritten: one
// record's worth.)
func (d *arrowDecoder) discard() { d.staged, d.next = d.staged[:0], 0 }

// commit adds the entries staged by the last decode, from the first not
// yet added, to p in order, until p holds limit bytes (0: no limit), and
// reports whether entries remain for a next push. The stage is emptied
// once every entry is added.
func (d *arrowDecoder) commit(p *push, limit int) (more bool) {
	// The stream in p of each label set, resolved at the set's first
	// entry: new streams come in the order of their entries. Several sets
	// may share a stream (the same labels from two resources): the push's
	// map finds it.
	d.streams = resize(d.streams, len(d.sets))
	clear(d.streams)
	defer clear(d.streams)
	for ; d.next < len(d.staged); d.next++ {
		if limit > 0 && p.bytes >= limit && p.entries > 0 {
			return true
		}
		e := &d.staged[d.next]
		st := d.streams[e.set]
		if st == nil {
			st = p.stream(d.sets[e.set])
			d.streams[e.set] = st
		}
		p.append(st, e.entry)
	}
	d.discard()
	return false
}

// resources computes the labels and metadata of every resource, as Sink.add
// does per ResourceLogs. Every value is rendered, even that of a label
// attribute that loses to an earlier one of the same name: an undecodable
// nested value refused the record in the OTLP path's proto.Unmarshal.
func (d *arrowDecoder) resources() error {
	c := &d.c
	d.res = resize(d.res, int(c.nres))
	for r := range d.res {
		ri := &d.res[r]
		ri.labels, ri.meta = ri.labels[:0], ri.meta[:0]
		for k := range ri.bySev {
			ri.bySev[k] = -1
		}
		clear(ri.byText)
		ri.byText = ri.byText[:0]
		if c.resAttrs.m.IsNull(r) { // no resource
			continue
		}
		start, end := c.resAttrs.m.ValueOffsets(r)
		for j := int(start); j < int(end); j++ {
			key := c.resAttrs.key.Value(j)
			v, err := c.resAttrs.val.value(j, &d.arena)
			if err != nil {
				return err
			}
			if i := slices.IndexFunc(d.labels, func(l labelSpec) bool { return l.attr == key }); i >= 0 {
				name := d.labels[i].name
				if v != "" && !slices.ContainsFunc(ri.labels, func(p pair) bool { return p.name == name }) {
					ri.labels = append(ri.labels, pair{name, v})
				}
				continue
			}
			ri.meta = append(ri.meta, pair{d.name(key), v})
		}
	}
	return nil
}

// scopeInfos computes the metadata of every scope, as Sink.add does per
// ScopeLogs.
func (d *arrowDecoder) scopeInfos() error {
	c := &d.c
	d.scopes = resize(d.scopes, int(c.nscopes))
	for s := range d.scopes {
		si := &d.scopes[s]
		si.meta, si.shared = si.meta[:0], nil
		rid := c.scopeRes.Value(s)
		if int(rid) >= len(d.res) {
			return fmt.Errorf("%w: scope %d refers to resource %d of %d", schemas.ErrSchema, s, rid, len(d.res))
		}
		si.res = int32(rid)
		if c.scopeAttrs.m.IsNull(s) { // no scope
			continue
		}
		if v := c.scopeName.Value(s); v != "" {
			si.meta = append(si.meta, pair{"scope_name", d.arena.copy(v)})
		}
		if v := c.scopeVersion.Value(s); v != "" {
			si.meta = append(si.meta, pair{"scope_version", d.arena.copy(v)})
		}
		start, end := c.scopeAttrs.m.ValueOffsets(s)
		for j := int(start); j < int(end); j++ {
			v, err := c.scopeAttrs.val.value(j, &d.arena)
			if err != nil {
				return err
			}
			si.meta = append(si.meta, pair{d.name(c.scopeAttrs.key.Value(j)), v})
		}
	}
	for s := range d.scopes {
		si := &d.scopes[s]
		rmeta := d.res[si.res].meta
		si.shared = append(d.slab.take(len(rmeta)+len(si.meta)), rmeta...)
		si.shared = append(si.shared, si.meta...)
	}
	return nil
}

// itemOrder sets d.order to the item rows in the order of the OTLP request
// ToOTLP writes, which the OTLP path read: by resource, then scope, then
// row. The order decides which stream appears first in a push and the
// order of entries of equal times. Batches usually are in that order
// already, but a rule may reorder tables; two counting sorts (as ToOTLP's)
// cost little either way.
func (d *arrowDecoder) itemOrder() error {
	c := &d.c
	nres, nscopes, n := len(d.res), len(d.scopes), int(c.nitems)
	// rank: the position of each scope when scopes are ordered by resource.
	d.count = resize(d.count, max(nres, nscopes)+1)
	cnt := d.count[:nres+1]
	clear(cnt)
	for _, si := range d.scopes {
		cnt[si.res+1]++
	}
	for r := 1; r <= nres; r++ {
		cnt[r] += cnt[r-1]
	}
	d.rank = resize(d.rank, nscopes)
	for s, si := range d.scopes {
		d.rank[s] = cnt[si.res]
		cnt[si.res]++
	}
	// Items by the rank of their scope, in row order within a scope.
	cnt = d.count[:nscopes+1]
	clear(cnt)
	for i := range n {
		sid := c.scopeID.Value(i)
		if int(sid) >= nscopes {
			return fmt.Errorf("%w: log record %d refers to scope %d of %d", schemas.ErrSchema, i, sid, nscopes)
		}
		cnt[d.rank[sid]+1]++
	}
	for s := 1; s <= nscopes; s++ {
		cnt[s] += cnt[s-1]
	}
	d.order = resize(d.order, n)
	for i := range n {
		k := d.rank[c.scopeID.Value(i)]
		d.order[cnt[k]] = int32(i)
		cnt[k]++
	}
	return nil
}

// item stages log record i.
func (d *arrowDecoder) item(i int) error {
	c := &d.c
	sc := &d.scopes[c.scopeID.Value(i)] // checked by itemOrder
	set := d.set(&d.res[sc.res], c.sevNum.Value(i), c.sevText.Value(i))

	start, end := c.attrs.m.ValueOffsets(i)
	traceID, spanID := c.traceID.Value(i), c.spanID.Value(i)
	n := int(end - start)
	if len(traceID) > 0 {
		n++
	}
	if len(spanID) > 0 {
		n++
	}
	meta := d.slab.take(n)
	for j := int(start); j < int(end); j++ {
		v, err := c.attrs.val.value(j, &d.arena)
		if err != nil {
			return err
		}
		meta = append(meta, pair{d.name(c.attrs.key.Value(j)), v})
	}
	if len(traceID) > 0 {
		meta = append(meta, pair{"trace_id", d.arena.hex(traceID)})
	}
	if len(spanID) > 0 {
		meta = append(meta, pair{"span_id", d.arena.hex(spanID)})
	}
	// line(v) is valueString(v) for every v (both give a string as it is
	// and "" for no value), so the body is rendered by value too.
	line, err := c.body.value(i, &d.arena)
	if err != nil {
		return err
	}
	d.staged = append(d.staged, staged{set: set, entry: entry{ts: d.time(i), line: line, shared: sc.shared, meta: meta}})
	return nil
}

// time is the time of log record i: time_unix_nano, else
// observed_time_unix_nano, else the record's time (now if it has none).
func (d *arrowDecoder) time(i int) int64 {
	ts := int64(d.c.time.Value(i))
	if ts == 0 {
		ts = int64(d.c.observed.Value(i))
	}
	if ts == 0 {
		if d.recTime.IsZero() {
			d.recTime = time.Now()
		}
		ts = d.recTime.UnixNano()
	}
	return ts
}

// set returns the label set of an entry of resource r with severity
// number num and text text, adding it on first use. The severity label is
// computed once per resource and severity, not per entry.
func (d *arrowDecoder) set(r *resInfo, num int32, text string) int32 {
	class := 0
	if d.sev {
		class = severityClass(num)
	}
	if class > 0 || !d.sev {
		if r.bySev[class] < 0 {
			r.bySev[class] = d.newSet(r.labels, severityNames[class])
		}
		return r.bySev[class]
	}
	for _, t := range r.byText {
		if t.text == text {
			return t.set
		}
	}
	set := d.newSet(r.labels, d.arena.copy(strings.ToLower(text)))
	r.byText = append(r.byText, textSet{text, set})
	return set
}

// newSet adds the label set base + severity (if not "") and returns its id.
func (d *arrowDecoder) newSet(base []pair, severity string) int32 {
	id := len(d.sets)
	d.sets = resize(d.sets, id+1)
	labels := append(d.sets[id][:0], base...)
	if severity != "" {
		labels = append(labels, pair{SeverityLabel, severity})
	}
	d.sets[id] = labels
	return int32(id)
}

// name is the label name of an attribute key (sanitize), cached: the same
// few keys come with every entry.
func (d *arrowDecoder) name(key string) string {
	if n, ok := d.names[key]; ok {
		return n
	}
	n := sanitize(key)
	if len(d.names) >= maxNames {
		clear(d.names)
	}
	d.names[strings.Clone(key)] = n // key aliases the batch
	return n
}

// resize returns s with length n. The elements up to the old capacity are
// kept, so that their own slices are reused.
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)
}

// logColumns are the typed columns of a logs batch that the sink reads.
type logColumns struct {
	nres, nscopes, nitems int64

	resAttrs attrCol

	scopeRes     *array.Uint32
	scopeName    *array.String
	scopeVersion *array.String
	scopeAttrs   attrCol

	scopeID         *array.Uint32
	time, observed  *array.Uint64
	sevNum          *array.Int32
	sevText         *array.String
	body            anyCol
	attrs           attrCol
	traceID, spanID *array.Binary
}

// read sets c to the columns of b and checks b as the OTLP path's ToOTLP
// and proto.Unmarshal did, so that the records they refused are refused.
func (c *logColumns) read(b *schemas.Batch) error {
	if b.Signal != otlpwire.Logs || b.Resources == nil || b.Scopes == nil || b.Items == nil {
		return fmt.Errorf("%w: not a logs batch", schemas.ErrSchema)
	}
	res, scopes, items := b.Resources, b.Scopes, b.Items
	if !res.Schema().Equal(schemas.ResourcesSchema) || !scopes.Schema().Equal(schemas.ScopesSchema) ||
		!items.Schema().Equal(schemas.LogRecordsSchema) {
		return fmt.Errorf("%w: unexpected table schema", schemas.ErrSchema)
	}
	// The schemas are as expected, so the type assertions cannot fail.
	*c = logColumns{
		nres:         res.NumRows(),
		nscopes:      scopes.NumRows(),
		nitems:       items.NumRows(),
		resAttrs:     newAttrCol(res.Column(schemas.ResAttributes)),
		scopeRes:     scopes.Column(schemas.ScopeResourceID).(*array.Uint32),
		scopeName:    scopes.Column(schemas.ScopeName).(*array.String),
		scopeVersion: scopes.Column(schemas.ScopeVersion).(*array.String),
		scopeAttrs:   newAttrCol(scopes.Column(schemas.ScopeAttributes)),
		scopeID:      items.Column(schemas.LogScopeID).(*array.Uint32),
		time:         items.Column(schemas.LogTimeUnixNano).(*array.Uint64),
		observed:     items.Column(schemas.LogObservedTimeUnixNano).(*array.Uint64),
		sevNum:       items.Column(schemas.LogSeverityNumber).(*array.Int32),
		sevText:      items.Column(schemas.LogSeverityText).(*array.String),
		body:         newAnyCol(items.Column(schemas.LogBody)),
		attrs:        newAttrCol(items.Column(schemas.LogAttributes)),
		traceID:      items.Column(schemas.LogTraceID).(*array.Binary),
		spanID:       items.Column(schemas.LogSpanID).(*array.Binary),
	}
	err := checkUTF8(
		res.Column(schemas.ResSchemaURL).(*array.String), c.resAttrs.key, c.resAttrs.val.Str,
		c.scopeName, c.scopeVersion, scopes.Column(schemas.ScopeSchemaURL).(*array.String), c.scopeAttrs.key, c.scopeAttrs.val.Str,
		c.sevText, c.body.Str, c.attrs.key, c.attrs.val.Str, items.Column(schemas.LogEventName).(*array.String),
	)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		col *array.Binary
		msg proto.Message
	}{
		{res.Column(schemas.ResResourceExtra).(*array.Binary), &resource.Resource{}},
		{res.Column(schemas.ResExtra).(*array.Binary), &logspb.ResourceLogs{}},
		{scopes.Column(schemas.ScopeScopeExtra).(*array.Binary), &common.InstrumentationScope{}},
		{scopes.Column(schemas.ScopeExtra).(*array.Binary), &logspb.ScopeLogs{}},
		{items.Column(schemas.LogExtra).(*array.Binary), &logspb.LogRecord{}},
	} {
		if err := checkExtra(x.col, x.msg); err != nil {
			return err
		}
	}
	return nil
}

// checkUTF8 returns an error when a value of cols is not valid UTF-8:
// proto.Unmarshal refuses such strings, so the OTLP path refused the
// record. Each column is first checked for ASCII as a whole, one fast pass
// in the usual case.
func checkUTF8(cols ...*array.String) error {
	for _, a := range cols {
		if otlpwire.IsASCII(a.ValueBytes()) {
			continue
		}
		for i := range a.Len() {
			if !utf8.ValidString(a.Value(i)) {
				return fmt.Errorf("%w: invalid UTF-8 in a string column", schemas.ErrMalformed)
			}
		}
	}
	return nil
}

// checkExtra parses the values of an extra column (fields the layout does
// not break out: normally none) as messages like msg, as the OTLP path's
// proto.Unmarshal did, so that a record it refused is refused here too.
func checkExtra(col *array.Binary, msg proto.Message) error {
	if len(col.ValueBytes()) == 0 {
		return nil
	}
	for i := range col.Len() {
		if x := col.Value(i); len(x) > 0 {
			proto.Reset(msg)
			if err := proto.Unmarshal(x, msg); err != nil {
				return err
			}
		}
	}
	return nil
}

// anyCol reads an AnyValue struct column: attribute values, log bodies.
type anyCol struct{ schemas.AnyColumns }

// newAnyCol returns the children of a, of the checked layout (see
// logColumns.read).
func newAnyCol(a arrow.Array) anyCol {
	c, err := schemas.NewAnyColumns(a)
	if err != nil {
		panic(err) // the schema was checked
	}
	return anyCol{c}
}

// value renders value j as valueString renders the OTLP value: strings as
// they are, numbers and booleans in Go syntax, bytes in base64, arrays and
// maps as JSON, "" for none. The result never aliases the batch: it is
// copied into a, a constant or a fresh string.
func (c *anyCol) value(j int, a *arena) (string, error) {
	switch c.Type.Value(j) {
	case schemas.ValueString:
		return a.copy(c.Str.Value(j)), nil
	case schemas.ValueBool:
		return strconv.FormatBool(c.Bool.Value(j)), nil
	case schemas.ValueInt:
		return a.int(c.Int.Value(j)), nil
	case schemas.ValueDouble:
		return a.float(c.Double.Value(j)), nil
	case schemas.ValueBytes:
		return a.base64(c.Bytes.Value(j)), nil
	case schemas.ValueArray, schemas.ValueKVList, schemas.ValueRaw:
		v, err := c.nested(j)
		if err != nil {
			return "", err
		}
		return valueString(v), nil
	}
	return "", nil // ValueNone, ValueEmpty
}

// nested decodes value j, whose bytes hold an ArrayValue, a KeyValueList
// or (ValueRaw) a whole AnyValue, into the OTLP value the OTLP path decoded
// (rare: such values go through proto.Unmarshal and valueString).
// proto.Unmarshal copies what it keeps, so v does not alias the batch.
func (c *anyCol) nested(j int) (*common.AnyValue, error) {
	b := c.Bytes.Value(j)
	v := &common.AnyValue{}
	var err error
	switch c.Type.Value(j) {
	case schemas.ValueArray:
		x := &common.ArrayValue{}
		err = proto.Unmarshal(b, x)
		v.Value = &common.AnyValue_ArrayValue{ArrayValue: x}
	case schemas.ValueKVList:
		x := &common.KeyValueList{}
		err = proto.Unmarshal(b, x)
		v.Value = &common.AnyValue_KvlistValue{KvlistValue: x}
	default:
		err = proto.Unmarshal(b, v)
	}
	return v, err
}

// attrCol reads an attributes column: map<string, AnyValue>.
type attrCol struct {
	m   *array.Map
	key *array.String
	val anyCol
}

func newAttrCol(a arrow.Array) attrCol {
	m := a.(*array.Map)
	return attrCol{m: m, key: m.Keys().(*array.String), val: newAnyCol(m.Items())}
}

// arenaChunk is the size of an arena block: the strings of a few hundred
// entries.
const arenaChunk = 64 << 10

// arena copies strings into large blocks, so that the label values, lines
// and metadata of thousands of entries take a few allocations rather than
// one each. Bytes handed out are never written again (a block is replaced,
// not grown, when full); a block lives as long as a string of it is
// referenced, by a push not yet sent, like any Go memory.
type arena struct{ buf []byte }

// room makes sure that n more bytes fit in the block.
func (a *arena) room(n int) {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(n, arenaChunk))
	}
}

// since returns the bytes appended from offset start on.
func (a *arena) since(start int) string {
	if len(a.buf) == start {
		return ""
	}
	return unsafe.String(&a.buf[start], len(a.buf)-start)
}

// copy returns a copy of s.
func (a *arena) copy(s string) string {
	a.room(len(s))
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	return a.since(start)
}

// int returns v in decimal, as strconv.FormatInt.
func (a *arena) int(v int64) string {
	a.room(20)
	start := len(a.buf)
	a.buf = strconv.AppendInt(a.buf, v, 10)
	return a.since(start)
}

// float returns v as strconv.FormatFloat(v, 'g', -1, 64).
func (a *arena) float(v float64) string {
	a.room(24)
	start := len(a.buf)
	a.buf = strconv.AppendFloat(a.buf, v, 'g', -1, 64)
	return a.since(start)
}

// base64 returns b in standard base64.
func (a *arena) base64(b []byte) string {
	a.room(base64.StdEncoding.EncodedLen(len(b)))
	start := len(a.buf)
	a.buf = base64.StdEncoding.AppendEncode(a.buf, b)
	return a.since(start)
}

// hex returns b in lower-case hex.
func (a *arena) hex(b []byte) string {
	a.room(2 * len(b))
	start := len(a.buf)
	a.buf = hex.AppendEncode(a.buf, b)
	return a.since(start)
}

// slabPairs is the size of a pairSlab block.
const slabPairs = 4096

// pairSlab hands out the metadata slices of entries from large blocks:
// one allocation for thousands of entries rather than one each. Like the
// arena's, blocks are replaced, never grown or reused.
type pairSlab struct{ buf []pair }

// take returns an empty slice of capacity n.
func (s *pairSlab) take(n int) []pair {
	if cap(s.buf)-len(s.buf) < n {
		s.buf = make([]pair, 0, max(n, slabPairs))
	}
	start := len(s.buf)
	s.buf = s.buf[:start+n]
	return s.buf[start : start : start+n]
}
