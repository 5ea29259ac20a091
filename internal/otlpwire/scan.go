package otlpwire

import (
	"cmp"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
)

// The scanner walks a request once, validates every message on the way from
// the request down to the items and counts the items. For Split it also
// records an index of the request, as byte ranges into the body, and the
// partition of every resource (or item); the packer then builds chunks from
// the index, copying byte ranges of the body without parsing it again.
//
// Levels of the index (the nesting depth of a message in the request):
//
//	0 request
//	1 ResourceMetrics / ResourceLogs / ResourceSpans   res
//	2 ScopeMetrics / ScopeLogs / ScopeSpans            scopes
//	3 Metric (metrics) or LogRecord / Span (items)     metrics, items
//	4 Gauge / Sum / ... in a Metric                    (part of metrics)
//	5 data point                                       items
//
// Offsets are int32: Split refuses bodies of 2 GiB or more.

// rng is a byte range of the body.
type rng struct{ off, end int32 }

// hdrRef locates the header of a message in scanner.hdrs: the byte ranges of
// all its fields other than its children, which every piece of a split
// message repeats. n is their total size.
type hdrRef struct{ lo, hi, n int32 }

type resNode struct {
	off, end int32 // the whole field, tag included
	hdr      hdrRef
	lo, hi   int32 // its scopes: scopes[lo:hi]
	items    int32
	part     int32
	bad      int32 // items that break the limits (Options.Check)
	// dirty: it holds a scope or metric without items whose attributes
	// break the limits; the packer cuts it to leave that out.
	dirty bool
}

type scopeNode struct {
	off, end int32
	hdr      hdrRef
	lo, hi   int32 // its metrics (metrics[lo:hi]) or items (items[lo:hi])
	items    int32
	part     int32
	parent   int32
	bad      int32
	dirty    bool // as resNode's
}

type metricNode struct {
	off, end int32
	hdr      hdrRef   // fields of the Metric other than the data message
	data     hdrRef   // fields of the data message(s) other than data_points
	dataNum  FieldNum // Metric field of the data message: MetricGauge, MetricSum...
	lo, hi   int32    // its data points: items[lo:hi]
	parent   int32
	bad      int32
}

// itemNode is a data point, log record or span.
type itemNode struct {
	off, end int32
	part     int32 // KeyTraceID only
	parent   int32 // scope (logs, traces) or metric (metrics)
	bad      bool  // breaks the limits (Options.Check): rejected, in no chunk
}

// unit is a run of the request that goes to one partition as a whole: a
// resource, or with KeyTraceID a scope or an item whose resource mixes
// partitions.
type unit struct {
	off   int32 // where it starts in the body; orders units
	idx   int32
	part  int32
	level uint8
}

// Partition markers; real partitions are >= 0, and -1 is KeyNone's.
const (
	partNone     = -3 // no items
	partMixed    = -2 // items in more than one partition
	partResource = -4 // KeyTraceID item without a trace id, waiting for its resource's partition
)

type scanner struct {
	b   []byte
	sig Signal
	rec bool // record the index (Split), or only validate and count (Count)

	key    KeyMode
	nparts uint64

	nitems int

	// check: check every item against the limits (limits.go). nbad
	// counts the items that break them; badReason describes the first.
	check     bool
	nbad      int
	badReason string
	pi        int // index of the data point in its metric, for paths
	// outerBad describes a bad attribute of the resource, scope or metric
	// being scanned: every item in it is rejected (the decoder refuses the
	// attributes, and so the items, as a whole).
	resBad, scopeBad, metricBad string
	// ndirty counts the scopes and metrics without items that the
	// decoder would refuse for their attributes, and resDirty and
	// scopeDirty say the resource and scope being scanned hold one.
	ndirty               int
	resDirty, scopeDirty bool

	// The index; only with rec.
	reqHdr  hdrRef
	res     []resNode
	scopes  []scopeNode
	metrics []metricNode
	items   []itemNode
	hdrs    []rng
	open    [5][]rng // header ranges of the message being scanned, by level
	units   []unit
	parts   int // distinct unit partitions seen: 0, 1 or 2 (meaning more)

	// Where the scanner is, for error paths: the index of the resource,
	// scope and metric/item among their siblings, and the data message.
	ri, si, ci int
	dataNum    FieldNum
}

