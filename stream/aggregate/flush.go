package aggregate

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"google.golang.org/protobuf/encoding/protowire"
)

// Output is the merged points of one tenant: a metrics batch the caller
// releases.
type Output struct {
	Tenant string
	Batch  *schemas.Batch
	Points int
}

// FlushBuffers are what Flush builds its output with: the encoded points
// by tenant and header, in the order the series are visited, and the
// builder of the output batches. They grow to the largest part of a Flush
// (flushChunk points) and are kept; Aggregators that never Flush at the
// same time can share them (Config.FlushBuffers).
type FlushBuffers struct {
	tenants []tenantOut
	byID    map[uint32]int
	b       *schemas.Builder
	req     []byte
	nums    [][]schemas.NumberPoint // the groups' number points, for the builder
	points  int                     // in tenants
	// last is the group the previous point went to (consecutive series
	// mostly share their header), valid while lastOK.
	lastTenant, lastHdr uint32
	lastTi, lastGi      int
	lastOK              bool
	// By set (Config.BySet): the tables of the output's attribute sets,
	// the distinct sets of a batch and their numbers, and each series'
	// set in it (local[si], valid while stamp[si] == gen).
	setTables    *schemas.SetTableBuilder
	setAttrs     []string
	setOf        map[string]uint32
	stamp, local []uint32
	gen          uint32
}

type tenantOut struct {
	tenant uint32
	groups []group
	byHdr  map[uint32]int
	points int
}

type group struct {
	hdr uint32
	pts []byte // data point fields (field 1 of the data message)
	// nums are the number points by set, which the builder takes as they
	// are (schemas.Builder.AppendNumbers), after those of pts.
	nums   []schemas.NumberPoint
	series []uint32 // by set: the series of each point, whose attributes pts leaves out
}

func (o *FlushBuffers) group(tenant, hdr uint32) *group {
	if o.lastOK && tenant == o.lastTenant && hdr == o.lastHdr {
		t := &o.tenants[o.lastTi]
		t.points++
		o.points++
		return &t.groups[o.lastGi]
	}
	if o.byID == nil {
		o.byID = map[uint32]int{}
	}
	ti, ok := o.byID[tenant]
	if !ok {
		// The entries past the length are those of earlier Flushes: their
		// maps and buffers are reused.
		ti = len(o.tenants)
		o.byID[tenant] = ti
		if ti < cap(o.tenants) {
			o.tenants = o.tenants[:ti+1]
			t := &o.tenants[ti]
			t.tenant, t.groups, t.points = tenant, t.groups[:0], 0
			clear(t.byHdr)
		} else {
			o.tenants = append(o.tenants, tenantOut{tenant: tenant, byHdr: map[uint32]int{}})
		}
	}
	t := &o.tenants[ti]
	t.points++
	o.points++
	gi, ok := t.byHdr[hdr]
	if !ok {
		gi = len(t.groups)
		t.byHdr[hdr] = gi
		if gi < cap(t.groups) {
			t.groups = t.groups[:gi+1]
			g := &t.groups[gi]
			g.hdr, g.pts, g.nums, g.series = hdr, g.pts[:0], g.nums[:0], g.series[:0]
		} else {
			t.groups = append(t.groups, group{hdr: hdr})
		}
	}
	o.lastTenant, o.lastHdr, o.lastTi, o.lastGi, o.lastOK = tenant, hdr, ti, gi, true
	return &t.groups[gi]
}

// reset empties o for the next part, keeping its buffers.
func (o *FlushBuffers) reset() {
	o.tenants = o.tenants[:0]
	o.points = 0
	o.lastOK = false
	clear(o.byID)
}

// watermark advances the watermark of an idle partition: once it has not
// moved for the longest grace of the specs seen, it follows the wall clock.
func (a *Aggregator) advanceIdle(nowN int64) {
	if a.wmWall == 0 || a.maxGrace == 0 {
		return // no point yet, or no spec: nothing to close
	}
	if idle := nowN - a.wmWall - a.maxGrace; idle > 0 {
		a.wm += idle
		a.wmWall += idle
	}
}

