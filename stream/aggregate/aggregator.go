package aggregate

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cespare/xxhash/v2"
	"github.com/sluice-dev/sluice/schemas"
)

// Config configures an Aggregator.
type Config struct {
	Allocator memory.Allocator // for output batches; default memory.DefaultAllocator
	// Sources is how many sources feed the Aggregator (the partitions of
	// the raw topic, whose points reach it through the workers), numbered
	// 0 to Sources-1 in AddFrom. The watermark is the oldest progress of
	// the sources heard from within the longest grace, and until each has
	// sent a point or been silent that long, they hold it where it is. 0:
	// the sources are those AddFrom names, known from their first point.
	Sources int
	// FlushBuffers, when set, are shared with other Aggregators that never
	// Flush at the same time (the partitions of one aggregator member);
	// nil: the Aggregator has its own.
	FlushBuffers *FlushBuffers
	// Stale: an input series without points for this long is forgotten
	// (its contribution stays in the output total); an output series
	// without points for this long is forgotten. Default 10m. Measured on
	// the watermark (see the package doc), not the wall clock.
	Stale time.Duration
	// BySet builds the output batches with their points' attributes as a
	// table of sets, one per series (schemas.Batch.ItemAttrSetTable),
	// instead of copying a series' attributes into each of its points:
	// for a caller that writes them with schemas.WriteBatch (the worker's
	// aggregators), which writes the same bytes either way. ToOTLP
	// refuses such a batch, and its items' attributes column is empty.
	BySet bool
}

func (c Config) withDefaults() Config {
	if c.Allocator == nil {
		c.Allocator = memory.DefaultAllocator
	}
	if c.Stale <= 0 {
		c.Stale = 10 * time.Minute
	}
	if c.FlushBuffers == nil {
		c.FlushBuffers = &FlushBuffers{}
	}
	return c
}

// Point classes: how a metric's points merge.
const (
	clsCumSum    uint8 = iota // monotonic cumulative sum
	clsDelta                  // monotonic delta sum
	clsGauge                  // gauge, non-monotonic sum
	clsCumDist                // cumulative histogram, exponential histogram, summary (count_sum)
	clsDeltaDist              // delta histogram, exponential histogram
	clsNone                   // no data
)

const temporalityDelta = 1 // AGGREGATION_TEMPORALITY_DELTA

func classOf(kind uint8, temp int32, mono bool) uint8 {
	switch kind {
	case schemas.MetricGauge:
		return clsGauge
	case schemas.MetricSum:
		switch {
		case !mono:
			return clsGauge
		case temp == temporalityDelta:
			return clsDelta
		}
		return clsCumSum
	case schemas.MetricHistogram, schemas.MetricExponentialHistogram:
		if temp == temporalityDelta {
			return clsDeltaDist
		}
		return clsCumDist
	case schemas.MetricSummary:
		return clsCumDist
	}
	return clsNone
}

// Drop reasons.
const (
	dropSummary = iota
	dropBounds
	dropNoValue
	dropTypeChange
	dropNoData
	dropInvalid
	nDrop
)

var dropNames = [nDrop]string{"summary", "bounds_mismatch", "no_value", "type_change", "no_data", "invalid"}

type ruleCounters struct {
	in, merged, late, ooo, folded uint64
	dropped                       [nDrop]uint64
	// foldedBy counts the folded points by metric name. A pointer, so
	// that counting a name seen before only looks it up: assigning to a
	// map with a string key stores the key given, here a string of the
	// batch's buffers, which its release recycles.
	foldedBy map[string]*uint64
}

type specEntry struct {
	Spec
	rule      uint32
	iv, grace int64 // ns
}

// hash64 is a 64-bit series hash as two uint32s: a key that holds one
// beside a uint32 tenant then has no padding, so the index maps' slots are
// 16 (seriesKey) and 24 bytes (inputKey) rather than 24 and 32.
type hash64 [2]uint32

func h64(v uint64) hash64    { return hash64{uint32(v), uint32(v >> 32)} }
func (h hash64) u64() uint64 { return uint64(h[0]) | uint64(h[1])<<32 }

type seriesKey struct {
	tenant uint32
	out    hash64
}

type inputKey struct {
	tenant  uint32
	in, out hash64
}

type limitKey struct {
	tenant uint32
	metric uint64
}

type limitState struct {
	n        int    // admitted series
	overflow uint32 // 1 + the overflow series; 0 none
}

// Series flags.
const (
	sAlive    = 1 << iota
	sDouble   // the cumulative total is a double
	sEmitted  // an output point was written: the start time is fixed
	sOverflow // the overflow series of a limit
	sHasTotal // h.tot holds a total
)

// maxSpecs is the number of distinct specs an Aggregator holds
// (series.spec is a uint16).
const maxSpecs = 1 << 16

// series is an output series. It is 96 bytes (TestStateSizes): its metric
// type, temporality and monotonicity are those of its header, not copied
// here.
type series struct {
	out    uint64
	start  uint64 // output start time (cumulative)
	seen   int64  // the time of its last point (the watermark if later)
	tot    uint64 // cumulative sum total: int64 or float64 bits (sDouble)
	tenant uint32
	hdr    uint32
	limit  uint32 // 1 + the index of its limit state; 0 none
	spec   uint16
	flags  uint8
	attrs  string // KeyValue encodings as field 1, shortest lengths
	open   []ival // open intervals, ascending
	h      *histState
}

