package promrw

import (
	"slices"
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
}

// item is one sample or native histogram: its encoding (TimeSeries field,
// tag included) in the arena.
type item struct {
	off, len uint32
	rec      int32
	next     int32 // the series' next item, -1
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
	body    []byte // WriteRequest, unframed, uncompressed
	samples int
	recs    []int32 // records with series in the request, ascending
}

func (c *collector) reset() {
	for _, t := range c.tenants {
		for _, reqs := range t.shards {
			for _, r := range reqs {
				r.body, r.recs, r.samples = r.body[:0], r.recs[:0], 0
				c.free = append(c.free, r)
			}
		}
	}
	for _, t := range c.tenants {
		if len(t.index) > 1<<10 && len(t.index) > 16*len(t.series) {
			t.index = nil // far larger than this Write needed
		}
		clear(t.index)
		t.series = t.series[:0]
		clear(t.shards)
		c.spare = append(c.spare, t)
	}
	c.tenants = c.tenants[:0]
	c.cur = nil
	c.series = 0
	c.write++
	c.arena = c.arena[:0]
	c.items = c.items[:0]
	clear(c.recIn)
	c.reqs = 0
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
	c.items = append(c.items, item{off: uint32(len(c.arena)), len: uint32(len(field)), rec: c.rec, next: -1})
	c.arena = append(c.arena, field...)
	s := &t.series[ser]
	if s.last >= 0 {
		c.items[s.last].next = it
	} else {
		s.first = it
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
	t.series = append(t.series, wseries{labels: labels, lhash: lhash, first: -1, last: -1})
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

// finish cuts the series of the Write into requests.
func (c *collector) finish() {
	for _, t := range c.tenants {
		for i := range t.series {
			c.cut(t, &t.series[i])
		}
		for _, reqs := range t.shards {
			for _, r := range reqs {
				if !slices.IsSorted(r.recs) { // they mostly are
					slices.Sort(r.recs)
				}
			}
		}
	}
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
		kind := c.arena[c.items[it].off]
		size, n := len(s.labels), 0
		end := it
		for ; end >= 0 && r.samples+n < c.maxSamples && c.arena[c.items[end].off] == kind; end = c.items[end].next {
			size += int(c.items[end].len)
			n++
		}
		r.body = protowire.AppendTag(r.body, fWriteTimeSeries, protowire.BytesType)
		r.body = protowire.AppendVarint(r.body, uint64(size))
		r.body = append(r.body, s.labels...)
		for ; it != end; it = c.items[it].next {
			x := &c.items[it]
			r.body = append(r.body, c.arena[x.off:x.off+x.len]...)
			for int(x.rec) >= len(c.recIn) {
				c.recIn = append(c.recIn, 0)
			}
			if c.recIn[x.rec] != r.num {
				c.recIn[x.rec] = r.num
				r.recs = append(r.recs, x.rec)
			}
		}
		r.samples += n
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