// Pending reports whether the last Flush left intervals open (false before
// the first): an Aggregator without them has nothing for the clock to
// close.
func (a *Aggregator) Pending() bool { return a.pending }

// flushChunk is about the most points of one Output: a Flush that closes more
// (a backlog read at full speed) builds them in parts, so the buffers it
// builds with stay small.
const flushChunk = 1 << 16

// Flush closes the intervals whose end + grace <= the watermark (every
// open interval when force) and returns their points: per tenant, batches
// of about 65,536 points (a part ends after the series that reaches it),
// in the order of the tenants' first output point within each part.
func (a *Aggregator) Flush(now time.Time, force bool) ([]Output, error) {
	var res []Output
	err := a.FlushTo(now, force, func(o Output) error {
		res = append(res, o)
		return nil
	})
	if err != nil {
		for _, r := range res {
			r.Batch.Release()
		}
		return nil, err
	}
	return res, nil
}

// FlushTo is Flush that hands each part to emit as soon as it is built, so
// that a caller who writes it out and releases it holds one part at a
// time. emit owns the batch, whatever it returns. An error of emit ends
// the Flush with it; the
// intervals closed so far are gone from the state (as they are once
// Flush returns), so the caller must not checkpoint after an error.
func (a *Aggregator) FlushTo(now time.Time, force bool, emit func(Output) error) error {
	var err error
	flushPart := func() {
		var part []Output
		part, err = a.build()
		for _, o := range part {
			if err == nil {
				err = emit(o) // it owns the batch, error or not
			} else {
				o.Batch.Release()
			}
		}
	}
	a.refreshSources(now.UnixNano()) // sources fallen silent stop holding it
	a.advanceIdle(now.UnixNano())
	freed, freedDists := len(a.extFree), len(a.distFree)
	closed := a.closed[:0]
	a.pending = false
	for si := range a.series {
		s := &a.series[si]
		if s.flags&sAlive == 0 || len(s.open) == 0 {
			continue
		}
		se := &a.specs[s.spec]
		n := 0
		for n < len(s.open) && (force || (s.open[n].k+1)*se.iv+se.grace <= a.wm) {
			n++
		}
		if n > 0 {
			closed = append(closed, closedRun{series: uint32(si), n: int32(n)})
		}
		a.pending = a.pending || n < len(s.open)
	}
	// The closed intervals go out a round at a time: every series' oldest,
	// then every series' next, and so on, as the points came (a backlog's
	// step after step): the interval entries are read in the order they
	// were taken (see lowFirst), and the series of a metric come in the
	// same order step after step (the output's builder copies the
	// attributes of consecutive series at once). A series' intervals go
	// out in order.
	for len(closed) > 0 && err == nil {
		live := closed[:0]
		for k, c := range closed {
			s := &a.series[c.series]
			iv := &s.open[c.done]
			a.emit(c.series, s, &a.specs[s.spec], iv)
			if iv.x != 0 {
				a.freeExt(iv.x)
				iv.x = 0
			}
			c.done++
			if c.done < c.n {
				live = append(live, c)
			} else {
				s.open = s.open[:copy(s.open, s.open[c.done:])]
			}
			if a.out.points >= flushChunk {
				if flushPart(); err != nil {
					live = append(live, closed[k+1:]...)
					break
				}
			}
		}
		closed = live
	}
	// After an error, what went out is gone (see above).
	for _, c := range closed {
		s := &a.series[c.series]
		s.open = s.open[:copy(s.open, s.open[c.done:])]
	}
	a.closed = closed[:0]
	a.freeMark = lowFirst(a.extFree[freed:], a.freeMark)
	a.freeMark = lowFirst(a.distFree[freedDists:], a.freeMark)
	if err != nil {
		return err
	}
	if flushPart(); err != nil { // before the sweep: it may free the labels of series just emitted
		return err
	}
	if a.wm-a.lastSweep >= int64(a.cfg.Stale)/8 {
		a.sweep()
		a.lastSweep = a.wm
	}
	return nil
}

