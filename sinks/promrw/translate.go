package promrw

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/otlptranslator"

	"github.com/sluice-dev/sluice/schemas"
)

// OTLP aggregation temporality values.
const (
	temporalityDelta      = 1
	temporalityCumulative = 2
)

// Reasons a data point is dropped (the reason label of
// sluice_sink_dropped_points_total).
const (
	dropDelta       = "delta_temporality"
	dropTemporality = "unspecified_temporality"
	dropScale       = "unsupported_scale"
	dropNoValue     = "no_value"
)

// label is one label of a series being built. prio decides collisions of
// sanitised names: the higher wins; equal ones are joined with ";".
type label struct {
	name, value string
	prio        uint8
}

const (
	prioScope    = 0 // promoted resource attributes, scope labels
	prioPoint    = 1 // data point attributes
	prioIdentity = 2 // job, instance
)

type metricInfo struct {
	name        string // the Prometheus base name ("" until computed)
	nameID      uint64 // its id in translator.ids (with the series cache)
	kind        uint8
	temporality int32
	monotonic   bool
	meta        int32 // its metadata in collector.metas (v2), -1 until made
}

// translator turns Arrow metric batches into encoded TimeSeries, handed to
// a collector. It keeps caches across batches and is used by one goroutine.
type translator struct {
	cfg     *Config
	promote map[string]bool
	namer   otlptranslator.MetricNamer
	labeler otlptranslator.LabelNamer

	keyCache  map[string]string // attribute key -> label name ("" = invalid)
	nameCache map[nameKey]string

	out     *collector
	dropped map[string]int
	// v2: the requests may be remote write 2.0 ones, which carry start
	// times and metadata: the translator hands them to the collector.
	v2        bool
	unitCache map[string]string // OTLP unit -> Prometheus unit (metadata)
	delta     *deltaState       // nil unless delta: convert

	lastName lastName     // the metric name made last
	cache    *seriesCache // nil: every point's labels are made again
	keyHash  func([]byte) uint64
	ids      idTable // of the cache keys' bases and names
	baseID   uint64  // the id of tenant and t.base
	ckey     []byte  // the cache key of the point in hand
	skey     []byte  // the interning key of an attribute set
	lbl      []byte  // its encoded labels, on a miss
	// The batch's attribute sets (schemas.Batch.ItemAttrSets; nil: none)
	// and the interned id of each, 0 until its first point needs it: a
	// point's cache key is then its base, name and set id, not its
	// attributes in full.
	sets   []uint32
	setKey []uint64
	setIDs idTable
	// With memoOn, per base, name and interned set, the series cache slot
	// of its series: points of a series seen before, in this batch or an
	// earlier one, skip making, hashing and comparing the key. Valid while
	// the cache has evicted nothing since (memoEvicted).
	memo        setMemo
	memoOn      bool
	memoEvicted uint64
	memoTries   int // lookups in the memo this batch
	memoHits    int
	predHits    int // of memoHits, found as the series that followed
	memoSkip    int // batches to go without the memo
	// prev + 1 is the slot of the series of the batch's previous point
	// (0: none yet), whose next predicts this point's (seriesEntry.next).
	prev uint32

	// per batch
	metrics   []metricInfo
	resLabels []label // per resource: job, instance, promoted attributes
	resSpan   []int32 // resource r's are resLabels[resSpan[r]:resSpan[r+1]]
	resArena  []byte  // strings of resLabels made here
	resTime   []int64 // per resource: the newest point time (ms), -1 if no point
	baseKey   [2]int64
	base      []label
	pt        []label
	arena     []byte
	ser       []byte
	hist      []byte
	counts    []uint64
	negCounts []uint64
}

type lastName struct {
	otlp []byte // the OTLP name, then the unit
	typ  otlptranslator.MetricType
	name string // the Prometheus name
	id   uint64
}

type nameKey struct {
	name, unit string
	typ        otlptranslator.MetricType
}

func newTranslator(cfg *Config, out *collector) *translator {
	t := &translator{
		cfg:       cfg,
		promote:   map[string]bool{},
		namer:     otlptranslator.MetricNamer{WithMetricSuffixes: true, UTF8Allowed: false},
		keyCache:  map[string]string{},
		nameCache: map[nameKey]string{},
		out:       out,
		dropped:   map[string]int{},
		v2:        cfg.Protocol != protoV1,
		unitCache: map[string]string{},
		setIDs:    idTable{max: maxSetIDs},
	}
	for _, a := range cfg.PromoteResourceAttributes {
		t.promote[a] = true
	}
	if cfg.Delta == deltaConvert {
		t.delta = newDeltaState()
	}
	if cfg.SeriesCacheBytes > 0 {
		t.cache = newSeriesCache(int(cfg.SeriesCacheBytes))
		t.keyHash = xxhash.Sum64
	}
	return t
}

// labelName sanitises an attribute key, through a cache ("" when the key
// cannot be a label name).
func (t *translator) labelName(key string) string {
	if n, ok := t.keyCache[key]; ok {
		return n
	}
	n, err := t.labeler.Build(key)
	if err != nil {
		n = ""
	}
	if len(t.keyCache) > 100_000 {
		clear(t.keyCache)
	}
	// A valid key comes back as it is: a string of the batch's buffers,
	// which the batch's release recycles. The cache keeps its own copy.
	n = strings.Clone(n)
	t.keyCache[strings.Clone(key)] = n
	return n
}