// histState is the extra state of a histogram series.
type histState struct {
	bounds []float64
	tot    dist
}

// ival is an open interval of a series. It is 24 bytes, a Go size class:
// the flag that v is a double is the top bit of n.
type ival struct {
	k int64  // the interval [k*I, (k+1)*I)
	v uint64 // sums: the increase, int64 or float64 bits (isDouble)
	n uint32 // points merged, saturating at ivCount (only n == 0 matters); | ivDouble
	x uint32 // index in Aggregator.ext (gauge entries, distribution); 0 none
}

const (
	ivDouble = 1 << 31      // in ival.n: v is a float64
	ivCount  = ivDouble - 1 // in ival.n: the count of points merged
)

func (iv *ival) points() uint32 { return iv.n & ivCount }
func (iv *ival) isDouble() bool { return iv.n&ivDouble != 0 }

// countPoint counts a point merged.
func (iv *ival) countPoint() {
	if iv.n&ivCount != ivCount {
		iv.n++
	}
}

func (iv *ival) setDouble(d bool) {
	iv.n &^= ivDouble
	if d {
		iv.n |= ivDouble
	}
}

// ext is the part of an interval's state that gauges and histograms need.
// It is 48 bytes and holds no pointer (TestStateSizes): a gauge interval
// with one input holds its entry inline, the entries of further inputs
// and a distribution live in tables of the Aggregator (mores, dists), so
// the many intervals a backlog holds open stay small, allocate nothing,
// and are not scanned by the garbage collector.
type ext struct {
	g0   gent   // gauges: the first input's entry, when n > 0
	more uint32 // gauges: the other inputs' entries (n-1), index in Aggregator.mores; 0 none
	n    uint32 // gauges: the inputs with an entry; one needs no allocation
	d    uint32 // distributions: the merged points, index in Aggregator.dists; 0 none
}

// gentAt is the gauge entry at position p < e.n.
func (a *Aggregator) gentAt(e *ext, p int) *gent {
	if p == 0 {
		return &e.g0
	}
	return &a.mores[e.more][p-1]
}

// addGent appends a gauge entry to e and returns its position.
func (a *Aggregator) addGent(e *ext, g gent) int {
	switch {
	case e.n == 0:
		e.g0 = g
	case e.more == 0:
		if n := len(a.moreFree); n > 0 {
			e.more = a.moreFree[n-1]
			a.moreFree = a.moreFree[:n-1]
		} else {
			a.mores = append(a.mores, nil)
			e.more = uint32(len(a.mores) - 1)
		}
		fallthrough
	default:
		a.mores[e.more] = append(a.mores[e.more], g)
	}
	e.n++
	return int(e.n - 1)
}

// appendGents appends e's gauge entries to dst.
func (a *Aggregator) appendGents(e *ext, dst []gent) []gent {
	if e.n == 0 {
		return dst
	}
	dst = append(dst, e.g0)
	if e.more != 0 {
		dst = append(dst, a.mores[e.more]...)
	}
	return dst
}

// gent is an input's latest gauge value in an interval.
type gent struct {
	in    uint32 // index of the input
	isInt bool
	t     int64
	v     uint64 // int64 or float64 bits
	hash  uint64 // input hash: breaks ties of Last
}

// Input flags.
const (
	iAlive = 1 << iota
	iHas   // a point was seen: start, time, val (and d) are its
	iInt   // val is an int64
)

// input is the state of one input series of an output series. It is 56
// bytes (TestStateSizes) and holds no pointer: the GC does not scan
// Aggregator.inputs.
type input struct {
	in      uint64
	start   uint64
	time    uint64
	val     uint64
	seen    int64
	series  uint32
	lastPos int32  // gauges: position of its entry in the interval of time
	d       uint32 // cumulative distributions: the last point, index in Aggregator.dists; 0 none
	flags   uint8
}

// metInfo is what Add needs of a metric row of the current batch.
type metInfo struct {
	kind uint8
	cls  uint8
	mono bool
	temp int32
	hdr  int32 // header id, -1 until needed
}

// Aggregator holds the state of one partition of the aggregation topic.
// Not safe for concurrent use.
type Aggregator struct {
	cfg Config

	tenants   []string
	tenantIdx map[string]uint32
	specs     []specEntry
	specIdx   map[Spec]uint32
	rules     []string
	ruleIdx   map[string]uint32
	stats     []ruleCounters

	hdrs    []header
	hdrIdx  map[string]uint32
	hdrFree []uint32

	series     []series
	seriesIdx  map[seriesKey]uint32
	seriesFree []uint32

	inputs    []input
	inputIdx  map[inputKey]uint32
	inputFree []uint32

	limits   []limitState
	limitIdx map[limitKey]uint32

	ext     []ext
	extFree []uint32
	// mores[i] are the gauge entries of an interval's further inputs
	// (ext.more); 0 = none.
	mores    [][]gent
	moreFree []uint32

	dists    []dist // last points of cumulative distribution inputs, merged points of intervals; 0 = none
	distFree []uint32
	freeMark []uint64    // scratch of lowFirst
	closed   []closedRun // scratch of FlushTo

	wm, wmWall int64 // watermark (ns) and the wall clock when it last moved
	maxGrace   int64
	lastSweep  int64
	pending    bool      // the last Flush left intervals open
	srcs       []srcMark // the sources' progress (see Config.Sources)
	srcInit    bool      // the expected sources are in srcs
	srcCur     int       // srcs index of the source of the Add under way
	srcMin     int64     // the oldest progress of the active sources
	seenAt     int64     // the time the point under way sees its series at

	// per Add
	c       cols
	memo    *inputMemo // found inputs, valid while their gen is memoGen
	memoGen uint32
	noMemo  bool // tests: nothing is memoized, every point looks its input up in inputIdx
	met     []metInfo
	scratch []byte
	gents   []gent // an interval's gauge entries, for emit
	cur     dist
	inc     dist

	// per Flush
	out *FlushBuffers
}

