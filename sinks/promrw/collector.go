package promrw

import (
	"slices"
	"strings"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// collector gathers the samples the translator makes during a Write and
// cuts them into requests: per tenant, per shard (by the hash of the
// series' labels), at most maxSamples samples (or native histograms) each.
//
// The samples of a series are sent together, as one TimeSeries with many
// samples, in the order they came: a Write of a backlog holds several
// points of each series (one per record, interval after interval), and its
// labels, most of the bytes, are then written, compressed, sent and parsed
// once rather than once per point. A series whose samples do not fit in
// the request in hand goes on in the shard's next request; float samples
// and native histograms of one series (a stale marker is a float sample)
// are separate TimeSeries in the order they came, since a receiver appends
// a TimeSeries' samples before its histograms.
type collector struct {
	maxSamples int
	shards     int
	tenants    []*tenantReqs
	cur        *tenantReqs
	rec        int32 // the record being translated
	series     int   // samples added in this Write
	free       []*request
	spare      []*tenantReqs // of earlier Writes, for reuse
	write      uint32        // Writes so far (a seriesMemo is valid within one)

	// What the translator says of the samples it adds next (remote write
	// 2.0 sends them; 1.0 has no place for them): st is the start time
	// (ms, 0 for none) of the next sample, meta the index in metas of the
	// metadata of its series (-1 for none).
	st    int64
	meta  int32
	metas []seriesMeta
	// metaIDs finds a metadata in metas; both are kept across Writes
	// (they hold a metric's help and unit, not a series') and cleared
	// between Writes once they hold maxMetas.
	metaIDs map[seriesMeta]int32
	refs    []uint32 // cutV2's label refs of a series
	v2      bool     // the requests are 2.0 ones

	// per Write
	arena []byte // labels not held by the series cache, and the samples
	items []item
	// recIn[rec] is the request (a number of this Write, + 1) that last
	// listed record rec: a request lists a record once.
	recIn []int32
	reqs  int32
}

type tenantReqs struct {
	tenant string
	shards [][]*request
	series []wseries
	// index finds a series by its labels: open addressing on the labels
	// hash, linear probing, at most half full. A slot holds the high half
	// of the hash and the series index + 1 (0: free), so that a probe reads
	// a series only when the hashes match.
	index []indexSlot
}

type indexSlot struct {
	tag uint32
	ser int32 // + 1
}

// wseries is a series of a Write: its labels and its samples (a list of
// items).
type wseries struct {
	labels      []byte // in the arena, or an immutable series cache entry
	lhash       uint64
	first, last int32 // items
	meta        int32 // in collector.metas, -1 for none
	kind        byte  // the field (tag) of its first item
	mixed       bool  // its items are of more than one field
}

// item is one sample or native histogram: its encoding (TimeSeries field,
// tag included) in the arena.
type item struct {
	off, len uint32
	rec      int32
	next     int32 // the series' next item, -1
	st       int64 // start time (ms), 0 for none
}

// seriesMemo remembers which series of the Write in hand a series cache
// entry is, so that its points need no lookup in tenantReqs.index.
type seriesMemo struct {
	write uint32
	ser   int32
}

type request struct {
	num     int32 // in the Write, from 1
	tenant  string
	body    []byte  // WriteRequest (2.0: Request), unframed, uncompressed
	samples int     // samples and native histograms
	hists   int     // native histograms
	recs    []int32 // records with series in the request, ascending

	// 2.0: the symbols and their Request fields, appended to body by
	// finish.
	v2      bool
	syms    map[string]uint32
	symBody []byte
	// prev are the label strings of the request's last series and their
	// refs: the next series of the request mostly has the same name,
	// resource and scope labels at the same places, found here without
	// hashing.
	prev []symRef
	// lastMeta is the metadata (in collector.metas) of the request's last
	// series with one, and the refs of its help and unit.
	lastMeta           int32
	lastHelp, lastUnit uint32
}

type symRef struct {
	s   string
	ref uint32
}

// maxMetas bounds collector.metas.
const maxMetas = 10_000

// metaID returns the index of metadata m in c.metas, added when new (its
// strings copied).
func (c *collector) metaID(m seriesMeta) int32 {
	if id, ok := c.metaIDs[m]; ok {
		return id
	}
	if c.metaIDs == nil {
		c.metaIDs = map[seriesMeta]int32{}
	}
	m.help, m.unit = strings.Clone(m.help), strings.Clone(m.unit)
	id := int32(len(c.metas))
	c.metas = append(c.metas, m)
	c.metaIDs[m] = id
	return id
}

// release puts the requests of the Write back in the free list.
func (c *collector) release() {
	for _, t := range c.tenants {
		for _, reqs := range t.shards {
			for _, r := range reqs {
				r.body, r.recs, r.samples, r.hists = r.body[:0], r.recs[:0], 0, 0
				if r.v2 {
					r.v2 = false
					clear(r.syms) // its keys point into the Write's labels
					r.symBody = r.symBody[:0]
					clear(r.prev)
					r.prev = r.prev[:0]
				}
				c.free = append(c.free, r)
			}
		}
		clear(t.shards)
	}
	clear(c.recIn)
	c.reqs = 0
}

func (c *collector) reset() {
	c.release()
	if len(c.metas) >= maxMetas {
		c.metas = c.metas[:0]
		clear(c.metaIDs)
	}
	c.st, c.meta = 0, -1
	for _, t := range c.tenants {
		if len(t.index) > 1<<10 && len(t.index) > 16*len(t.series) {
			t.index = nil // far larger than this Write needed
		}
		clear(t.index)
		t.series = t.series[:0]
		c.spare = append(c.spare, t)
	}
	c.tenants = c.tenants[:0]
	c.cur = nil
	c.series = 0
	c.write++
	c.arena = c.arena[:0]
	c.items = c.items[:0]
}

// tenant makes tenant the one series are added for.
func (c *collector) tenant(tenant string) {
	if c.cur != nil && c.cur.tenant == tenant {
		return
	}
	for _, t := range c.tenants {
		if t.tenant == tenant {
			c.cur = t
			return
		}
	}
	if n := len(c.spare); n > 0 {
		c.cur = c.spare[n-1]
		c.spare = c.spare[:n-1]
		c.cur.tenant = tenant
	} else {
		c.cur = &tenantReqs{tenant: tenant, shards: make([][]*request, c.shards)}
	}
	c.tenants = append(c.tenants, c.cur)
}

// add adds the sample of the TimeSeries encoding ts (one sample or
// histogram); ts[:labelsEnd] are its labels.
func (c *collector) add(ts []byte, labelsEnd int) {
	c.addLabeled(ts[:labelsEnd], labelsHash(ts[:labelsEnd]), false, nil, ts[labelsEnd:])
}

// addLabeled adds a sample (or histogram), field (its TimeSeries field,
// tag included), to the series of labels, whose hash is lhash. stable
// says labels stay as they are for the Write (they are a series cache
// entry's); memo, when not nil, remembers the series of this Write.
func (c *collector) addLabeled(labels []byte, lhash uint64, stable bool, memo *seriesMemo, field []byte) {
	t := c.cur
	var ser int32
	if memo != nil && memo.write == c.write && c.write != 0 && unsafe.SliceData(t.series[memo.ser].labels) == unsafe.SliceData(labels) {
		ser = memo.ser
	} else {
		ser = c.seriesOf(labels, lhash, stable)
		if memo != nil {
			*memo = seriesMemo{write: c.write, ser: ser}
		}
	}
	it := int32(len(c.items))
	c.items = append(c.items, item{off: uint32(len(c.arena)), len: uint32(len(field)), rec: c.rec, next: -1, st: c.st})
	c.arena = append(c.arena, field...)
	s := &t.series[ser]
	if c.meta >= 0 {
		s.meta = c.meta
	}
	if s.last >= 0 {
		c.items[s.last].next = it
		s.mixed = s.mixed || field[0] != s.kind
	} else {
		s.first, s.kind = it, field[0]
	}
	s.last = it
	c.series++
}

// seriesOf returns the series of labels in the current tenant, added if
// new.
func (c *collector) seriesOf(labels []byte, lhash uint64, stable bool) int32 {
	t := c.cur
	if 2*(len(t.series)+1) > len(t.index) {
		t.grow()
	}
	mask := uint64(len(t.index) - 1)
	h := lhash & mask
	tag := uint32(lhash >> 32)
	for ; t.index[h].ser != 0; h = (h + 1) & mask {
		if t.index[h].tag != tag {
			continue
		}
		s := t.index[h].ser - 1
		if t.series[s].lhash == lhash && string(t.series[s].labels) == string(labels) {
			return s
		}
	}
	if !stable {
		start := len(c.arena)
		c.arena = append(c.arena, labels...)
		labels = c.arena[start:len(c.arena):len(c.arena)]
	}
	ser := int32(len(t.series))
	t.series = append(t.series, wseries{labels: labels, lhash: lhash, first: -1, last: -1, meta: -1})
	t.index[h] = indexSlot{tag, ser + 1}
	return ser
}

// grow doubles the index (at least 1024 slots) and puts the series in again.
func (t *tenantReqs) grow() {
	n := max(1024, 2*len(t.index))
	for n < 2*(len(t.series)+1) {
		n *= 2
	}
	t.index = make([]indexSlot, n)
	mask := uint64(n - 1)
	for s := range t.series {
		h := t.series[s].lhash & mask
		for t.index[h].ser != 0 {
			h = (h + 1) & mask
		}
		t.index[h] = indexSlot{uint32(t.series[s].lhash >> 32), int32(s) + 1}
	}
}

// finish cuts the series of the Write into requests: remote write 2.0
// ones with v2 set, else 1.0 ones. It may be called again (after
// release) to cut them the other way.
func (c *collector) finish(v2 bool) {
	c.v2 = v2
	for _, t := range c.tenants {
		for i := range t.series {
			if v2 {
				c.cutV2(t, &t.series[i])
			} else {
				c.cut(t, &t.series[i])
			}
		}
		for _, reqs := range t.shards {
			for _, r := range reqs {
				if !slices.IsSorted(r.recs) { // they mostly are
					slices.Sort(r.recs)
				}
				if r.v2 {
					r.body = append(r.body, r.symBody...)
				}
			}
		}
	}
}

// recut cuts the series of the Write into requests again, 1.0 ones with
// v2 unset (when a receiver turned 2.0 down).
func (c *collector) recut(v2 bool) {
	c.release()
	c.finish(v2)
}

// cut writes the items of series s as TimeSeries into the requests of its
// shard.
func (c *collector) cut(t *tenantReqs, s *wseries) {
	sh := int(s.lhash % uint64(c.shards))
	for it := s.first; it >= 0; {
		reqs := t.shards[sh]
		var r *request
		if n := len(reqs); n > 0 && reqs[n-1].samples < c.maxSamples {
			r = reqs[n-1]
		} else {
			r = c.request(t.tenant)
			t.shards[sh] = append(reqs, r)
		}
		// A run: items of the same field, as many as the request takes.
		kind := c.kind(s, it)
		size, n := len(s.labels), 0
		end := it
		for ; end >= 0 && r.samples+n < c.maxSamples && (!s.mixed || c.arena[c.items[end].off] == kind); end = c.items[end].next {
			size += int(c.items[end].len)
			n++
		}
		r.body = protowire.AppendTag(r.body, fWriteTimeSeries, protowire.BytesType)
		r.body = protowire.AppendVarint(r.body, uint64(size))
		r.body = append(r.body, s.labels...)
		for ; it != end; it = c.items[it].next {
			x := &c.items[it]
			r.body = append(r.body, c.arena[x.off:x.off+x.len]...)
			c.listRecord(r, x.rec)
		}
		r.samples += n
		if kind == tagHist {
			r.hists += n
		}
	}
}

// kind is the field of item it of series s: the series' one field unless
// its items are mixed (a series whose points changed kind), read from the
// arena only then, so that cutting a series does not read its items'
// encodings twice.
func (c *collector) kind(s *wseries, it int32) byte {
	if !s.mixed {
		return s.kind
	}
	return c.arena[c.items[it].off]
}

// listRecord lists record rec in request r, once.
func (c *collector) listRecord(r *request, rec int32) {
	for int(rec) >= len(c.recIn) {
		c.recIn = append(c.recIn, 0)
	}
	if c.recIn[rec] != r.num {
		c.recIn[rec] = r.num
		r.recs = append(r.recs, rec)
	}
}

// cutV2 is cut for remote write 2.0: the series' labels become refs into
// the request's symbols (made once per series and request, from the
// labels the series cache holds), the items get their start times, and
// the series its metadata.
func (c *collector) cutV2(t *tenantReqs, s *wseries) {
	sh := int(s.lhash % uint64(c.shards))
	for it := s.first; it >= 0; {
		reqs := t.shards[sh]
		var r *request
		if n := len(reqs); n > 0 && reqs[n-1].samples < c.maxSamples {
			r = reqs[n-1]
		} else {
			r = c.request(t.tenant)
			r.startV2()
			t.shards[sh] = append(reqs, r)
		}
		c.refs = c.refs[:0]
		refsSize := 0
		for p := s.labels; len(p) > 0; {
			l, n := consumeBytes(p[1:])
			p = p[1+n:]
			name, k := consumeBytes(l[1:])
			value, _ := consumeBytes(l[1+k+1:])
			nr, vr := r.labelRef(len(c.refs), unsafeString(name)), r.labelRef(len(c.refs)+1, unsafeString(value))
			c.refs = append(c.refs, nr, vr)
			refsSize += protowire.SizeVarint(uint64(nr)) + protowire.SizeVarint(uint64(vr))
		}
		size := 1 + protowire.SizeVarint(uint64(refsSize)) + refsSize
		var typ uint8
		var help, unit uint32
		if s.meta >= 0 {
			m := &c.metas[s.meta]
			if r.lastMeta != s.meta {
				r.lastMeta, r.lastHelp, r.lastUnit = s.meta, r.symbolRef(m.help), r.symbolRef(m.unit)
			}
			typ, help, unit = m.typ, r.lastHelp, r.lastUnit
			if ms := metadataSize(typ, help, unit); ms > 0 {
				size += 1 + protowire.SizeVarint(uint64(ms)) + ms
			}
		}
		kind := c.kind(s, it)
		n := 0
		end := it
		for ; end >= 0 && r.samples+n < c.maxSamples && (!s.mixed || c.arena[c.items[end].off] == kind); end = c.items[end].next {
			size += itemV2Size(c.arena, &c.items[end])
			n++
		}
		r.body = protowire.AppendTag(r.body, fReqV2TimeSeries, protowire.BytesType)
		r.body = protowire.AppendVarint(r.body, uint64(size))
		r.body = protowire.AppendTag(r.body, fTSV2LabelsRefs, protowire.BytesType) // packed
		r.body = protowire.AppendVarint(r.body, uint64(refsSize))
		for _, ref := range c.refs {
			r.body = protowire.AppendVarint(r.body, uint64(ref))
		}
		for ; it != end; it = c.items[it].next {
			x := &c.items[it]
			r.body = appendItemV2(r.body, c.arena, x)
			c.listRecord(r, x.rec)
		}
		if metadataSize(typ, help, unit) > 0 {
			r.body = appendMetadata(r.body, typ, help, unit)
		}
		r.samples += n
		if kind == tagHist {
			r.hists += n
		}
	}
}

func (c *collector) request(tenant string) *request {
	c.reqs++
	if n := len(c.free); n > 0 {
		r := c.free[n-1]
		c.free = c.free[:n-1]
		r.tenant, r.num = tenant, c.reqs
		return r
	}
	return &request{tenant: tenant, num: c.reqs, body: make([]byte, 0, 64<<10)}
}
