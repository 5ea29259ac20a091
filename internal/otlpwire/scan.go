package otlpwire

import (
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
}

type scopeNode struct {
	off, end int32
	hdr      hdrRef
	lo, hi   int32 // its metrics (metrics[lo:hi]) or items (items[lo:hi])
	items    int32
	part     int32
	parent   int32
}

type metricNode struct {
	off, end int32
	hdr      hdrRef // fields of the Metric other than the data message
	data     hdrRef // fields of the data message(s) other than data_points
	dataNum  uint32 // field number of the data message: 5, 7, 9, 10 or 11
	lo, hi   int32  // its data points: items[lo:hi]
	parent   int32
}

// itemNode is a data point, log record or span.
type itemNode struct {
	off, end int32
	part     int32 // KeyTraceID only
	parent   int32 // scope (logs, traces) or metric (metrics)
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
	dataNum    uint32
}

func (s *scanner) reset(sig Signal, body []byte, rec bool, key KeyMode, nparts int32) {
	s.b, s.sig, s.rec, s.key, s.nparts = body, sig, rec, key, uint64(nparts)
	s.nitems, s.parts = 0, 0
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

func (s *scanner) request() error {
	b := s.b
	nr := 0
	for i := 0; i < len(b); {
		num, typ, val, end, code := readField(b, i)
		if code != errNone {
			return s.fail(kRequest, b, i, code)
		}
		if num == 1 {
			if typ != wireLen {
				return s.wrongType(kRequest, i, num, typ)
			}
			s.ri = nr
			nr++
			if err := s.resourceX(i, val, end); err != nil {
				return err
			}
		} else {
			s.hdr(0, i, end)
		}
		i = end
	}
	s.reqHdr = s.closeHdr(0)
	return nil
}

// resourceX scans the ResourceMetrics/Logs/Spans whose field is
// s.b[off:end] and value s.b[val:end].
func (s *scanner) resourceX(off, val, end int) error {
	b := s.b[:end]
	r := resNode{off: int32(off), end: int32(end), lo: int32(len(s.scopes))}
	itemLo := len(s.items)
	var hash uint64
	ns := 0
	for i := val; i < end; {
		num, typ, v, e, code := readField(b, i)
		if code != errNone {
			return s.fail(kResourceX, b, i, code)
		}
		switch num {
		case 1: // resource
			if typ != wireLen {
				return s.wrongType(kResourceX, i, num, typ)
			}
			if err := s.resource(v, e, &hash); err != nil {
				return err
			}
			s.hdr(1, i, e)
		case 2: // scope_metrics, scope_logs, scope_spans
			if typ != wireLen {
				return s.wrongType(kResourceX, i, num, typ)
			}
			s.si = ns
			ns++
			n, err := s.scopeX(i, v, e)
			if err != nil {
				return err
			}
			r.items += n
		case 3: // schema_url
			if typ != wireLen {
				return s.wrongType(kResourceX, i, num, typ)
			}
			if !utf8.Valid(b[v:e]) {
				return s.badUTF8(kResourceX, i, num)
			}
			s.hdr(1, i, e)
		default:
			s.hdr(1, i, e)
		}
		i = e
	}
	if !s.rec {
		return nil
	}
	r.hi = int32(len(s.scopes))
	r.hdr = s.closeHdr(1)
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
func (s *scanner) resource(val, end int, hash *uint64) error {
	b := s.b[:end]
	for i := val; i < end; {
		num, typ, v, e, code := readField(b, i)
		if code != errNone {
			return s.fail(kResource, b, i, code)
		}
		switch num {
		case 1: // attributes
			if typ != wireLen {
				return s.wrongType(kResource, i, num, typ)
			}
			if s.rec {
				*hash += xxhash.Sum64(b[v:e])
			}
		case 2: // dropped_attributes_count
			if typ != wireVarint {
				return s.wrongType(kResource, i, num, typ)
			}
		case 3: // entity_refs
			if typ != wireLen {
				return s.wrongType(kResource, i, num, typ)
			}
		}
		i = e
	}
	return nil
}

// scopeX scans a ScopeMetrics/Logs/Spans and returns its number of items.
func (s *scanner) scopeX(off, val, end int) (int32, error) {
	b := s.b[:end]
	sc := scopeNode{off: int32(off), end: int32(end), parent: int32(len(s.res))}
	self := int32(len(s.scopes))
	if s.sig == Metrics {
		sc.lo = int32(len(s.metrics))
	} else {
		sc.lo = int32(len(s.items))
	}
	nc := 0
	for i := val; i < end; {
		num, typ, v, e, code := readField(b, i)
		if code != errNone {
			return 0, s.fail(kScopeX, b, i, code)
		}
		switch num {
		case 1: // scope
			if typ != wireLen {
				return 0, s.wrongType(kScopeX, i, num, typ)
			}
			if err := s.scope(v, e); err != nil {
				return 0, err
			}
			s.hdr(2, i, e)
		case 2: // metrics, log_records, spans
			if typ != wireLen {
				return 0, s.wrongType(kScopeX, i, num, typ)
			}
			s.ci = nc
			nc++
			if s.sig == Metrics {
				n, err := s.metric(i, v, e, self)
				if err != nil {
					return 0, err
				}
				sc.items += n
			} else {
				if err := s.item(i, v, e, self); err != nil {
					return 0, err
				}
				sc.items++
			}
		case 3: // schema_url
			if typ != wireLen {
				return 0, s.wrongType(kScopeX, i, num, typ)
			}
			if !utf8.Valid(b[v:e]) {
				return 0, s.badUTF8(kScopeX, i, num)
			}
			s.hdr(2, i, e)
		default:
			s.hdr(2, i, e)
		}
		i = e
	}
	if s.rec {
		if s.sig == Metrics {
			sc.hi = int32(len(s.metrics))
		} else {
			sc.hi = int32(len(s.items))
		}
		sc.hdr = s.closeHdr(2)
		s.scopes = append(s.scopes, sc)
	}
	return sc.items, nil
}

// scope scans an InstrumentationScope.
func (s *scanner) scope(val, end int) error {
	b := s.b[:end]
	for i := val; i < end; {
		num, typ, v, e, code := readField(b, i)
		if code != errNone {
			return s.fail(kScope, b, i, code)
		}
		switch num {
		case 1, 2: // name, version
			if typ != wireLen {
				return s.wrongType(kScope, i, num, typ)
			}
			if !utf8.Valid(b[v:e]) {
				return s.badUTF8(kScope, i, num)
			}
		case 3: // attributes
			if typ != wireLen {
				return s.wrongType(kScope, i, num, typ)
			}
		case 4: // dropped_attributes_count
			if typ != wireVarint {
				return s.wrongType(kScope, i, num, typ)
			}
		}
		i = e
	}
	return nil
}

// metric scans a Metric and returns its number of data points.
func (s *scanner) metric(off, val, end int, parent int32) (int32, error) {
	b := s.b[:end]
	m := metricNode{off: int32(off), end: int32(end), parent: parent, lo: int32(len(s.items))}
	self := int32(len(s.metrics))
	var items int32
	for i := val; i < end; {
		num, typ, v, e, code := readField(b, i)
		if code != errNone {
			return 0, s.fail(kMetric, b, i, code)
		}
		switch num {
		case 1, 2, 3: // name, description, unit
			if typ != wireLen {
				return 0, s.wrongType(kMetric, i, num, typ)
			}
			if !utf8.Valid(b[v:e]) {
				return 0, s.badUTF8(kMetric, i, num)
			}
			s.hdr(3, i, e)
		case 5, 7, 9, 10, 11: // gauge, sum, histogram, exponential_histogram, summary
			if typ != wireLen {
				return 0, s.wrongType(kMetric, i, num, typ)
			}
			if m.dataNum != 0 && m.dataNum != num {
				// A oneof: proto.Unmarshal would keep only the last and
				// drop the other's data points without a word.
				return 0, s.errorf(kMetric, i, "%s and %s both set; a metric has one data field",
					s.describe(kMetric, m.dataNum), s.describe(kMetric, num))
			}
			m.dataNum = num
			s.dataNum = num
			n, err := s.data(v, e, self)
			if err != nil {
				return 0, err
			}
			items += n
		case 12: // metadata
			if typ != wireLen {
				return 0, s.wrongType(kMetric, i, num, typ)
			}
			s.hdr(3, i, e)
		default:
			s.hdr(3, i, e)
		}
		i = e
	}
	if s.rec {
		m.hi = int32(len(s.items))
		m.hdr = s.closeHdr(3)
		m.data = s.closeHdr(4)
		s.metrics = append(s.metrics, m)
	}
	return items, nil
}

// data scans the data message (Gauge, Sum, ...) of a Metric. A Metric may
// hold its data message in more than one field (proto.Unmarshal merges
// them); their headers and data points add up.
func (s *scanner) data(val, end int, parent int32) (int32, error) {
	b := s.b[:end]
	var n int32
	for i := val; i < end; {
		num, typ, _, e, code := readField(b, i)
		if code != errNone {
			return 0, s.fail(kData, b, i, code)
		}
		switch {
		case num == 1: // data_points
			if typ != wireLen {
				return 0, s.wrongType(kData, i, num, typ)
			}
			if s.rec {
				s.items = append(s.items, itemNode{off: int32(i), end: int32(e), parent: parent})
			}
			n++
			s.nitems++
			i = e
			continue
		case num == 2 && hasTemporality(s.dataNum), // aggregation_temporality
			num == 3 && s.dataNum == 7: // is_monotonic
			if typ != wireVarint {
				return 0, s.wrongType(kData, i, num, typ)
			}
		}
		s.hdr(4, i, e)
		i = e
	}
	return n, nil
}

// item records a log record or span. With KeyTraceID it reads the item's
// top-level fields for the trace id.
func (s *scanner) item(off, val, end int, parent int32) error {
	s.nitems++
	if !s.rec {
		return nil
	}
	it := itemNode{off: int32(off), end: int32(end), parent: parent}
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

func (s *scanner) traceIDField() uint32 {
	if s.sig == Logs {
		return 9
	}
	return 1
}

// traceID returns the trace_id of a LogRecord or Span: the last one, as
// proto.Unmarshal would.
func (s *scanner) traceID(val, end int) ([]byte, error) {
	b := s.b[:end]
	want := s.traceIDField()
	var id []byte
	for i := val; i < end; {
		num, typ, v, e, code := readField(b, i)
		if code != errNone {
			return nil, s.fail(kItem, b, i, code)
		}
		if num == want {
			if typ != wireLen {
				return nil, s.wrongType(kItem, i, num, typ)
			}
			id = b[v:e]
		}
		i = e
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