// New returns an empty Aggregator.
func New(cfg Config) *Aggregator {
	a := &Aggregator{
		cfg:       cfg.withDefaults(),
		tenantIdx: map[string]uint32{},
		specIdx:   map[Spec]uint32{},
		ruleIdx:   map[string]uint32{},
		hdrIdx:    map[string]uint32{},
		seriesIdx: map[seriesKey]uint32{},
		inputIdx:  map[inputKey]uint32{},
		limitIdx:  map[limitKey]uint32{},
		ext:       make([]ext, 1), // 0 = none
		mores:     make([][]gent, 1),
		dists:     make([]dist, 1),
	}
	a.out = a.cfg.FlushBuffers
	return a
}

func (a *Aggregator) tenantID(t string) uint32 {
	if id, ok := a.tenantIdx[t]; ok {
		return id
	}
	id := uint32(len(a.tenants))
	a.tenants = append(a.tenants, t)
	a.tenantIdx[t] = id
	return id
}

func (a *Aggregator) ruleID(r string) uint32 {
	if id, ok := a.ruleIdx[r]; ok {
		return id
	}
	id := uint32(len(a.rules))
	a.rules = append(a.rules, r)
	a.ruleIdx[r] = id
	a.stats = append(a.stats, ruleCounters{})
	return id
}

func (a *Aggregator) specID(s Spec) (uint32, error) {
	if id, ok := a.specIdx[s]; ok {
		return id, nil
	}
	if len(a.specs) >= maxSpecs {
		return 0, fmt.Errorf("aggregate: rule %q: more than %d distinct specs", s.Rule, maxSpecs)
	}
	id := uint32(len(a.specs))
	e := specEntry{Spec: s, rule: a.ruleID(s.Rule), iv: int64(s.Interval), grace: int64(s.grace())}
	a.specs = append(a.specs, e)
	a.specIdx[s] = id
	a.maxGrace = max(a.maxGrace, e.grace)
	return id, nil
}

// Add merges the points of b (metrics, one tenant): in[i] and out[i] are
// the hashes of item row i's input series (before the rules) and output
// series (after). now is the wall clock, used only to advance the
// watermark of an idle partition. Add does not retain b. An Aggregator
// holds up to 65,536 distinct specs: Add with a further one is an error.
func (a *Aggregator) Add(tenant string, b *schemas.Batch, in, out []uint64, spec Spec, now time.Time) error {
	return a.AddFrom(-1, tenant, b, in, out, spec, now)
}

// srcMark is the progress of one source of an Aggregator's points: the
// newest point time it sent (never past the wall clock; -1 before its
// first point) and the wall clock of its last Add. active: heard from
// within the longest grace, as of the Add under way.
type srcMark struct {
	id        int32
	max, wall int64
	active    bool
	// heard is the wall clock of its last Add or Progress; Behind moves
	// wall, not heard.
	heard int64
	// toldAt is the wall clock of the source's last Progress (0: never).
	// Within toldFor of it, its points do not move its progress: they
	// come in series order, not time order, and a progress record follows
	// them. A source that stops telling (a worker of an older version took
	// its partition over) is moved by its points again.
	toldAt int64
}

// MaxHold is how long Behind holds a source that sends nothing.
const MaxHold = 5 * time.Minute

// toldFor: see srcMark.toldAt.
const toldFor = int64(30 * time.Second)

// AddFrom is Add of points from source (a raw partition; -1: unknown).
// Each source's points are roughly in time order, but sources run ahead of
// each other (a backlog drained partition after partition): the watermark
// follows the slowest source that is not idle, so that a fast one does not
// make another's points late.
func (a *Aggregator) AddFrom(source int32, tenant string, b *schemas.Batch, in, out []uint64, spec Spec, now time.Time) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := a.c.init(b); err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}
	c := &a.c
	if len(in) != c.nPoints || len(out) != c.nPoints {
		return fmt.Errorf("aggregate: %d points but %d input and %d output hashes", c.nPoints, len(in), len(out))
	}
	sp, err := a.specID(spec)
	if err != nil {
		return err
	}
	tid := a.tenantID(tenant)
	rc := &a.stats[a.specs[sp].rule]
	a.met = grow(a.met, c.nMetrics)
	for m := range a.met {
		kind, temp, mono := c.mType.Value(m), c.mTemp.Value(m), c.mMono.Value(m)
		a.met[m] = metInfo{kind: kind, temp: temp, mono: mono, cls: classOf(kind, temp, mono), hdr: -1}
	}
	nowN := now.UnixNano()
	a.srcCur = a.source(source, nowN)
	a.refreshSources(nowN)
	a.newMemo()
	for row := 0; row < c.nPoints; row++ {
		a.addPoint(tid, sp, rc, row, in[row], out[row], nowN)
	}
	return nil
}