func (s *scanner) reset(sig Signal, body []byte, rec bool, key KeyMode, nparts int32) {
	s.b, s.sig, s.rec, s.key, s.nparts = body, sig, rec, key, uint64(nparts)
	s.nitems, s.parts = 0, 0
	s.nbad, s.badReason, s.ndirty = 0, "", 0
	s.ri, s.si, s.ci, s.dataNum = 0, 0, 0, 0
	s.reqHdr = hdrRef{}
	s.res, s.scopes, s.metrics, s.items = s.res[:0], s.scopes[:0], s.metrics[:0], s.items[:0]
	s.hdrs, s.units = s.hdrs[:0], s.units[:0]
	for i := range s.open {
		s.open[i] = s.open[i][:0]
	}
}

// hdr adds b[off:end], a field of the message being scanned at level, to its
// header. Adjacent fields merge into one range.
func (s *scanner) hdr(level, off, end int) {
	if !s.rec {
		return
	}
	t := s.open[level]
	if n := len(t); n > 0 && t[n-1].end == int32(off) {
		t[n-1].end = int32(end)
		return
	}
	s.open[level] = append(t, rng{int32(off), int32(end)})
}

// closeHdr files the header collected at level and starts a new one.
func (s *scanner) closeHdr(level int) hdrRef {
	if !s.rec {
		return hdrRef{}
	}
	h := hdrRef{lo: int32(len(s.hdrs))}
	for _, r := range s.open[level] {
		h.n += r.end - r.off
	}
	s.hdrs = append(s.hdrs, s.open[level]...)
	h.hi = int32(len(s.hdrs))
	s.open[level] = s.open[level][:0]
	return h
}

// request scans the request: its resources, and its other fields as its
// header.
//
//	message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
//	message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
//	message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
func (s *scanner) request() error {
	b := s.b
	nr := 0
	for i := 0; i < len(b); {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return s.fail(kRequest, b, i, code)
		}
		if f.Num == RequestResourceX {
			if f.Type != WireLen {
				return s.wrongType(kRequest, i, f)
			}
			s.ri = nr
			nr++
			if err := s.resourceX(i, f.Val, f.End); err != nil {
				return err
			}
		} else {
			s.hdr(0, i, f.End)
		}
		i = f.End
	}
	s.reqHdr = s.closeHdr(0)
	return nil
}

// resourceX scans the ResourceMetrics/Logs/Spans whose field is
// s.b[off:end] and value s.b[val:end].
//
//	message ResourceMetrics {
//	  Resource resource = 1;
//	  repeated ScopeMetrics scope_metrics = 2; // ScopeLogs scope_logs, ScopeSpans scope_spans
//	  string schema_url = 3;
//	}
func (s *scanner) resourceX(off, val, end int) error {
	b := s.b[:end]
	r := resNode{off: int32(off), end: int32(end), lo: int32(len(s.scopes))}
	itemLo := len(s.items)
	bad0 := s.nbad
	s.resBad, s.resDirty = "", false
	if s.check {
		s.resBad = s.outerBad(val, end, ResourceXResource, ResourceAttributes, 1)
	}
	var hash uint64
	ns := 0
	for i := val; i < end; {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return s.fail(kResourceX, b, i, code)
		}
		switch f.Num {
		case ResourceXResource:
			if f.Type != WireLen {
				return s.wrongType(kResourceX, i, f)
			}
			if err := s.resource(f.Val, f.End, &hash); err != nil {
				return err
			}
			s.hdr(1, i, f.End)
		case ResourceXScopeX:
			if f.Type != WireLen {
				return s.wrongType(kResourceX, i, f)
			}
			s.si = ns
			ns++
			n, err := s.scopeX(i, f.Val, f.End)
			if err != nil {
				return err
			}
			r.items += n
		case ResourceXSchemaURL:
			if f.Type != WireLen {
				return s.wrongType(kResourceX, i, f)
			}
			if !utf8.Valid(b[f.Val:f.End]) {
				return s.badUTF8(kResourceX, i, f.Num)
			}
			s.hdr(1, i, f.End)
		default:
			s.hdr(1, i, f.End)
		}
		i = f.End
	}
	if s.resBad != "" && r.items == 0 {
		s.ndirty++ // left out, as it has no items to place
	}
	if !s.rec {
		return nil
	}
	r.hi = int32(len(s.scopes))
	r.hdr = s.closeHdr(1)
	r.bad = int32(s.nbad - bad0)
	r.dirty = s.resDirty
	switch s.key {
	case KeyNone:
		r.part = -1
	case KeyResource:
		r.part = int32(hash % s.nparts)
	case KeyTraceID:
		r.part = s.settleParts(r.lo, r.hi, itemLo, int32(hash%s.nparts))
	}
	s.res = append(s.res, r)
	s.addUnits(int32(len(s.res) - 1))
	return nil
}