func (t *translator) metricName(name, unit string, typ otlptranslator.MetricType) string {
	k := nameKey{name, unit, typ}
	if n, ok := t.nameCache[k]; ok {
		return n
	}
	n, err := t.namer.Build(otlptranslator.Metric{Name: name, Unit: unit, Type: typ})
	if err != nil || n == "" {
		n = "" // the point is dropped below
	}
	if len(t.nameCache) > 100_000 {
		clear(t.nameCache)
	}
	n = strings.Clone(n) // may be name itself, in the batch's buffers (see labelName)
	t.nameCache[nameKey{strings.Clone(name), strings.Clone(unit), typ}] = n
	return n
}

// attrs reads an attributes map column.
type attrs struct {
	m    *array.Map
	keys *array.String
	schemas.AnyColumns
}

func newAttrs(col any) (attrs, error) {
	m, ok := col.(*array.Map)
	if !ok {
		return attrs{}, fmt.Errorf("%w: attributes column is %T", schemas.ErrSchema, col)
	}
	k, ok := m.Keys().(*array.String)
	if !ok {
		return attrs{}, fmt.Errorf("%w: attributes map layout", schemas.ErrSchema)
	}
	v, err := schemas.NewAnyColumns(m.Items())
	return attrs{m: m, keys: k, AnyColumns: v}, err
}

// value returns entry j as a label value; strings made here live in
// *arena (only appended to until the caller resets it).
func (a *attrs) value(j int, arena *[]byte) string {
	switch a.Type.Value(j) {
	case schemas.ValueString:
		return a.Str.Value(j)
	case schemas.ValueBool:
		if a.Bool.Value(j) {
			return "true"
		}
		return "false"
	case schemas.ValueInt:
		return arenaString(arena, func(b []byte) []byte { return strconv.AppendInt(b, a.Int.Value(j), 10) })
	case schemas.ValueDouble:
		return arenaString(arena, func(b []byte) []byte { return appendFloatValue(b, a.Double.Value(j)) })
	case schemas.ValueBytes:
		return base64.StdEncoding.EncodeToString(a.Bytes.Value(j))
	case schemas.ValueArray:
		return complexJSON(a.Bytes.Value(j), 5)
	case schemas.ValueKVList:
		return complexJSON(a.Bytes.Value(j), 6)
	case schemas.ValueRaw:
		return complexJSON(a.Bytes.Value(j), 0)
	}
	return ""
}