// Progress tells the Aggregator that source has reached point time t
// (ns): it has sent every point it had up to t, here or elsewhere. A raw
// partition whose recent points all went to other aggregation partitions
// still moves this one's watermark, rather than holding it until it has
// been silent for the longest grace. It counts as hearing from the
// source, as AddFrom does.
//
// A source that has told its progress is moved only by Progress for the
// next 30 s of the wall clock (then by its points again, until it tells
// again): the points of a batch are in series order (one series after
// another, each over the batch's time span), so moving the watermark with
// each would make the next series' older points late. Its points are
// judged against the watermark its last Progress left.
func (a *Aggregator) Progress(source int32, t int64, now time.Time) {
	nowN := now.UnixNano()
	a.srcCur = a.source(source, nowN)
	a.srcs[a.srcCur].toldAt = nowN
	a.refreshSources(nowN)
	if t > 0 {
		a.progress(min(t, nowN), nowN)
	}
}

// Behind tells the Aggregator which sources had points it has not been
// sent yet, as of at (the wall clock when the bus was asked): a raw
// partition whose records the workers have not all turned into
// aggregation records. Such a source is not silent, however long since
// its last points: it is behind (a worker stalled, busy with other
// partitions, or restarting), and counts as heard from at at, so it keeps
// holding the watermark where its points left it. While any source is
// behind, the wall clock does not move an idle watermark either.
//
// The wall clock then moves the watermark only where nothing is left to
// read: a drain whose worker stops for longer than the grace does not make
// the points it reads next late.
//
// A source is held so for at most MaxHold (5 minutes) after its last
// points or Progress: one that stays behind without sending anything (no
// worker left to read it, or a raw topic whose transaction markers look
// like lag) then falls silent, rather than holding the watermark, and the
// state, without end.
func (a *Aggregator) Behind(at time.Time, behind func(source int32) bool) {
	atN := at.UnixNano()
	a.initSources(atN)
	held := false
	for i := range a.srcs {
		if s := &a.srcs[i]; atN-s.heard <= int64(MaxHold) && behind(s.id) {
			s.wall = max(s.wall, atN)
			held = true
		}
	}
	if held && a.wmWall != 0 {
		a.wmWall = max(a.wmWall, atN)
	}
}

// Clock returns the wall clock the watermark last moved at (restored with
// it by Restore); false before the first point. A restored Aggregator
// that goes on from it, rather than from the wall after a downtime, does
// not take the downtime for its sources' silence.
func (a *Aggregator) Clock() (time.Time, bool) {
	if a.wmWall == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, a.wmWall), true
}

// Watermark returns the watermark (intervals that end a grace before it
// are closed) and the newest point time of any source, in ns since the
// epoch; 0 before the first point. Their difference is how much point
// time the Aggregator holds open beyond the graces.
func (a *Aggregator) Watermark() (wm, newest int64) {
	for _, s := range a.srcs {
		newest = max(newest, s.max)
	}
	return max(a.wm, 0), newest
}

// source returns the srcs index of source id, heard from at nowN.
func (a *Aggregator) source(id int32, nowN int64) int {
	a.initSources(nowN)
	for i := range a.srcs {
		if a.srcs[i].id == id {
			a.srcs[i].wall, a.srcs[i].heard = nowN, nowN
			return i
		}
	}
	a.srcs = append(a.srcs, srcMark{id: id, max: -1, wall: nowN, heard: nowN})
	return len(a.srcs) - 1
}

// initSources adds the expected sources (Config.Sources), first heard
// from at nowN, once.
func (a *Aggregator) initSources(nowN int64) {
	if a.srcInit {
		return
	}
	a.srcInit = true
	for i := range a.cfg.Sources {
		a.srcs = append(a.srcs, srcMark{id: int32(i), max: -1, wall: nowN, heard: nowN})
	}
}

// refreshSources marks the sources heard from within the longest grace
// active (the others do not hold the watermark back, and after Stale are
// forgotten), takes the oldest progress of the active ones, and moves the
// watermark up to it.
func (a *Aggregator) refreshSources(nowN int64) {
	cur := int32(-2)
	if a.srcCur < len(a.srcs) {
		cur = a.srcs[a.srcCur].id
	}
	k := 0
	for _, s := range a.srcs {
		silent := nowN - s.wall
		if silent > int64(a.cfg.Stale) {
			continue
		}
		// Before the first spec there is no grace to be silent for:
		// progress records that come before any point (a raw partition
		// whose recent points went elsewhere) must not make the other
		// sources silent, and the points they send next late.
		s.active = a.maxGrace == 0 || silent <= a.maxGrace
		a.srcs[k] = s
		if s.id == cur {
			a.srcCur = k
		}
		k++
	}
	a.srcs = a.srcs[:k]
	a.srcMin = a.minSource()
	w := a.srcMin
	if !slices.ContainsFunc(a.srcs, func(s srcMark) bool { return s.active }) {
		// Every source is silent: what they sent is all there is, and
		// the newest of it is the watermark (then the wall clock moves
		// it on, see advanceIdle).
		for _, s := range a.srcs {
			w = max(w, s.max)
		}
	}
	if w > a.wm {
		a.wm, a.wmWall = w, nowN
	}
}