// resource scans a Resource, adding the hash of each attribute to *hash.
//
//	message Resource {
//	  repeated KeyValue attributes = 1;
//	  uint32 dropped_attributes_count = 2;
//	  repeated EntityRef entity_refs = 3;
//	}
func (s *scanner) resource(val, end int, hash *uint64) error {
	b := s.b[:end]
	for i := val; i < end; {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return s.fail(kResource, b, i, code)
		}
		switch f.Num {
		case ResourceAttributes:
			if f.Type != WireLen {
				return s.wrongType(kResource, i, f)
			}
			if s.rec {
				*hash += xxhash.Sum64(b[f.Val:f.End])
			}
		case ResourceDroppedAttributesCount:
			if f.Type != WireVarint {
				return s.wrongType(kResource, i, f)
			}
		case ResourceEntityRefs:
			if f.Type != WireLen {
				return s.wrongType(kResource, i, f)
			}
		}
		i = f.End
	}
	return nil
}

// scopeX scans a ScopeMetrics/Logs/Spans and returns its number of items.
//
//	message ScopeMetrics {
//	  InstrumentationScope scope = 1;
//	  repeated Metric metrics = 2; // LogRecord log_records, Span spans
//	  string schema_url = 3;
//	}
func (s *scanner) scopeX(off, val, end int) (int32, error) {
	b := s.b[:end]
	sc := scopeNode{off: int32(off), end: int32(end), parent: int32(len(s.res))}
	self := int32(len(s.scopes))
	bad0 := s.nbad
	s.scopeBad, s.scopeDirty = "", false
	if s.check {
		s.scopeBad = s.outerBad(val, end, ScopeXScope, InstrumentationScopeAttributes, 2)
	}
	if s.sig == Metrics {
		sc.lo = int32(len(s.metrics))
	} else {
		sc.lo = int32(len(s.items))
	}
	nc := 0
	for i := val; i < end; {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return 0, s.fail(kScopeX, b, i, code)
		}
		switch f.Num {
		case ScopeXScope:
			if f.Type != WireLen {
				return 0, s.wrongType(kScopeX, i, f)
			}
			if err := s.scope(f.Val, f.End); err != nil {
				return 0, err
			}
			s.hdr(2, i, f.End)
		case ScopeXItems:
			if f.Type != WireLen {
				return 0, s.wrongType(kScopeX, i, f)
			}
			s.ci = nc
			nc++
			if s.sig == Metrics {
				n, err := s.metric(i, f.Val, f.End, self)
				if err != nil {
					return 0, err
				}
				sc.items += n
			} else {
				if err := s.item(i, f.Val, f.End, self); err != nil {
					return 0, err
				}
				sc.items++
			}
		case ScopeXSchemaURL:
			if f.Type != WireLen {
				return 0, s.wrongType(kScopeX, i, f)
			}
			if !utf8.Valid(b[f.Val:f.End]) {
				return 0, s.badUTF8(kScopeX, i, f.Num)
			}
			s.hdr(2, i, f.End)
		default:
			s.hdr(2, i, f.End)
		}
		i = f.End
	}
	if s.scopeBad != "" && sc.items == 0 {
		s.ndirty++
		s.resDirty = true
	} else if s.scopeDirty {
		s.resDirty = true
	}
	if s.rec {
		sc.dirty = s.scopeDirty
		if s.sig == Metrics {
			sc.hi = int32(len(s.metrics))
		} else {
			sc.hi = int32(len(s.items))
		}
		sc.hdr = s.closeHdr(2)
		sc.bad = int32(s.nbad - bad0)
		s.scopes = append(s.scopes, sc)
	}
	return sc.items, nil
}