// closedRun is a series with n closed intervals, done of them emitted.
type closedRun struct {
	series  uint32
	n, done int32
}

// lowFirst orders free, the indexes a flush freed at the end of a free
// list (taken from its end), from high to low, so that they are taken
// again from the lowest up. A flush frees the entries of closed intervals
// in the order it writes them, wherever in Aggregator.ext they lie; taken
// again in order, the entries of the next intervals, which are taken as
// the points come, lie in the order the next flush reads them, and
// neighbour each other in memory: the flush and the adds read
// them a cache line at a time rather than with a miss per entry (about
// 30% of a backlog's merging, BenchmarkK8sBacklog). The indexes are put
// in order through a bitmap (mark, returned for reuse) over their span,
// or sorted when that span is sparse.
func lowFirst(free []uint32, mark []uint64) []uint64 {
	if len(free) < 2 {
		return mark
	}
	lo, hi := free[0], free[0]
	for _, x := range free {
		lo, hi = min(lo, x), max(hi, x)
	}
	words := int(hi-lo)/64 + 1
	if words > 4*len(free) {
		slices.SortFunc(free, func(x, y uint32) int { return cmp.Compare(y, x) })
		return mark
	}
	if cap(mark) < words {
		mark = make([]uint64, words)
	}
	mark = mark[:words]
	clear(mark)
	for _, x := range free {
		d := x - lo
		mark[d/64] |= 1 << (d % 64)
	}
	k := 0
	for w := words - 1; w >= 0; w-- {
		for m := mark[w]; m != 0; {
			b := 63 - bits.LeadingZeros64(m)
			free[k] = lo + uint32(w*64+b)
			k++
			m &^= 1 << b
		}
	}
	return mark
}

// emit writes the output point of s's closed interval iv.
func (a *Aggregator) emit(si uint32, s *series, se *specEntry, iv *ival) {
	h := &a.hdrs[s.hdr]
	cls := classOf(h.kind, h.temp, h.mono)
	if cls == clsGauge && a.ext[iv.x].n == 0 {
		return // only from a corrupt snapshot: every gauge interval has an entry
	}
	g := a.out.group(s.tenant, s.hdr)
	s.flags |= sEmitted
	attrs := s.attrs
	if a.cfg.BySet {
		attrs = "" // in the batch's table of sets (build)
		g.series = append(g.series, si)
	}
	begin, end := uint64(iv.k*se.iv), uint64((iv.k+1)*se.iv)
	switch cls {
	case clsCumSum:
		switch {
		case s.flags&sDouble == 0 && !iv.isDouble():
			s.tot = uint64(int64(s.tot) + int64(iv.v))
		default:
			s.tot = math.Float64bits(asFloat(s.tot, s.flags&sDouble == 0) + asFloat(iv.v, !iv.isDouble()))
			s.flags |= sDouble
		}
		a.number(g, attrs, s.start, end, s.tot, s.flags&sDouble == 0)
	case clsDelta:
		a.number(g, attrs, begin, end, iv.v, !iv.isDouble())
	case clsGauge:
		a.gents = a.appendGents(&a.ext[iv.x], a.gents[:0])
		v, isInt := gaugeValue(se.Gauge, a.gents)
		var start uint64
		if h.kind == schemas.MetricSum {
			start = begin
			if h.temp != temporalityDelta {
				start = s.start
			}
		}
		a.number(g, attrs, start, end, v, isInt)
	case clsCumDist:
		s.h.tot.add(&a.dists[a.ext[iv.x].d], s.flags&sHasTotal == 0)
		s.flags |= sHasTotal
		g.pts = appendDist(g.pts, h.kind, attrs, s.start, end, &s.h.tot, s.h.bounds)
	case clsDeltaDist:
		var bounds []float64
		if s.h != nil {
			bounds = s.h.bounds
		}
		g.pts = appendDist(g.pts, h.kind, attrs, begin, end, &a.dists[a.ext[iv.x].d], bounds)
	}
}