// minSource is the oldest progress of the active sources, or -1.
func (a *Aggregator) minSource() int64 {
	m := int64(math.MaxInt64)
	for i := range a.srcs {
		if a.srcs[i].active {
			m = min(m, a.srcs[i].max)
		}
	}
	if m == math.MaxInt64 {
		return -1
	}
	return m
}

// progress records point time w of the current source and moves the
// watermark when the source was the slowest.
func (a *Aggregator) progress(w, nowN int64) {
	src := &a.srcs[a.srcCur]
	if w <= src.max {
		return
	}
	was := src.max
	src.max = w
	if was > a.srcMin {
		return // another source is slower
	}
	a.srcMin = a.minSource()
	if a.srcMin > a.wm {
		a.wm, a.wmWall = a.srcMin, nowN
	}
}

func floorDiv(t, iv int64) int64 {
	k := t / iv
	if t%iv < 0 {
		k--
	}
	return k
}

func (a *Aggregator) addPoint(tid, sp uint32, rc *ruleCounters, row int, inH, outH uint64, nowN int64) {
	c := &a.c
	rc.in++
	mid := c.metricID.Value(row)
	mi := &a.met[mid]
	switch {
	case c.flags.Value(row)&1 != 0:
		rc.dropped[dropNoValue]++
		return
	case mi.cls == clsNone:
		rc.dropped[dropNoData]++
		return
	case mi.kind == schemas.MetricSummary && a.specs[sp].Summary == SummaryDrop:
		rc.dropped[dropSummary]++
		return
	}
	t := int64(c.time.Value(row))
	if t == 0 { // no time: taken when it arrives
		t = nowN
	}
	// The watermark never passes the wall clock: a point from the future
	// (a skewed clock, a bad client) must not close the intervals of the
	// other series of the partition, which may be other tenants'.
	if at := a.srcs[a.srcCur].toldAt; at == 0 || nowN-at > toldFor {
		a.progress(min(t, nowN), nowN)
	}
	// A series is seen at its point's time, or the watermark when that is
	// later: the watermark lags the sources ahead of the slowest.
	a.seenAt = max(a.wm, min(t, nowN))
	m := a.memoOf(inH, outH)
	ii, ok := m.ii, m.gen == a.memoGen && m.in == inH && m.out == outH
	if !ok {
		key := inputKey{tenant: tid, in: h64(inH), out: h64(outH)}
		if ii, ok = a.inputIdx[key]; !ok {
			si := a.seriesFor(tid, outH, row, mid, sp)
			if !a.sameType(&a.series[si], mi) {
				rc.dropped[dropTypeChange]++
				return
			}
			ii = a.newInput(key, si)
		}
		if !a.noMemo {
			*m = inputMemoEntry{in: inH, out: outH, ii: ii, gen: a.memoGen}
		}
	}
	inp := &a.inputs[ii]
	s := &a.series[inp.series]
	if !a.sameType(s, mi) {
		rc.dropped[dropTypeChange]++
		return
	}
	if inp.flags&iHas != 0 && uint64(t) <= inp.time {
		rc.ooo++
		return
	}
	se := &a.specs[s.spec]
	k := floorDiv(t, se.iv)
	late := (k+1)*se.iv+se.grace <= a.wm
	start := c.start.Value(row)
	switch mi.cls {
	case clsCumSum, clsDelta:
		v, isInt, ok := a.value(row)
		if !ok {
			rc.dropped[dropNoValue]++
			return
		}
		incV, incInt := v, isInt
		if mi.cls == clsCumSum {
			if inp.flags&iHas != 0 && (start == inp.start || start == 0) {
				incV, incInt = decrease(v, isInt, inp.val, inp.flags&iInt != 0)
			}
			inp.val = v
			inp.flags = inp.flags&^iInt | boolFlag(isInt, iInt)
			a.lowerStart(s, start)
		}
		var iv *ival
		if late {
			iv = a.lateIval(s, se)
		} else {
			iv = a.ivalAt(s, k, false)
		}
		addNum(iv, incV, incInt)
		iv.countPoint()
	case clsGauge:
		v, isInt, ok := a.value(row)
		if !ok {
			rc.dropped[dropNoValue]++
			return
		}
		prev, had := int64(inp.time), inp.flags&iHas != 0
		inp.time, inp.start = uint64(t), start
		inp.flags |= iHas
		inp.seen, s.seen = a.seenAt, a.seenAt
		if late {
			rc.late++
			return
		}
		a.lowerStart(s, start)
		iv := a.ivalAt(s, k, true)
		iv.countPoint()
		x := &a.ext[iv.x]
		e := gent{in: ii, isInt: isInt, t: t, v: v, hash: inp.in}
		if p := int(inp.lastPos); had && floorDiv(prev, se.iv) == k && p >= 0 && p < int(x.n) && a.gentAt(x, p).in == ii {
			*a.gentAt(x, p) = e
		} else {
			inp.lastPos = int32(a.addGent(x, e))
		}
		rc.merged++
		return
	default: // distributions
		cur := &a.cur
		if !a.readDist(cur, row, mi.kind) {
			rc.dropped[dropInvalid]++
			return
		}
		if mi.kind == schemas.MetricHistogram && !slices.Equal(s.h.bounds, a.boundsOf(row)) {
			rc.dropped[dropBounds]++
			return
		}
		inc := cur
		if mi.cls == clsCumDist {
			if inp.d == 0 {
				inp.d = a.newDist()
			}
			last := &a.dists[inp.d]
			if inp.flags&iHas != 0 && (start == inp.start || start == 0) && increase(&a.inc, cur, last) {
				inc = &a.inc
			}
			last.copyFrom(cur)
			a.lowerStart(s, start)
		}
		var iv *ival
		if late {
			iv = a.lateIval(s, se)
		} else {
			iv = a.ivalAt(s, k, false)
		}
		if iv.x == 0 {
			iv.x = a.newExt()
		}
		x := &a.ext[iv.x]
		first := x.d == 0
		if first {
			x.d = a.newDist()
		}
		a.dists[x.d].add(inc, first)
		iv.countPoint()
	}
	inp.time, inp.start = uint64(t), start
	inp.flags |= iHas
	inp.seen, s.seen = a.seenAt, a.seenAt
	rc.merged++
	if late {
		rc.late++
	}
}