// scope scans an InstrumentationScope.
//
//	message InstrumentationScope {
//	  string name = 1;
//	  string version = 2;
//	  repeated KeyValue attributes = 3;
//	  uint32 dropped_attributes_count = 4;
//	}
func (s *scanner) scope(val, end int) error {
	b := s.b[:end]
	for i := val; i < end; {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return s.fail(kScope, b, i, code)
		}
		switch f.Num {
		case InstrumentationScopeName, InstrumentationScopeVersion:
			if f.Type != WireLen {
				return s.wrongType(kScope, i, f)
			}
			if !utf8.Valid(b[f.Val:f.End]) {
				return s.badUTF8(kScope, i, f.Num)
			}
		case InstrumentationScopeAttributes:
			if f.Type != WireLen {
				return s.wrongType(kScope, i, f)
			}
		case InstrumentationScopeDroppedAttributesCount:
			if f.Type != WireVarint {
				return s.wrongType(kScope, i, f)
			}
		}
		i = f.End
	}
	return nil
}

// metric scans a Metric and returns its number of data points.
//
//	message Metric {
//	  string name = 1;
//	  string description = 2;
//	  string unit = 3;
//	  oneof data {
//	    Gauge gauge = 5;
//	    Sum sum = 7;
//	    Histogram histogram = 9;
//	    ExponentialHistogram exponential_histogram = 10;
//	    Summary summary = 11;
//	  }
//	  repeated KeyValue metadata = 12;
//	}
func (s *scanner) metric(off, val, end int, parent int32) (int32, error) {
	b := s.b[:end]
	m := metricNode{off: int32(off), end: int32(end), parent: parent, lo: int32(len(s.items))}
	self := int32(len(s.metrics))
	bad0 := s.nbad
	s.pi = 0
	s.metricBad = ""
	if s.check {
		s.metricBad = s.outerBad(val, end, MetricMetadata, 0, 3)
	}
	var items int32
	for i := val; i < end; {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return 0, s.fail(kMetric, b, i, code)
		}
		switch f.Num {
		case MetricName, MetricDescription, MetricUnit:
			if f.Type != WireLen {
				return 0, s.wrongType(kMetric, i, f)
			}
			if !utf8.Valid(b[f.Val:f.End]) {
				return 0, s.badUTF8(kMetric, i, f.Num)
			}
			s.hdr(3, i, f.End)
		case MetricGauge, MetricSum, MetricHistogram, MetricExponentialHistogram, MetricSummary:
			if f.Type != WireLen {
				return 0, s.wrongType(kMetric, i, f)
			}
			if m.dataNum != 0 && m.dataNum != f.Num {
				// A oneof: proto.Unmarshal would keep only the last and
				// drop the other's data points without a word.
				return 0, s.errorf(kMetric, i, "%s and %s both set; a metric has one data field",
					s.describe(kMetric, m.dataNum), s.describe(kMetric, f.Num))
			}
			m.dataNum = f.Num
			s.dataNum = f.Num
			n, err := s.data(f.Val, f.End, self)
			if err != nil {
				return 0, err
			}
			items += n
		case MetricMetadata:
			if f.Type != WireLen {
				return 0, s.wrongType(kMetric, i, f)
			}
			s.hdr(3, i, f.End)
		default:
			s.hdr(3, i, f.End)
		}
		i = f.End
	}
	if s.metricBad != "" && items == 0 {
		s.ndirty++
		s.scopeDirty = true
	}
	if s.rec {
		m.hi = int32(len(s.items))
		m.hdr = s.closeHdr(3)
		m.data = s.closeHdr(4)
		m.bad = int32(s.nbad - bad0)
		s.metrics = append(s.metrics, m)
	}
	return items, nil
}