// gaugeValue combines the latest values of the inputs of an interval.
func gaugeValue(f GaugeFunc, g []gent) (uint64, bool) {
	allInt := true
	for i := range g {
		allInt = allInt && g[i].isInt
	}
	switch f {
	case GaugeCount:
		return uint64(len(g)), true
	case GaugeLast:
		best := 0
		for i := 1; i < len(g); i++ {
			if g[i].t > g[best].t || g[i].t == g[best].t && g[i].hash > g[best].hash {
				best = i
			}
		}
		return g[best].v, g[best].isInt
	case GaugeAvg:
		var sum float64
		for i := range g {
			sum += asFloat(g[i].v, g[i].isInt)
		}
		return math.Float64bits(sum / float64(len(g))), false
	}
	if allInt {
		acc := int64(g[0].v)
		for i := 1; i < len(g); i++ {
			v := int64(g[i].v)
			switch f {
			case GaugeSum:
				acc += v
			case GaugeMin:
				acc = min(acc, v)
			case GaugeMax:
				acc = max(acc, v)
			}
		}
		return uint64(acc), true
	}
	acc := asFloat(g[0].v, g[0].isInt)
	for i := 1; i < len(g); i++ {
		v := asFloat(g[i].v, g[i].isInt)
		switch f {
		case GaugeSum:
			acc += v
		case GaugeMin:
			acc = math.Min(acc, v)
		case GaugeMax:
			acc = math.Max(acc, v)
		}
	}
	return math.Float64bits(acc), false
}

// number adds a number point to g: by set as it is, for the builder to
// take (no attributes: they are in the batch's table of sets), else
// encoded with its attributes.
func (a *Aggregator) number(g *group, attrs string, start, end, v uint64, isInt bool) {
	if a.cfg.BySet {
		g.nums = append(g.nums, schemas.NumberPoint{Start: start, Time: end, Value: v, IsInt: isInt})
		return
	}
	g.pts = appendNumber(g.pts, attrs, start, end, v, isInt)
}

func appendNumber(dst []byte, attrs string, start, end, v uint64, isInt bool) []byte {
	dst, at := openMsg(dst, 1)
	dst = retag(dst, otlpwire.NumberDataPointAttributes, attrs)
	if start != 0 {
		dst = appendFixed64(dst, otlpwire.NumberDataPointStartTimeUnixNano, start)
	}
	dst = appendFixed64(dst, otlpwire.NumberDataPointTimeUnixNano, end)
	if isInt {
		dst = appendFixed64(dst, otlpwire.NumberDataPointAsInt, v)
	} else {
		dst = appendFixed64(dst, otlpwire.NumberDataPointAsDouble, v)
	}
	return closeMsg(dst, at)
}