func boolFlag(b bool, f uint8) uint8 {
	if b {
		return f
	}
	return 0
}

// value reads row's number value.
func (a *Aggregator) value(row int) (v uint64, isInt, ok bool) {
	c := &a.c
	if c.intV.IsValid(row) {
		return uint64(c.intV.Value(row)), true, true
	}
	if c.dblV.IsValid(row) {
		return math.Float64bits(c.dblV.Value(row)), false, true
	}
	return 0, false, false
}

func asFloat(v uint64, isInt bool) float64 {
	if isInt {
		return float64(int64(v))
	}
	return math.Float64frombits(v)
}

// decrease is the increase of a counter from last to v: v - last, or v
// whole when v is below last (a reset).
func decrease(v uint64, isInt bool, last uint64, lastInt bool) (uint64, bool) {
	if isInt && lastInt {
		if int64(v) < int64(last) {
			return v, true
		}
		return uint64(int64(v) - int64(last)), true
	}
	f, l := asFloat(v, isInt), asFloat(last, lastInt)
	if f < l {
		return math.Float64bits(f), false
	}
	return math.Float64bits(f - l), false
}

// addNum adds a sum's increase to an interval.
func addNum(iv *ival, v uint64, isInt bool) {
	switch {
	case iv.points() == 0:
		iv.v = v
		iv.setDouble(!isInt)
	case !iv.isDouble() && isInt:
		iv.v = uint64(int64(iv.v) + int64(v))
	default:
		iv.v = math.Float64bits(asFloat(iv.v, !iv.isDouble()) + asFloat(v, isInt))
		iv.n |= ivDouble
	}
}

// sameType reports whether the points of metric row mi may merge into s:
// the same metric type, temporality and monotonicity (its header's).
func (a *Aggregator) sameType(s *series, mi *metInfo) bool {
	h := &a.hdrs[s.hdr]
	return h.kind == mi.kind && h.temp == mi.temp && h.mono == mi.mono
}

// lowerStart keeps a cumulative output's start time at the earliest start
// of its inputs until its first output point.
func (a *Aggregator) lowerStart(s *series, start uint64) {
	if s.flags&sEmitted == 0 && start != 0 && (s.start == 0 || start < s.start) {
		s.start = start
	}
}

// ivalAt returns s's open interval k, opening it (in order) if needed.
func (a *Aggregator) ivalAt(s *series, k int64, withExt bool) *ival {
	i := len(s.open)
	for i > 0 && s.open[i-1].k > k {
		i--
	}
	if i == 0 || s.open[i-1].k != k {
		s.open = slices.Insert(s.open, i, ival{k: k})
		i++
	}
	iv := &s.open[i-1]
	if withExt && iv.x == 0 {
		iv.x = a.newExt()
	}
	return iv
}

// lateIval is where the increase of a late point goes: the oldest open
// interval of s, or the watermark's interval.
func (a *Aggregator) lateIval(s *series, se *specEntry) *ival {
	if len(s.open) > 0 {
		return &s.open[0]
	}
	return a.ivalAt(s, floorDiv(a.wm, se.iv), false)
}

func (a *Aggregator) newExt() uint32 {
	if n := len(a.extFree); n > 0 {
		x := a.extFree[n-1]
		a.extFree = a.extFree[:n-1]
		return x
	}
	a.ext = appendSlot(a.ext)
	return uint32(len(a.ext) - 1)
}

func (a *Aggregator) freeExt(x uint32) {
	e := &a.ext[x]
	if e.more != 0 {
		a.mores[e.more] = a.mores[e.more][:0] // its room kept for the next
		a.moreFree = append(a.moreFree, e.more)
	}
	e.n, e.more = 0, 0
	if e.d != 0 {
		a.freeDist(e.d)
		e.d = 0
	}
	a.extFree = append(a.extFree, x)
}

// appendSlot appends a zero element to a table of series or inputs. Once
// the table is large it grows by an eighth, not append's quarter: at most
// an eighth of it is unused, for more copying (of each element about eight
// times in all) when series are created.
func appendSlot[T any](s []T) []T {
	if len(s) == cap(s) && len(s) >= 4096 {
		t := make([]T, len(s), len(s)+len(s)/8)
		copy(t, s)
		s = t
	}
	var zero T
	return append(s, zero)
}