// data scans the data message (Gauge, Sum, ...) of a Metric. A Metric may
// hold its data message in more than one field (proto.Unmarshal merges
// them); their headers and data points add up.
//
//	message Sum {
//	  repeated NumberDataPoint data_points = 1;
//	  AggregationTemporality aggregation_temporality = 2;
//	  bool is_monotonic = 3;
//	}
//
// The other four have their own type of data points as field 1, Histogram
// and ExponentialHistogram also aggregation_temporality as field 2.
func (s *scanner) data(val, end int, parent int32) (int32, error) {
	b := s.b[:end]
	var n int32
	for i := val; i < end; {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return 0, s.fail(kData, b, i, code)
		}
		switch {
		case f.Num == DataPoints:
			if f.Type != WireLen {
				return 0, s.wrongType(kData, i, f)
			}
			bad := s.check && s.checkItem(b[f.Val:f.End])
			if s.rec {
				s.items = append(s.items, itemNode{off: int32(i), end: int32(f.End), parent: parent, bad: bad})
			}
			s.pi++
			n++
			s.nitems++
			i = f.End
			continue
		case f.Num == DataAggregationTemporality && hasTemporality(s.dataNum),
			f.Num == SumIsMonotonic && s.dataNum == MetricSum:
			if f.Type != WireVarint {
				return 0, s.wrongType(kData, i, f)
			}
		}
		s.hdr(4, i, f.End)
		i = f.End
	}
	return n, nil
}

// item records a log record or span. With KeyTraceID it reads the item's
// top-level fields for the trace id.
func (s *scanner) item(off, val, end int, parent int32) error {
	s.nitems++
	bad := s.check && s.checkItem(s.b[val:end])
	if !s.rec {
		return nil
	}
	it := itemNode{off: int32(off), end: int32(end), parent: parent, bad: bad}
	if s.key == KeyTraceID {
		id, err := s.traceID(val, end)
		if err != nil {
			return err
		}
		if len(id) == 0 {
			it.part = partResource
		} else {
			it.part = int32(xxhash.Sum64(id) % s.nparts)
		}
	}
	s.items = append(s.items, it)
	return nil
}

func (s *scanner) traceIDField() FieldNum {
	if s.sig == Logs {
		return LogRecordTraceID
	}
	return SpanTraceID
}

// traceID returns the trace_id of a LogRecord or Span: the last one, as
// proto.Unmarshal would.
//
//	message LogRecord { bytes trace_id = 9; }
//	message Span { bytes trace_id = 1; }
func (s *scanner) traceID(val, end int) ([]byte, error) {
	b := s.b[:end]
	want := s.traceIDField()
	var id []byte
	for i := val; i < end; {
		f, code := ReadField(b, i)
		if code != ReadOK {
			return nil, s.fail(kItem, b, i, code)
		}
		if f.Num == want {
			if f.Type != WireLen {
				return nil, s.wrongType(kItem, i, f)
			}
			id = b[f.Val:f.End]
		}
		i = f.End
	}
	return id, nil
}

// settleParts gives the items of the resource just scanned that have no
// trace id the resource's partition, works out the partition of each of its
// scopes (scopes[lo:hi], items from itemLo) and returns the resource's.
func (s *scanner) settleParts(lo, hi int32, itemLo int, resPart int32) int32 {
	items := s.items[itemLo:]
	for i := range items {
		if items[i].part == partResource {
			items[i].part = resPart
		}
	}
	part := int32(partNone)
	for i := lo; i < hi; i++ {
		sc := &s.scopes[i]
		p := int32(partNone)
		for _, it := range s.items[sc.lo:sc.hi] {
			p = mergePart(p, it.part)
		}
		sc.part = p
		part = mergePart(part, p)
	}
	return part
}

func mergePart(a, b int32) int32 {
	switch {
	case a == partNone:
		return b
	case b == partNone, a == b:
		return a
	}
	return partMixed
}

// addUnits cuts the resource res[ri] into units: the whole resource when all
// its items go to one partition, else its scopes that do, and the items of
// the rest. Messages without items make no unit.
func (s *scanner) addUnits(ri int32) {
	r := &s.res[ri]
	if r.items == 0 {
		return
	}
	if r.part != partMixed {
		s.addUnit(unit{off: r.off, idx: ri, part: r.part, level: 1})
		return
	}
	for si := r.lo; si < r.hi; si++ {
		sc := &s.scopes[si]
		switch sc.part {
		case partNone:
		case partMixed:
			for ii := sc.lo; ii < sc.hi; ii++ {
				it := &s.items[ii]
				s.addUnit(unit{off: it.off, idx: ii, part: it.part, level: 3})
			}
		default:
			s.addUnit(unit{off: sc.off, idx: si, part: sc.part, level: 2})
		}
	}
}