func appendDist(dst []byte, kind uint8, attrs string, start, end uint64, d *dist, bounds []float64) []byte {
	dst, at := openMsg(dst, 1)
	attrNum := otlpwire.SummaryDataPointAttributes
	switch kind {
	case schemas.MetricHistogram:
		attrNum = otlpwire.HistogramDataPointAttributes
	case schemas.MetricExponentialHistogram:
		attrNum = otlpwire.ExponentialHistogramDataPointAttributes
	}
	dst = retag(dst, attrNum, attrs)
	if start != 0 {
		dst = appendFixed64(dst, otlpwire.HistogramDataPointStartTimeUnixNano, start)
	}
	dst = appendFixed64(dst, otlpwire.HistogramDataPointTimeUnixNano, end)
	dst = appendFixed64(dst, otlpwire.HistogramDataPointCount, d.count)
	if d.flags&dHasSum != 0 {
		dst = appendDouble(dst, otlpwire.HistogramDataPointSum, d.sum)
	}
	switch kind {
	case schemas.MetricHistogram:
		if len(d.buckets) > 0 {
			dst = appendTag(dst, otlpwire.HistogramDataPointBucketCounts, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(8*len(d.buckets)))
			for _, c := range d.buckets {
				dst = protowire.AppendFixed64(dst, c)
			}
		}
		if len(bounds) > 0 {
			dst = appendTag(dst, otlpwire.HistogramDataPointExplicitBounds, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(8*len(bounds)))
			for _, b := range bounds {
				dst = protowire.AppendFixed64(dst, math.Float64bits(b))
			}
		}
		if d.flags&dHasMinMax != 0 {
			dst = appendDouble(dst, otlpwire.HistogramDataPointMin, d.min)
			dst = appendDouble(dst, otlpwire.HistogramDataPointMax, d.max)
		}
	case schemas.MetricExponentialHistogram:
		dst = appendVarint(dst, otlpwire.ExponentialHistogramDataPointScale, protowire.EncodeZigZag(int64(d.scale)))
		if d.zc != 0 {
			dst = appendFixed64(dst, otlpwire.ExponentialHistogramDataPointZeroCount, d.zc)
		}
		dst = appendBuckets(dst, otlpwire.ExponentialHistogramDataPointPositive, &d.pos)
		dst = appendBuckets(dst, otlpwire.ExponentialHistogramDataPointNegative, &d.neg)
		if d.flags&dHasMinMax != 0 {
			dst = appendDouble(dst, otlpwire.ExponentialHistogramDataPointMin, d.min)
			dst = appendDouble(dst, otlpwire.ExponentialHistogramDataPointMax, d.max)
		}
		if d.zt != 0 {
			dst = appendDouble(dst, otlpwire.ExponentialHistogramDataPointZeroThreshold, d.zt)
		}
	}
	return closeMsg(dst, at)
}