func (a *Aggregator) newDist() uint32 {
	if n := len(a.distFree); n > 0 {
		d := a.distFree[n-1]
		a.distFree = a.distFree[:n-1]
		return d
	}
	a.dists = append(a.dists, dist{})
	return uint32(len(a.dists) - 1)
}

// freeDist releases d's buckets with it: the input is gone.
func (a *Aggregator) freeDist(d uint32) {
	a.dists[d].reset() // its slices are kept for the next one
	a.distFree = append(a.distFree, d)
}

func (a *Aggregator) boundsOf(row int) []float64 {
	s, e := listSpan(a.c.bounds, row)
	return a.c.boundsV.Float64Values()[s:e]
}

// readDist reads row's histogram, exponential histogram or summary into d.
func (a *Aggregator) readDist(d *dist, row int, kind uint8) bool {
	c := &a.c
	d.reset()
	d.count = c.count.Value(row)
	if c.sum.IsValid(row) {
		d.sum, d.flags = c.sum.Value(row), d.flags|dHasSum
	}
	if kind == schemas.MetricSummary {
		return true
	}
	if c.min.IsValid(row) && c.max.IsValid(row) {
		d.min, d.max, d.flags = c.min.Value(row), c.max.Value(row), d.flags|dHasMinMax
	}
	if kind == schemas.MetricHistogram {
		s, e := listSpan(c.buckets, row)
		d.buckets = append(d.buckets, c.bucketsV.Uint64Values()[s:e]...)
		return true
	}
	d.flags |= dExp
	d.scale = c.scale.Value(row)
	d.zc = c.zeroCount.Value(row)
	d.zt = c.zt.Value(row)
	if c.posOff.IsValid(row) {
		s, e := listSpan(c.posCounts, row)
		d.pos.off, d.pos.counts = c.posOff.Value(row), append(d.pos.counts, c.posCountsV.Uint64Values()[s:e]...)
	}
	if c.negOff.IsValid(row) {
		s, e := listSpan(c.negCounts, row)
		d.neg.off, d.neg.counts = c.negOff.Value(row), append(d.neg.counts, c.negCountsV.Uint64Values()[s:e]...)
	}
	// Scales outside OTLP's range [-10, 20] and offsets near the int32
	// limits (whose index arithmetic would overflow) are not merged.
	const lim = 1 << 30
	if d.scale < -10 || d.scale > 20 || d.pos.off < -lim || d.pos.off > lim || d.neg.off < -lim || d.neg.off > lim ||
		len(d.pos.counts) > lim || len(d.neg.counts) > lim {
		return false
	}
	d.pos.trim()
	d.neg.trim()
	return true
}

// seriesFor returns the output series of out, creating it (or folding it
// into its metric's overflow series under a limit).
func (a *Aggregator) seriesFor(tid uint32, out uint64, row int, mid uint32, sp uint32) uint32 {
	if si, ok := a.seriesIdx[seriesKey{tid, h64(out)}]; ok {
		return si
	}
	se := &a.specs[sp]
	var lim uint32
	if se.Limit > 0 {
		c := &a.c
		mk := strHash(strHash(seedMetric, c.mName.Value(int(mid))), c.mUnit.Value(int(mid)))
		mk = mix(mk, uint64(c.mType.Value(int(mid))))
		lk := limitKey{tid, mk}
		li, ok := a.limitIdx[lk]
		if !ok {
			li = uint32(len(a.limits))
			a.limits = append(a.limits, limitState{})
			a.limitIdx[lk] = li
		}
		if L := &a.limits[li]; L.n >= se.Limit {
			rc := &a.stats[se.rule]
			rc.folded++
			if rc.foldedBy == nil {
				rc.foldedBy = map[string]*uint64{}
			}
			name := a.c.mName.Value(int(mid))
			n := rc.foldedBy[name]
			if n == nil {
				n = new(uint64)
				rc.foldedBy[strings.Clone(name)] = n // the batch's memory is not ours
			}
			*n++
			ov := L.overflow
			if ov == 0 {
				key := mix(mk, xxhash.Sum64String("otel.metric.overflow"))
				si := a.newSeries(tid, key, row, mid, sp, overflowAttrs)
				s := &a.series[si]
				s.flags |= sOverflow
				s.limit = li + 1
				a.limits[li].overflow = si + 1
				ov = si + 1
			}
			a.seriesIdx[seriesKey{tid, h64(out)}] = ov - 1
			return ov - 1
		}
		a.limits[li].n++
		lim = li + 1
	}
	a.scratch = appendKVs(a.scratch[:0], 1, &a.c.attrs, a.c.attrRow(row), true)
	si := a.newSeries(tid, out, row, mid, sp, string(a.scratch))
	a.series[si].limit = lim
	return si
}