func (s *scanner) addUnit(u unit) {
	switch {
	case len(s.units) == 0:
		s.parts = 1
	case u.part != s.units[0].part:
		s.parts = 2
	}
	s.units = append(s.units, u)
}

// checkItem checks the item (its value, without tag and length) at the
// scanner's position against the limits, counts it if it breaks them and
// describes the first such item. It allocates only for that description.
func (s *scanner) checkItem(item []byte) bool {
	if outer := cmp.Or(s.resBad, s.scopeBad, s.metricBad); outer != "" {
		s.nbad++
		if s.nbad == 1 {
			s.badReason = outer
		}
		return true
	}
	pr := CheckItem(s.sig, s.dataNum, item)
	if pr.Problem == ProblemNone {
		return false
	}
	s.nbad++
	if s.nbad > 1 {
		return true
	}
	n := &names[s.sig]
	var b strings.Builder
	fmt.Fprintf(&b, "%s[%d].%s[%d].%s[%d]", n.resources, s.ri, n.scopes, s.si, n.items, s.ci)
	if s.sig == Metrics {
		fmt.Fprintf(&b, ".%s.data_points[%d]", dataName(s.dataNum), s.pi)
	}
	b.WriteString(pr.Path(s.sig, s.dataNum))
	b.WriteString(": ")
	b.WriteString(pr.Problem.String())
	s.badReason = b.String()
	return true
}

// outerBad checks the attributes that apply to every item of the message
// s.b[val:end], before the scanner reaches its items, wherever they are in
// the wire order: those of its field holder (a ResourceX's resource, a
// ScopeX's scope), or with attrs 0 the KeyValues in holder themselves (a
// Metric's metadata). level is outerAttr's. It describes the first bad one;
// "" if none. Framing errors are left to the scanner's walk.
func (s *scanner) outerBad(val, end int, holder, attrs FieldNum, level int) string {
	b := s.b[:end]
	for i := val; i < end; {
		f, code := next(b, i)
		if code != ReadOK {
			return ""
		}
		i = f.End
		if f.Num != holder || f.Type != WireLen {
			continue
		}
		if attrs == 0 {
			if r := s.outerAttr(b[f.Val:f.End], level); r != "" {
				return r
			}
			continue
		}
		q := b[f.Val:f.End]
		for j := 0; j < len(q); {
			g, code := next(q, j)
			if code != ReadOK {
				return ""
			}
			j = g.End
			if g.Num == attrs && g.Type == WireLen {
				if r := s.outerAttr(q[g.Val:g.End], level); r != "" {
					return r
				}
			}
		}
	}
	return ""
}

// outerAttr checks kv, an attribute of the resource (level 1) or scope (2)
// being scanned or a metadata entry of the metric (3), and describes what
// is wrong; "" if nothing. It allocates only for that description.
func (s *scanner) outerAttr(kv []byte, level int) string {
	pr, fld := CheckKeyValue(kv)
	if pr == ProblemNone {
		return ""
	}
	n := &names[s.sig]
	var path string
	switch level {
	case 1:
		path = fmt.Sprintf("%s[%d].resource.attributes", n.resources, s.ri)
	case 2:
		path = fmt.Sprintf("%s[%d].%s[%d].scope.attributes", n.resources, s.ri, n.scopes, s.si)
	default:
		path = fmt.Sprintf("%s[%d].%s[%d].metrics[%d].metadata", n.resources, s.ri, n.scopes, s.si, s.ci)
	}
	name := "value"
	if fld == KeyValueKey {
		name = "key"
	} else if fld != KeyValueValue {
		name = fmt.Sprintf("field %d", fld)
	}
	return fmt.Sprintf("%s: an entry's %s: %v (every item in it is rejected)", path, name, pr)
}