func appendBuckets(dst []byte, num otlpwire.FieldNum, e *expb) []byte {
	if len(e.counts) == 0 {
		return dst
	}
	dst, at := openMsg(dst, num)
	dst = appendVarint(dst, otlpwire.ExponentialHistogramDataPointBucketsOffset, protowire.EncodeZigZag(int64(e.off)))
	var n int
	for _, c := range e.counts {
		n += protowire.SizeVarint(c)
	}
	dst = appendTag(dst, otlpwire.ExponentialHistogramDataPointBucketsBucketCounts, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	for _, c := range e.counts {
		dst = protowire.AppendVarint(dst, c)
	}
	return closeMsg(dst, at)
}

// dataField is the Metric field of a metric type.
func dataField(kind uint8) otlpwire.FieldNum {
	switch kind {
	case schemas.MetricSum:
		return otlpwire.MetricSum
	case schemas.MetricHistogram:
		return otlpwire.MetricHistogram
	case schemas.MetricExponentialHistogram:
		return otlpwire.MetricExponentialHistogram
	case schemas.MetricSummary:
		return otlpwire.MetricSummary
	}
	return otlpwire.MetricGauge
}

// build turns the collected points into one batch per tenant.
func (a *Aggregator) build() ([]Output, error) {
	o := a.out
	if len(o.tenants) == 0 {
		return nil, nil
	}
	if o.b == nil {
		o.b = schemas.NewBuilder(otlpwire.Metrics, a.cfg.Allocator)
	}
	res := make([]Output, 0, len(o.tenants))
	var err error
	for ti := range o.tenants {
		t := &o.tenants[ti]
		req := o.req[:0]
		nums, anyNums := o.nums[:0], false
		for gi := range t.groups {
			g := &t.groups[gi]
			nums = append(nums, g.nums)
			anyNums = anyNums || len(g.nums) > 0
			h := &a.hdrs[g.hdr]
			var rm, sm, m, d int
			req, rm = openMsg(req, otlpwire.ExportMetricsServiceRequestResourceMetrics)
			req = append(req, h.res()...)
			req, sm = openMsg(req, otlpwire.ResourceMetricsScopeMetrics)
			req = append(req, h.scope()...)
			req, m = openMsg(req, otlpwire.ScopeMetricsMetrics)
			req = append(req, h.metric()...)
			req, d = openMsg(req, dataField(h.kind))
			req = append(req, g.pts...)
			if h.kind != schemas.MetricGauge && h.kind != schemas.MetricSummary {
				req = appendVarint(req, otlpwire.SumAggregationTemporality, uint64(h.temp))
			}
			if h.kind == schemas.MetricSum && h.mono {
				req = appendVarint(req, otlpwire.SumIsMonotonic, 1)
			}
			req = append(req, h.dataExtra()...)
			req = closeMsg(req, d)
			req = closeMsg(req, m)
			req = closeMsg(req, sm)
			req = closeMsg(req, rm)
		}
		o.req, o.nums = req, nums
		if err == nil {
			var e error
			if anyNums {
				_, e = o.b.AppendNumbers(req, nums)
			} else {
				_, e = o.b.Append(req)
			}
			if e != nil {
				err = fmt.Errorf("aggregate: building output: %w", e)
			} else {
				b := o.b.Build()
				if a.cfg.BySet {
					if e := a.bySet(t, b); e != nil {
						b.Release()
						err = fmt.Errorf("aggregate: building output: %w", e)
						continue
					}
				}
				res = append(res, Output{Tenant: a.tenants[t.tenant], Batch: b, Points: t.points})
			}
		}
	}
	clear(o.nums) // the groups' own slices
	o.nums = o.nums[:0]
	o.reset()
	if err != nil {
		for _, r := range res {
			r.Batch.Release()
		}
		return nil, err
	}
	return res, nil
}

// bySet gives b, built from t's points without their attributes, the
// table of its points' sets (Config.BySet): their series' distinct
// attributes, in order of first appearance, as WriteBatch numbers them.
func (a *Aggregator) bySet(t *tenantOut, b *schemas.Batch) error {
	o := a.out
	if o.setTables == nil {
		o.setTables = schemas.NewSetTableBuilder(a.cfg.Allocator)
	}
	if n := len(a.series); len(o.stamp) < n {
		o.stamp = append(o.stamp, make([]uint32, n-len(o.stamp))...)
		o.local = append(o.local, make([]uint32, n-len(o.local))...)
	}
	o.gen++
	if o.gen == 0 { // wrapped: no stamp may look current
		clear(o.stamp)
		o.gen = 1
	}
	// The batch's numbers: in the room of the Builder's (of the empty
	// sets it saw), which the batch owns.
	ids := b.ItemAttrSets[:0]
	if cap(ids) < t.points {
		ids = make([]uint32, 0, t.points)
	}
	sets := o.setAttrs[:0]
	if o.setOf == nil {
		o.setOf = map[string]uint32{}
	}
	clear(o.setOf)
	for gi := range t.groups {
		for _, si := range t.groups[gi].series {
			if o.stamp[si] != o.gen {
				// The series' first point in the batch: its set is
				// another's when their attributes are equal (the series
				// of other metrics, of a resource, of a limit's overflow).
				attrs := a.series[si].attrs
				n, ok := o.setOf[attrs]
				if !ok {
					n = uint32(len(sets))
					o.setOf[attrs] = n
					sets = append(sets, attrs)
				}
				o.stamp[si], o.local[si] = o.gen, n
			}
			ids = append(ids, o.local[si])
		}
	}
	defer func() {
		clear(sets) // no strings of series to be forgotten held
		o.setAttrs = sets[:0]
		clear(o.setOf)
	}()
	if len(ids) != b.Len() {
		return fmt.Errorf("%d points built but %d numbered", b.Len(), len(ids))
	}
	for _, attrs := range sets {
		if err := o.setTables.Add(attrs); err != nil {
			o.setTables.Reset()
			return err
		}
	}
	table, err := o.setTables.Build()
	if err != nil {
		return err
	}
	b.ItemAttrSetTable, b.ItemAttrSets = table, ids
	b.ItemSetIDs, b.SetSpace = nil, 0 // the Builder's numbers, of the empty sets it saw
	return nil
}