func (a *Aggregator) newSeries(tid uint32, out uint64, row int, mid, sp uint32, attrs string) uint32 {
	var si uint32
	if n := len(a.seriesFree); n > 0 {
		si = a.seriesFree[n-1]
		a.seriesFree = a.seriesFree[:n-1]
	} else {
		a.series = appendSlot(a.series)
		si = uint32(len(a.series) - 1)
	}
	mi := &a.met[mid]
	if mi.hdr < 0 {
		mi.hdr = int32(a.headerFor(int(mid)))
	}
	h := uint32(mi.hdr)
	a.hdrs[h].refs++
	s := &a.series[si]
	*s = series{
		out: out, tenant: tid, spec: uint16(sp), hdr: h,
		flags: sAlive, attrs: attrs, open: s.open[:0], seen: a.seenAt,
	}
	if mi.kind == schemas.MetricHistogram || mi.kind == schemas.MetricExponentialHistogram || mi.kind == schemas.MetricSummary {
		s.h = &histState{}
		if mi.kind == schemas.MetricHistogram {
			s.h.bounds = slices.Clone(a.boundsOf(row))
		}
	}
	a.seriesIdx[seriesKey{tid, h64(out)}] = si
	return si
}

func (a *Aggregator) headerFor(mid int) uint32 {
	var cut [3]uint32
	mi := &a.met[mid]
	a.scratch, cut = appendHeader(a.scratch[:0], &a.c, mid)
	a.scratch = append(a.scratch, mi.kind)
	a.scratch = binary.LittleEndian.AppendUint32(a.scratch, uint32(mi.temp))
	a.scratch = append(a.scratch, boolFlag(mi.mono, 1))
	if h, ok := a.hdrIdx[string(a.scratch)]; ok {
		return h
	}
	hd := header{blob: string(a.scratch), cut: cut, kind: mi.kind, temp: mi.temp, mono: mi.mono}
	var h uint32
	if n := len(a.hdrFree); n > 0 {
		h = a.hdrFree[n-1]
		a.hdrFree = a.hdrFree[:n-1]
		a.hdrs[h] = hd
	} else {
		a.hdrs = append(a.hdrs, hd)
		h = uint32(len(a.hdrs) - 1)
	}
	a.hdrIdx[hd.blob] = h
	return h
}

// inputMemo remembers, within one Add, the inputs its points found: a
// record brings each of its series' points several times (a batch holds
// several steps of a backlog), and a direct-mapped table is cheaper than
// looking the input up in inputIdx again. Entries of an earlier Add are
// stale (their gen), as sweep, the only one to remove inputs, runs between
// Adds.
type inputMemo [inputMemoSize]inputMemoEntry

type inputMemoEntry struct {
	in, out uint64
	ii, gen uint32
}

// inputMemoSize: 4,096 entries of 24 bytes, within a core's L2 cache.
const inputMemoSize = 1 << 12

// newMemo starts the memo of an Add.
func (a *Aggregator) newMemo() {
	if a.memo == nil {
		a.memo = new(inputMemo)
	}
	if a.memoGen++; a.memoGen == 0 {
		clear(a.memo[:])
		a.memoGen = 1
	}
}

func (a *Aggregator) memoOf(in, out uint64) *inputMemoEntry {
	return &a.memo[(in^out>>17)&(inputMemoSize-1)]
}

func (a *Aggregator) newInput(key inputKey, si uint32) uint32 {
	var ii uint32
	if n := len(a.inputFree); n > 0 {
		ii = a.inputFree[n-1]
		a.inputFree = a.inputFree[:n-1]
	} else {
		a.inputs = appendSlot(a.inputs)
		ii = uint32(len(a.inputs) - 1)
	}
	a.inputs[ii] = input{in: key.in.u64(), series: si, flags: iAlive, seen: a.seenAt}
	a.inputIdx[key] = ii
	return ii
}

// sweep forgets stale inputs and series (see Config.Stale).
func (a *Aggregator) sweep() {
	stale := int64(a.cfg.Stale)
	for si := range a.series {
		s := &a.series[si]
		if s.flags&sAlive == 0 || len(s.open) > 0 || a.wm-s.seen < stale {
			continue
		}
		a.freeSeries(uint32(si))
	}
	for k, si := range a.seriesIdx {
		if a.series[si].flags&sAlive == 0 {
			delete(a.seriesIdx, k)
		}
	}
	n, nd := len(a.inputFree), len(a.distFree)
	for k, ii := range a.inputIdx {
		inp := &a.inputs[ii]
		s := &a.series[inp.series]
		if s.flags&sAlive != 0 && a.wm-inp.seen < stale {
			continue
		}
		if inp.d != 0 {
			a.freeDist(inp.d)
		}
		*inp = input{}
		delete(a.inputIdx, k)
		a.inputFree = append(a.inputFree, ii)
	}
	// map order is random: keep the free lists (the order of reuse) deterministic
	desc := func(x, y uint32) int { return int(int64(y) - int64(x)) }
	if len(a.inputFree) > n {
		slices.SortFunc(a.inputFree, desc)
	}
	if len(a.distFree) > nd {
		slices.SortFunc(a.distFree, desc)
	}
}

func (a *Aggregator) freeSeries(si uint32) {
	s := &a.series[si]
	if s.limit != 0 {
		L := &a.limits[s.limit-1]
		if s.flags&sOverflow != 0 {
			L.overflow = 0
		} else {
			L.n--
		}
	}
	h := &a.hdrs[s.hdr]
	if h.refs--; h.refs == 0 {
		delete(a.hdrIdx, h.blob)
		*h = header{}
		a.hdrFree = append(a.hdrFree, s.hdr)
	}
	*s = series{open: s.open[:0]}
	a.seriesFree = append(a.seriesFree, si)
}