func appendFloatValue(b []byte, v float64) []byte {
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func arenaString(arena *[]byte, f func([]byte) []byte) string {
	start := len(*arena)
	*arena = f(*arena)
	s := (*arena)[start:]
	if len(s) == 0 {
		return ""
	}
	return unsafe.String(&s[0], len(s))
}

// translate appends the series of batch b (record rec) to the collector.
func (t *translator) translate(b *schemas.Batch, rec int32) error {
	if b.Metrics == nil || b.Items == nil || b.Resources == nil || b.Scopes == nil {
		return fmt.Errorf("%w: not a metrics batch", schemas.ErrSchema)
	}
	c, err := newColumns(b)
	if err != nil {
		return err
	}
	t.out.rec = rec
	if t.memoOn && t.memoTries >= 64 && t.memoHits*8 < t.memoTries {
		// The last batch's series were mostly new to the memo (the cache
		// evicting all the time, series not seen again): it cost a lookup
		// and an insert per point for little. Leave it off for a while.
		t.memoSkip = memoSkipBatches
	}
	t.sets, t.memoOn, t.prev = nil, false, 0
	if t.cache != nil && len(b.ItemAttrSets) == int(b.Items.NumRows()) {
		t.sets = b.ItemAttrSets
		clear(t.setKey)
		if t.memoSkip > 0 {
			t.memoSkip--
		} else {
			t.memoOn = true
			t.memoTries, t.memoHits, t.predHits = 0, 0, 0
		}
	}
	nm := int(b.Metrics.NumRows())
	t.metrics = t.metrics[:0]
	for m := range nm {
		t.metrics = append(t.metrics, metricInfo{kind: c.mType.Value(m), temporality: c.mTemp.Value(m), monotonic: c.mMono.Value(m), meta: -1})
	}
	nr := int(b.Resources.NumRows())
	t.resLabels, t.resArena = t.resLabels[:0], t.resArena[:0]
	t.resSpan = append(t.resSpan[:0], 0)
	t.resTime = t.resTime[:0]
	for r := range nr {
		t.resLabels = t.resourceLabels(t.resLabels, &c, r)
		t.resSpan = append(t.resSpan, int32(len(t.resLabels)))
		t.resTime = append(t.resTime, -1)
	}
	ns := int(b.Scopes.NumRows())
	t.baseKey = [2]int64{-1, -1}
	n := int(b.Items.NumRows())
	for i := range n {
		rid, sid, mid := int(c.rid.Value(i)), int(c.sid.Value(i)), int(c.mid.Value(i))
		if rid >= nr || sid >= ns || mid >= nm {
			return fmt.Errorf("%w: data point %d refers to a missing row", schemas.ErrSchema, i)
		}
		if t.baseKey != [2]int64{int64(rid), int64(sid)} {
			t.baseKey = [2]int64{int64(rid), int64(sid)}
			t.scopeBase(&c, rid, sid)
		}
		ts := int64(c.time.Value(i) / 1e6)
		if t.point(&c, i, mid, ts) && ts > t.resTime[rid] {
			t.resTime[rid] = ts
		}
	}
	if !t.cfg.DisableTargetInfo {
		for r := range nr {
			if t.resTime[r] >= 0 {
				t.targetInfo(&c, r, t.resTime[r])
			}
		}
	}
	return nil
}

// columns are the typed columns of a batch.
type columns struct {
	resAttrs   attrs
	resValid   func(int) bool
	scName     *array.String
	scVersion  *array.String
	scAttrs    attrs
	mName      *array.String
	mDesc      *array.String
	mUnit      *array.String
	mType      *array.Uint8
	mTemp      *array.Int32
	mMono      *array.Boolean
	rid, sid   *array.Uint32
	mid        *array.Uint32
	time       *array.Uint64
	start      *array.Uint64
	ptAttrs    attrs
	ptRows     []uint32 // with a batch read by set: a point's row in ptAttrs
	flags      *array.Uint32
	intValue   *array.Int64
	dblValue   *array.Float64
	count      *array.Uint64
	sum        *array.Float64
	buckets    *array.List
	bucketsV   *array.Uint64
	bounds     *array.List
	boundsV    *array.Float64
	scale      *array.Int32
	zeroCount  *array.Uint64
	zeroThresh *array.Float64
	posOffset  *array.Int32
	posCounts  *array.List
	posCountsV *array.Uint64
	negOffset  *array.Int32
	negCounts  *array.List
	negCountsV *array.Uint64
	quantiles  *array.List
	qQuantile  *array.Float64
	qValue     *array.Float64
}

// ptRow is the row of data point i's attributes in c.ptAttrs.
func (c *columns) ptRow(i int) int {
	if c.ptRows != nil {
		return int(c.ptRows[i])
	}
	return i
}

func newColumns(b *schemas.Batch) (c columns, err error) {
	defer func() {
		if r := recover(); r != nil { // a failed type assertion: another layout
			err = fmt.Errorf("%w: %v", schemas.ErrSchema, r)
		}
	}()
	if !b.Items.Schema().Equal(schemas.DataPointsSchema) || !b.Metrics.Schema().Equal(schemas.MetricsSchema) ||
		!b.Scopes.Schema().Equal(schemas.ScopesSchema) || !b.Resources.Schema().Equal(schemas.ResourcesSchema) {
		return c, fmt.Errorf("%w: unexpected table schema", schemas.ErrSchema)
	}
	var errs [3]error
	ra := b.Resources.Column(schemas.ResAttributes)
	c.resAttrs, errs[0] = newAttrs(ra)
	c.resValid = ra.IsValid
	c.scName = b.Scopes.Column(schemas.ScopeName).(*array.String)
	c.scVersion = b.Scopes.Column(schemas.ScopeVersion).(*array.String)
	c.scAttrs, errs[1] = newAttrs(b.Scopes.Column(schemas.ScopeAttributes))
	c.mName = b.Metrics.Column(schemas.MetName).(*array.String)
	c.mDesc = b.Metrics.Column(schemas.MetDescription).(*array.String)
	c.mUnit = b.Metrics.Column(schemas.MetUnit).(*array.String)
	c.mType = b.Metrics.Column(schemas.MetType).(*array.Uint8)
	c.mTemp = b.Metrics.Column(schemas.MetAggregationTemporality).(*array.Int32)
	c.mMono = b.Metrics.Column(schemas.MetIsMonotonic).(*array.Boolean)
	it := b.Items
	c.rid = it.Column(schemas.PtResourceID).(*array.Uint32)
	c.sid = it.Column(schemas.PtScopeID).(*array.Uint32)
	c.mid = it.Column(schemas.PtMetricID).(*array.Uint32)
	c.time = it.Column(schemas.PtTimeUnixNano).(*array.Uint64)
	c.start = it.Column(schemas.PtStartTimeUnixNano).(*array.Uint64)
	if b.ItemAttrSetTable != nil {
		// Read by set (schemas.ReadBatchSets): the points' attributes are
		// the rows of the table of distinct sets.
		c.ptAttrs, errs[2] = newAttrs(b.ItemAttrSetTable)
		c.ptRows = b.ItemAttrSets
	} else {
		c.ptAttrs, errs[2] = newAttrs(it.Column(schemas.PtAttributes))
	}
	c.flags = it.Column(schemas.PtFlags).(*array.Uint32)
	c.intValue = it.Column(schemas.PtIntValue).(*array.Int64)
	c.dblValue = it.Column(schemas.PtDoubleValue).(*array.Float64)
	c.count = it.Column(schemas.PtCount).(*array.Uint64)
	c.sum = it.Column(schemas.PtSum).(*array.Float64)
	c.buckets = it.Column(schemas.PtBucketCounts).(*array.List)
	c.bucketsV = c.buckets.ListValues().(*array.Uint64)
	c.bounds = it.Column(schemas.PtExplicitBounds).(*array.List)
	c.boundsV = c.bounds.ListValues().(*array.Float64)
	c.scale = it.Column(schemas.PtScale).(*array.Int32)
	c.zeroCount = it.Column(schemas.PtZeroCount).(*array.Uint64)
	c.zeroThresh = it.Column(schemas.PtZeroThreshold).(*array.Float64)
	c.posOffset = it.Column(schemas.PtPositiveOffset).(*array.Int32)
	c.posCounts = it.Column(schemas.PtPositiveBucketCounts).(*array.List)
	c.posCountsV = c.posCounts.ListValues().(*array.Uint64)
	c.negOffset = it.Column(schemas.PtNegativeOffset).(*array.Int32)
	c.negCounts = it.Column(schemas.PtNegativeBucketCounts).(*array.List)
	c.negCountsV = c.negCounts.ListValues().(*array.Uint64)
	c.quantiles = it.Column(schemas.PtQuantileValues).(*array.List)
	q := c.quantiles.ListValues().(*array.Struct)
	c.qQuantile = q.Field(0).(*array.Float64)
	c.qValue = q.Field(1).(*array.Float64)
	return c, errors.Join(errs[:]...)
}

// Resource attributes that make job and instance.
const (
	attrServiceName       = "service.name"
	attrServiceNamespace  = "service.namespace"
	attrServiceInstanceID = "service.instance.id"
)

// resourceLabels appends job, instance and the promoted attributes of
// resource r to out. Their strings are the batch's, or made in
// t.resArena: they live as long as the batch.
func (t *translator) resourceLabels(out []label, c *columns, r int) []label {
	if !c.resValid(r) {
		return out
	}
	var name, ns, inst string
	start, end := c.resAttrs.m.ValueOffsets(r)
	for j := int(start); j < int(end); j++ {
		k := c.resAttrs.keys.Value(j)
		switch k {
		case attrServiceName:
			name = c.resAttrs.value(j, &t.resArena)
		case attrServiceNamespace:
			ns = c.resAttrs.value(j, &t.resArena)
		case attrServiceInstanceID:
			inst = c.resAttrs.value(j, &t.resArena)
		}
		if t.promote[k] {
			if ln := t.labelName(k); ln != "" {
				if v := c.resAttrs.value(j, &t.resArena); v != "" {
					out = append(out, label{ln, v, prioScope})
				}
			}
		}
	}
	if name != "" {
		if ns != "" {
			name = arenaString(&t.resArena, func(b []byte) []byte { return append(append(append(b, ns...), '/'), name...) })
		}
		out = append(out, label{"job", name, prioIdentity})
	}
	if inst != "" {
		out = append(out, label{"instance", inst, prioIdentity})
	}
	return out
}

// scopeBase sets t.base to the resource labels plus the scope labels.
func (t *translator) scopeBase(c *columns, rid, sid int) {
	t.base = append(t.base[:0], t.resLabels[t.resSpan[rid]:t.resSpan[rid+1]]...)
	if !t.cfg.DisableScopeLabels {
		if v := c.scName.Value(sid); v != "" {
			t.base = append(t.base, label{otlptranslator.ScopeNameLabelKey, v, prioScope})
		}
		if v := c.scVersion.Value(sid); v != "" {
			t.base = append(t.base, label{otlptranslator.ScopeVersionLabelKey, v, prioScope})
		}
		if c.scAttrs.m.IsValid(sid) {
			start, end := c.scAttrs.m.ValueOffsets(sid)
			for j := int(start); j < int(end); j++ {
				k := c.scAttrs.keys.Value(j)
				if k == "name" || k == "version" { // the spec leaves these out: they would clash
					continue
				}
				if ln := t.labelName("otel_scope_" + k); ln != "" {
					if v := c.scAttrs.value(j, &t.arena); v != "" {
						t.base = append(t.base, label{strings.Clone(ln), strings.Clone(v), prioScope})
					}
				}
			}
		}
	}
	t.base = sortLabels(t.base, nil)
	if t.cache != nil {
		t.ckey = appendBaseKey(t.ckey[:0], t.out.cur.tenant, t.base)
		t.baseID = t.ids.id(t.ckey)
	}
}

// point emits the series of data point i; it reports whether anything
// was emitted.
func (t *translator) point(c *columns, i, mid int, ts int64) bool {
	m := &t.metrics[mid]
	var typ otlptranslator.MetricType
	switch m.kind {
	case schemas.MetricGauge:
		typ = otlptranslator.MetricTypeGauge
	case schemas.MetricSum:
		typ = otlptranslator.MetricTypeNonMonotonicCounter
		if m.monotonic {
			typ = otlptranslator.MetricTypeMonotonicCounter
		}
	case schemas.MetricHistogram:
		typ = otlptranslator.MetricTypeHistogram
	case schemas.MetricExponentialHistogram:
		typ = otlptranslator.MetricTypeExponentialHistogram
	case schemas.MetricSummary:
		typ = otlptranslator.MetricTypeSummary
	default:
		return false
	}
	switch m.kind {
	case schemas.MetricSum, schemas.MetricHistogram, schemas.MetricExponentialHistogram:
		switch m.temporality {
		case temporalityCumulative:
		case temporalityDelta:
			if t.delta == nil || m.kind == schemas.MetricExponentialHistogram {
				t.dropped[dropDelta]++
				return false
			}
		default:
			t.dropped[dropTemporality]++
			return false
		}
	}
	if m.name == "" {
		// Metrics of one name often follow each other (one metric per
		// series, as some SDKs write them): the last one's name is reused.
		name, unit := c.mName.Value(mid), c.mUnit.Value(mid)
		if l := &t.lastName; l.name != "" && l.typ == typ && len(l.otlp) == len(name)+len(unit) &&
			string(l.otlp[:len(name)]) == name && string(l.otlp[len(name):]) == unit {
			m.name, m.nameID = l.name, l.id
		} else {
			m.name = t.metricName(name, unit, typ)
			if m.name == "" {
				t.dropped["invalid_name"]++
				return false
			}
			if t.cache != nil {
				m.nameID = t.ids.id(append(append(t.ckey[:0], idName), m.name...))
			}
			l.otlp = append(append(l.otlp[:0], name...), unit...)
			l.typ, l.name, l.id = typ, m.name, m.nameID
		}
	}

	// Histograms and summaries write several series of the point's labels
	// with another name and an extra label: they need the labels as a list.
	list := m.kind == schemas.MetricHistogram || m.kind == schemas.MetricSummary ||
		m.kind == schemas.MetricExponentialHistogram && t.cfg.ExponentialHistograms == expBuckets
	ser := t.pointLabels(c, i, m, list)
	stale := c.flags.Value(i)&1 != 0 // DATA_POINT_FLAGS_NO_RECORDED_VALUE

	var acc *accum // the running total of a delta point (delta: convert)
	if m.temporality == temporalityDelta && (m.kind == schemas.MetricSum || m.kind == schemas.MetricHistogram) {
		if acc = t.delta.get(t.out.cur.tenant, string(ser.labels)); acc == nil {
			t.dropped["delta_series_limit"]++
			return false
		}
	}
	t.out.st, t.out.meta = 0, -1
	if t.v2 {
		t.v2Extras(c, i, mid, m, acc == nil && !stale)
	}

	switch m.kind {
	case schemas.MetricGauge, schemas.MetricSum:
		var v float64
		switch {
		case c.intValue.IsValid(i):
			v = float64(c.intValue.Value(i))
		case c.dblValue.IsValid(i):
			v = c.dblValue.Value(i)
		default:
			t.dropped[dropNoValue]++
			return false
		}
		if acc != nil && !stale {
			acc.value += v
			v = acc.value
		}
		t.emit(&ser, v, ts, stale)
	case schemas.MetricHistogram:
		if acc != nil {
			t.deltaHistogram(c, i, acc, m.name, ts, stale)
			break
		}
		t.histogram(c, i, m.name, ts, stale)
	case schemas.MetricExponentialHistogram:
		if !t.expHistogram(c, i, m.name, &ser, ts, stale) {
			return false
		}
	case schemas.MetricSummary:
		st := t.out.st
		t.out.st = 0 // quantiles are gauges: the start time is that of _sum and _count
		qs, qe := c.quantiles.ValueOffsets(i)
		for q := int(qs); q < int(qe); q++ {
			t.sample(m.name, "quantile", t.fmtFloat(c.qQuantile.Value(q)), c.qValue.Value(q), ts, stale)
		}
		t.out.st = st
		t.sample(m.name+"_sum", "", "", c.sum.Value(i), ts, stale)
		t.sample(m.name+"_count", "", "", float64(c.count.Value(i)), ts, stale)
	}
	return true
}

// v2Extras hands the collector what remote write 2.0 sends besides
// samples for data point i of metric m: the metadata of its series (type,
// help from the description, unit) and, with withStart, the start time
// of a cumulative point (counters, histograms, summaries; not gauges, nor
// the running totals of delta: convert, whose start is not the point's).
func (t *translator) v2Extras(c *columns, i, mid int, m *metricInfo, withStart bool) {
	if m.meta < 0 {
		var typ uint8
		switch m.kind {
		case schemas.MetricGauge:
			typ = metaGauge
		case schemas.MetricSum:
			typ = metaGauge
			if m.monotonic {
				typ = metaCounter
			}
		case schemas.MetricHistogram, schemas.MetricExponentialHistogram:
			typ = metaHistogram
		case schemas.MetricSummary:
			typ = metaSummary
		}
		m.meta = t.out.metaID(seriesMeta{typ: typ, help: c.mDesc.Value(mid), unit: t.unitName(c.mUnit.Value(mid))})
	}
	t.out.meta = m.meta
	if !withStart || m.temporality != temporalityCumulative && m.kind != schemas.MetricSummary ||
		m.kind == schemas.MetricSum && !m.monotonic || !c.start.IsValid(i) {
		return
	}
	if start, now := c.start.Value(i), c.time.Value(i); start > 0 && start <= now {
		t.out.st = int64(start / 1e6)
	}
}

// unitName is the Prometheus unit of an OTLP unit ("s" → "seconds"), for
// the metadata.
func (t *translator) unitName(unit string) string {
	if u, ok := t.unitCache[unit]; ok {
		return u
	}
	u := (&otlptranslator.UnitNamer{}).Build(unit)
	if len(t.unitCache) > 10_000 {
		clear(t.unitCache)
	}
	u = strings.Clone(u) // may be unit itself (see labelName)
	t.unitCache[strings.Clone(unit)] = u
	return u
}

// pointSeries is the series of a data point: its encoded labels (with
// __name__), their hash, and its series cache entry's memo of its series in
// the collector (nil when not cached). stable: labels are the entry's and
// stay as they are.
type pointSeries struct {
	labels []byte
	lhash  uint64
	stable bool
	memo   *seriesMemo
}

// pointLabels returns the series of data point i with __name__ m.name;
// with list set, t.pt holds its labels too (but __name__). From the series
// cache when it has them. What it returns is valid until the next call.
func (t *translator) pointLabels(c *columns, i int, m *metricInfo, list bool) pointSeries {
	t.arena = t.arena[:0]
	var hash uint64
	var mk memoKey
	if t.memoOn {
		if t.memoEvicted != t.cache.evicted {
			t.memo.reset()
			t.memoEvicted = t.cache.evicted
		}
		mk = memoKey{t.baseID, m.nameID, t.setID(c, i)}
		t.memoTries++
		if t.prev > 0 {
			// The previous point's series again, or the one that followed
			// it last time: their entries say whether they are this point's.
			p := &t.cache.slots[t.prev-1]
			n := t.prev
			if p.mkey != mk {
				n = p.next
			}
			if n > 0 && t.cache.slots[n-1].mkey == mk {
				t.memoHits++
				t.predHits++
				t.prev = n
				return t.cached(t.cache.hit(n-1), list)
			}
		}
		if s, ok := t.memo.get(mk); ok {
			t.memoHits++
			t.follow(s)
			return t.cached(t.cache.hit(s), list)
		}
	}
	if t.cache != nil {
		if t.sets != nil {
			t.ckey = appendSetKey(t.ckey[:0], t.baseID, m.nameID, t.setID(c, i))
		} else {
			t.ckey = appendPointKey(t.ckey[:0], &c.ptAttrs, c.ptRow(i), t.baseID, m.nameID)
		}
		hash = t.keyHash(t.ckey)
		if e := t.cache.get(hash, t.ckey); e != nil {
			if t.memoOn {
				s := t.cache.slot(e)
				t.memo.put(mk, s)
				e.mkey = mk
				t.follow(s)
			}
			return t.cached(e, list)
		}
	}
	// The point's labels: attributes, then the base, sorted and merged.
	t.pt = t.pt[:0]
	start, end := c.ptAttrs.m.ValueOffsets(c.ptRow(i))
	for j := int(start); j < int(end); j++ {
		ln := t.labelName(c.ptAttrs.keys.Value(j))
		if ln == "" {
			continue
		}
		if v := c.ptAttrs.value(j, &t.arena); v != "" {
			t.pt = append(t.pt, label{ln, v, prioPoint})
		}
	}
	t.pt = append(t.pt, t.base...)
	t.pt = sortLabels(t.pt, &t.arena)
	t.lbl = t.encodeLabels(t.lbl[:0], m.name, "", "")
	lhash := labelsHash(t.lbl)
	if t.cache != nil {
		if e := t.cache.put(t.out.cur.tenant, hash, t.ckey, t.lbl, lhash); e != nil {
			if t.memoOn {
				s := t.cache.slot(e)
				if t.memoEvicted == t.cache.evicted {
					t.memo.put(mk, s)
				}
				e.mkey = mk
				t.follow(s)
			}
			return pointSeries{e.labels(), lhash, true, &e.memo}
		}
	}
	return pointSeries{t.lbl, lhash, false, nil}
}

// follow records that the series in cache slot s followed the previous
// point's, and makes it the previous.
func (t *translator) follow(s uint32) {
	if t.prev > 0 {
		t.cache.slots[t.prev-1].next = s + 1
	}
	t.prev = s + 1
}

// memoSkipBatches is how many batches go without the memo after one where
// it found fewer than an eighth of the points' series. A batch is judged
// whole, and the next ones are expected to look like it.
const memoSkipBatches = 15

// setID returns the interned id of the attribute set of data point i,
// interning it at the set's first point in the batch.
func (t *translator) setID(c *columns, i int) uint64 {
	set := int(t.sets[i])
	if set >= len(t.setKey) {
		t.setKey = append(t.setKey, make([]uint64, set+1-len(t.setKey))...)
	}
	if id := t.setKey[set]; id != 0 {
		return id
	}
	t.skey = appendAttrsKey(t.skey[:0], &c.ptAttrs, c.ptRow(i))
	id := t.setIDs.id(t.skey)
	t.setKey[set] = id
	return id
}

// cached is the series of cache entry e; with list set, t.pt holds its
// labels too (but __name__).
func (t *translator) cached(e *seriesEntry, list bool) pointSeries {
	labels := e.labels()
	if list {
		t.pt = parseLabels(t.pt[:0], labels)
	}
	return pointSeries{labels, e.lhash, true, &e.memo}
}

// emit adds one sample of series ser.
func (t *translator) emit(ser *pointSeries, v float64, ts int64, stale bool) {
	if stale {
		v = staleNaN
	}
	t.ser = appendSample(t.ser[:0], v, ts)
	t.out.addLabeled(ser.labels, ser.lhash, ser.stable, ser.memo, t.ser)
}

func (t *translator) fmtFloat(v float64) string {
	return arenaString(&t.arena, func(b []byte) []byte { return strconv.AppendFloat(b, v, 'f', -1, 64) })
}

func (t *translator) histogram(c *columns, i int, name string, ts int64, stale bool) {
	bs, be := c.buckets.ValueOffsets(i)
	ls, le := c.bounds.ValueOffsets(i)
	bucket := name + "_bucket"
	var cum uint64
	for k := 0; k < int(le-ls) && k < int(be-bs); k++ {
		cum += c.bucketsV.Value(int(bs) + k)
		t.sample(bucket, "le", t.fmtFloat(c.boundsV.Value(int(ls)+k)), float64(cum), ts, stale)
	}
	t.sample(bucket, "le", "+Inf", float64(c.count.Value(i)), ts, stale)
	if c.sum.IsValid(i) {
		t.sample(name+"_sum", "", "", c.sum.Value(i), ts, stale)
	}
	t.sample(name+"_count", "", "", float64(c.count.Value(i)), ts, stale)
}

// deltaHistogram adds delta histogram point i to acc and emits the
// cumulative histogram. Bounds that change start the series over.
func (t *translator) deltaHistogram(c *columns, i int, acc *accum, name string, ts int64, stale bool) {
	bs, be := c.buckets.ValueOffsets(i)
	ls, le := c.bounds.ValueOffsets(i)
	bounds := c.boundsV.Float64Values()[ls:le]
	counts := c.bucketsV.Uint64Values()[bs:be]
	if !stale {
		if !acc.sameBounds(bounds) {
			acc.bounds = append(acc.bounds[:0], bounds...)
			acc.buckets = make([]uint64, len(bounds)+1)
			acc.count, acc.sum = 0, 0
		}
		for k := 0; k < len(counts) && k < len(acc.buckets); k++ {
			acc.buckets[k] += counts[k]
		}
		acc.count += c.count.Value(i)
		if c.sum.IsValid(i) {
			acc.sum += c.sum.Value(i)
		}
	}
	bucket := name + "_bucket"
	var cum uint64
	for k := range acc.bounds {
		cum += acc.buckets[k]
		t.sample(bucket, "le", t.fmtFloat(acc.bounds[k]), float64(cum), ts, stale)
	}
	t.sample(bucket, "le", "+Inf", float64(acc.count), ts, stale)
	t.sample(name+"_sum", "", "", acc.sum, ts, stale)
	t.sample(name+"_count", "", "", float64(acc.count), ts, stale)
}

// expHistogram emits a native histogram, or classic buckets when so
// configured.
func (t *translator) expHistogram(c *columns, i int, name string, ser *pointSeries, ts int64, stale bool) bool {
	scale := c.scale.Value(i)
	if scale < -4 {
		t.dropped[dropScale]++
		return false
	}
	ps, pe := c.posCounts.ValueOffsets(i)
	ns, ne := c.negCounts.ValueOffsets(i)
	pos := c.posCountsV.Uint64Values()[ps:pe]
	neg := c.negCountsV.Uint64Values()[ns:ne]
	posOff, negOff := c.posOffset.Value(i), c.negOffset.Value(i)
	if !c.posOffset.IsValid(i) {
		pos = nil
	}
	if !c.negOffset.IsValid(i) {
		neg = nil
	}
	if scale > 8 { // Prometheus' finest schema is 8: merge buckets
		shift := scale - 8
		scale = 8
		t.counts, posOff = downscale(t.counts[:0], pos, posOff, shift)
		t.negCounts, negOff = downscale(t.negCounts[:0], neg, negOff, shift)
		pos, neg = t.counts, t.negCounts
	}
	var sum float64
	if c.sum.IsValid(i) {
		sum = c.sum.Value(i)
	}
	count := c.count.Value(i)
	if t.cfg.ExponentialHistograms == expBuckets {
		t.expAsClassic(name, scale, pos, posOff, neg, negOff, c.zeroCount.Value(i), c.zeroThresh.Value(i), count, sum, c.sum.IsValid(i), ts, stale)
		return true
	}
	h := nativeHist{
		count: count, zeroCount: c.zeroCount.Value(i), sum: sum, zeroThresh: c.zeroThresh.Value(i), schema: scale,
		// OTLP bucket k is (base^k, base^(k+1)], Prometheus bucket k is (base^(k-1), base^k].
		posOffset: posOff + 1, negOffset: negOff + 1, posCounts: pos, negCounts: neg, tsMs: ts,
	}
	if stale {
		// A stale native histogram is a float sample with the stale NaN
		// (what Prometheus itself writes).
		t.emit(ser, staleNaN, ts, true)
		return true
	}
	t.ser, t.hist = appendHistogram(t.ser[:0], t.hist, &h)
	t.out.addLabeled(ser.labels, ser.lhash, ser.stable, ser.memo, t.ser)
	return true
}

// downscale merges the buckets of counts (first index off) by 2^shift.
func downscale(dst, counts []uint64, off, shift int32) ([]uint64, int32) {
	if len(counts) == 0 {
		return dst, 0
	}
	newOff := off >> shift
	for k, v := range counts {
		idx := int(((off + int32(k)) >> shift) - newOff)
		for len(dst) <= idx {
			dst = append(dst, 0)
		}
		dst[idx] += v
	}
	return dst, newOff
}

// expAsClassic writes an exponential histogram as classic cumulative
// buckets: the negative buckets (most negative first), the zero bucket,
// the positive buckets, +Inf.
func (t *translator) expAsClassic(name string, scale int32, pos []uint64, posOff int32, neg []uint64, negOff int32,
	zeroCount uint64, zeroThresh float64, count uint64, sum float64, hasSum bool, ts int64, stale bool) {
	bucket := name + "_bucket"
	bound := func(k int32) float64 { return math.Exp2(math.Ldexp(float64(k), -int(scale))) }
	g := func(v float64) string {
		return arenaString(&t.arena, func(b []byte) []byte { return strconv.AppendFloat(b, v, 'g', -1, 64) })
	}
	var cum uint64
	for k := len(neg) - 1; k >= 0; k-- {
		cum += neg[k]
		t.sample(bucket, "le", g(-bound(negOff+int32(k))), float64(cum), ts, stale)
	}
	cum += zeroCount
	t.sample(bucket, "le", g(zeroThresh), float64(cum), ts, stale)
	for k, v := range pos {
		cum += v
		t.sample(bucket, "le", g(bound(posOff+int32(k)+1)), float64(cum), ts, stale)
	}
	t.sample(bucket, "le", "+Inf", float64(count), ts, stale)
	if hasSum {
		t.sample(name+"_sum", "", "", sum, ts, stale)
	}
	t.sample(name+"_count", "", "", float64(count), ts, stale)
}

// sample emits one float series: t.pt plus __name__ and an optional extra
// label (le, quantile), which override point labels of the same name.
func (t *translator) sample(name, extraName, extraValue string, v float64, ts int64, stale bool) {
	if stale {
		v = staleNaN
	}
	t.ser = t.encodeLabels(t.ser[:0], name, extraName, extraValue)
	labelsEnd := len(t.ser)
	t.ser = appendSample(t.ser, v, ts)
	t.out.add(t.ser, labelsEnd)
}

// encodeLabels appends the labels of t.pt merged with __name__ and the
// extra label, in name order.
func (t *translator) encodeLabels(dst []byte, name, extraName, extraValue string) []byte {
	extras := [2]label{{name: "__name__", value: name}, {name: extraName, value: extraValue}}
	ne := 1
	if extraName != "" {
		ne = 2
		if extraName < "__name__" {
			extras[0], extras[1] = extras[1], extras[0]
		}
	}
	e := 0
	for _, l := range t.pt {
		overridden := false
		for e < ne && extras[e].name <= l.name {
			dst = appendLabel(dst, extras[e].name, extras[e].value)
			overridden = overridden || extras[e].name == l.name
			e++
		}
		if !overridden {
			dst = appendLabel(dst, l.name, l.value)
		}
	}
	for ; e < ne; e++ {
		dst = appendLabel(dst, extras[e].name, extras[e].value)
	}
	return dst
}

// targetInfo emits target_info{job, instance, <other resource attributes>} 1
// for resource r, when it has attributes besides those of job and instance.
func (t *translator) targetInfo(c *columns, r int, ts int64) {
	if !c.resValid(r) {
		return
	}
	t.arena = t.arena[:0]
	t.pt = t.pt[:0]
	other := false
	start, end := c.resAttrs.m.ValueOffsets(r)
	for j := int(start); j < int(end); j++ {
		k := c.resAttrs.keys.Value(j)
		if k == attrServiceName || k == attrServiceNamespace || k == attrServiceInstanceID {
			continue
		}
		ln := t.labelName(k)
		if ln == "" {
			continue
		}
		if v := c.resAttrs.value(j, &t.arena); v != "" {
			t.pt = append(t.pt, label{ln, v, prioPoint})
			other = true
		}
	}
	if !other {
		return
	}
	for _, l := range t.resLabels[t.resSpan[r]:t.resSpan[r+1]] {
		if l.prio == prioIdentity {
			t.pt = append(t.pt, l)
		}
	}
	t.pt = sortLabels(t.pt, &t.arena)
	t.out.st, t.out.meta = 0, -1
	if t.v2 {
		t.out.meta = t.out.metaID(targetInfoMeta)
	}
	t.sample(otlptranslator.TargetInfoMetricName, "", "", 1, ts, false)
}

// targetInfoMeta is the metadata of target_info, as Prometheus' own OTLP
// translation writes it.
var targetInfoMeta = seriesMeta{typ: metaGauge, help: "Target metadata"}

// sortLabels sorts ls by name (higher prio first among equals) and merges
// equal names: the higher prio wins, equal prios are joined with ";". Joined
// values live in *arena; with a nil arena they are allocated.
func sortLabels(ls []label, arena *[]byte) []label {
	for i := 1; i < len(ls); i++ { // insertion sort: a handful of labels
		for j := i; j > 0 && less(&ls[j], &ls[j-1]); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
	out := ls[:0]
	for i := range ls {
		if n := len(out); n > 0 && out[n-1].name == ls[i].name {
			if out[n-1].prio == ls[i].prio {
				a, b := out[n-1].value, ls[i].value
				if arena != nil {
					out[n-1].value = arenaString(arena, func(d []byte) []byte { return append(append(append(d, a...), ';'), b...) })
				} else {
					out[n-1].value = a + ";" + b
				}
			}
			continue
		}
		out = append(out, ls[i])
	}
	return out
}

func less(a, b *label) bool {
	if a.name != b.name {
		return a.name < b.name
	}
	return a.prio > b.prio
}
