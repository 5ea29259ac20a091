package promrw

import (
	"bytes"
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/sluice-dev/sluice/schemas"
)

// The series cache: the per-series work of the translation (label names
// from attribute keys, the metric name, the merge and sort of resource,
// scope and point labels, the label part of the TimeSeries protobuf) done
// once per series rather than once per data point.
//
// A data point's labels follow from the tenant, its base (the labels of its
// resource and scope, made once per resource and scope of a batch), its
// metric's Prometheus name and its attributes, in order. The cache key is
// those inputs: the ids of the (tenant, base) and of the name, interned in
// idTable, then each attribute's key, value type and raw value, or, when
// the record stored its points' attribute sets once each
// (schemas.Batch.ItemAttrSets), the id of the point's set, interned the
// same way (translator.setIDs): keys of the two kinds never meet. Keys are
// compared in full, so neither a hash collision nor another tenant's series
// of the same labels can give a point another series' labels. An entry
// holds the encoded labels (__name__ first among them in name order, as
// encodeLabels writes them) and their hash, which picks the request shard.
//
// Everything an entry holds is copied out of the batch: Arrow buffers are
// recycled once a batch is released.
//
// The cache is bounded in bytes (series_cache_bytes): what an entry holds
// plus entryOverhead for its slot and index. Eviction is CLOCK (second
// chance): a hit sets the entry's reference bit and costs nothing more; a
// miss that needs room sweeps the hand over the slots, clearing bits, and
// evicts the first entry not used since the hand last passed. A working set
// that fits stays; one that does not costs a miss per point, never more.
//
// The bytes are shared fairly between tenants: with n tenants holding
// entries, a tenant's share is series_cache_bytes/n. A tenant at its share
// makes room by evicting its own entries only; a tenant below it evicts
// entries of tenants above theirs. So a tenant churning through series
// cannot push another tenant's working set (if it fits in its share) out
// of the cache; with one tenant this is plain CLOCK.

// entryOverhead is what an entry costs besides its key and labels: its slot
// and its share of the index map (about 40 bytes).
const entryOverhead = int(unsafe.Sizeof(seriesEntry{})) + 40

type seriesEntry struct {
	hash   uint64 // of the key
	lhash  uint64 // of the labels: the shard
	data   []byte // key, then labels; nil for a free slot; never changed
	keyLen uint32
	tenant uint32 // index in seriesCache.tenantBytes
	ref    bool
	memo   seriesMemo
	// mkey is the entry's key as the translator's memo has it (base, name
	// and set ids; zero for an entry of a full key), and next + 1 the slot
	// of the series that followed it the last time (0: none): in a backlog
	// a record's series come in the order of the record before, so a point
	// mostly finds its entry there (or in the previous point's, a series
	// repeated), in the entry it needs anyway rather than in the memo
	// (translator.pointLabels).
	mkey memoKey
	next uint32
}

func (e *seriesEntry) labels() []byte { return e.data[e.keyLen:] }

type seriesCache struct {
	maxBytes int
	bytes    int
	index    map[uint64]uint32 // key hash -> slot
	slots    []seriesEntry
	free     []uint32
	hand     int

	tenantIDs   map[string]uint32
	tenantBytes []int // bytes held, by tenant id
	active      int   // tenants holding entries

	hits, misses, evictions uint64 // since the last stats call
	// evicted counts every eviction ever: a slot number taken before is
	// still the same series while it has not changed.
	evicted uint64
}

func newSeriesCache(maxBytes int) *seriesCache {
	return &seriesCache{maxBytes: maxBytes, index: map[uint64]uint32{}, tenantIDs: map[string]uint32{}}
}

// get returns the entry of the series of key (hash its hash), or nil.
// The entry is valid until the next put.
func (c *seriesCache) get(hash uint64, key []byte) *seriesEntry {
	s, found := c.index[hash]
	if found {
		e := &c.slots[s]
		if bytes.Equal(e.data[:e.keyLen], key) {
			e.ref = true
			c.hits++
			return e
		}
	}
	c.misses++
	return nil
}

// slot is the slot number of entry e.
func (c *seriesCache) slot(e *seriesEntry) uint32 {
	return uint32((uintptr(unsafe.Pointer(e)) - uintptr(unsafe.Pointer(unsafe.SliceData(c.slots)))) / unsafe.Sizeof(*e))
}

// hit returns the entry in slot s, which get or put returned while
// c.evicted was what it is now, and counts a hit.
func (c *seriesCache) hit(s uint32) *seriesEntry {
	e := &c.slots[s]
	e.ref = true
	c.hits++
	return e
}

// put adds the series of key with labels (both copied) of tenant, evicting
// entries until it fits (of tenant or of tenants over their share), and
// returns its entry (valid until the next put), or nil
// when it is larger than the cache. An entry with the same key hash (a
// collision, as get found no match) is replaced. The data of an evicted
// entry is left to the garbage collector, never reused: the collector may
// hold its labels until the end of the Write.
func (c *seriesCache) put(tenant string, hash uint64, key, labels []byte, lhash uint64) *seriesEntry {
	size := len(key) + len(labels)
	if size+entryOverhead > c.maxBytes {
		return nil
	}
	if s, found := c.index[hash]; found {
		c.evict(s)
	}
	tid, ok := c.tenantIDs[tenant]
	if !ok {
		tid = uint32(len(c.tenantBytes))
		c.tenantIDs[tenant] = tid
		c.tenantBytes = append(c.tenantBytes, 0)
	}
	for c.bytes+size+entryOverhead > c.maxBytes {
		c.evictFor(tid, size+entryOverhead)
	}
	var s uint32
	if n := len(c.free); n > 0 {
		s = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		s = uint32(len(c.slots))
		c.slots = append(c.slots, seriesEntry{})
	}
	data := make([]byte, 0, size)
	data = append(append(data, key...), labels...)
	c.slots[s] = seriesEntry{hash: hash, lhash: lhash, data: data, keyLen: uint32(len(key)), tenant: tid}
	c.index[hash] = s
	c.bytes += cap(data) + entryOverhead
	if c.tenantBytes[tid] == 0 {
		c.active++
	}
	c.tenantBytes[tid] += cap(data) + entryOverhead
	return &c.slots[s]
}

// evictFor evicts one entry to make room for need bytes of tenant tid:
// one of its own when it holds its share or more, else one of a tenant
// above its share; CLOCK among those. Two sweeps find one unless the
// shares moved (entries rounding), when plain CLOCK evicts.
func (c *seriesCache) evictFor(tid uint32, need int) {
	active := c.active
	if c.tenantBytes[tid] == 0 {
		active++
	}
	share := c.maxBytes / active
	own := c.tenantBytes[tid] > 0 && c.tenantBytes[tid]+need > share
	for range 2 {
		for range 2*len(c.slots) + 1 {
			if c.hand >= len(c.slots) {
				c.hand = 0
			}
			e := &c.slots[c.hand]
			s := uint32(c.hand)
			c.hand++
			if e.data == nil {
				continue
			}
			if own && e.tenant != tid || !own && c.tenantBytes[e.tenant] <= share {
				continue
			}
			if e.ref {
				e.ref = false
				continue
			}
			c.evict(s)
			return
		}
		// None: plain CLOCK, as every tenant holding an entry is above a
		// share of -1. There is an entry (put evicts only while the cache
		// holds bytes), so its two sweeps find one.
		own, share = false, -1
	}
}

func (c *seriesCache) evict(s uint32) {
	e := &c.slots[s]
	delete(c.index, e.hash)
	c.bytes -= cap(e.data) + entryOverhead
	if c.tenantBytes[e.tenant] -= cap(e.data) + entryOverhead; c.tenantBytes[e.tenant] == 0 {
		c.active--
	}
	*e = seriesEntry{}
	c.free = append(c.free, s)
	c.evictions++
	c.evicted++
}

// len is the number of entries.
func (c *seriesCache) len() int { return len(c.index) }

// idTable interns the parts of a cache key that are shared by many series:
// a tenant with a base (resource and scope labels), a metric name. An id is
// never given twice, so clearing the table (when it holds maxIDs strings)
// leaves the cache entries that used the old ids unreachable, to be
// evicted, and never wrong.
type idTable struct {
	ids  map[string]uint64
	next uint64
	max  int // strings held at most; 0: maxIDs
}

const maxIDs = 100_000

// maxSetIDs bounds the attribute sets interned (translator.setIDs): a set
// key is about 100 bytes, so the table stays under a few MiB.
const maxSetIDs = 16_384

func (t *idTable) id(key []byte) uint64 {
	if id, ok := t.ids[string(key)]; ok {
		return id
	}
	limit := t.max
	if limit == 0 {
		limit = maxIDs
	}
	if t.ids == nil || len(t.ids) >= limit {
		t.ids = map[string]uint64{}
	}
	t.next++
	t.ids[string(key)] = t.next
	return t.next
}

// Kinds of interned strings, so that a name and a base never share an id.
const (
	idBase byte = 'b'
	idName byte = 'n'
)

// baseKey is the interning key of tenant and base labels ls.
func appendBaseKey(dst []byte, tenant string, ls []label) []byte {
	dst = append(dst, idBase)
	dst = appendBytesKey(dst, tenant)
	for _, l := range ls {
		dst = appendBytesKey(dst, l.name)
		dst = appendBytesKey(dst, l.value)
		dst = append(dst, l.prio)
	}
	return dst
}

func appendBytesKey[S string | []byte](dst []byte, s S) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Kinds of cache key: with the attributes in full, or with the id of the
// attribute set (interned in translator.setIDs).
const (
	keyFull byte = 'f'
	keySet  byte = 's'
)

// appendPointKey appends the cache key of data point i: the ids of its
// base and name, then every attribute as key, type and raw value. The
// labels are a function of these (labelName of the key, attrs.value of the
// type and value), and the encoding can be read back one way only: every
// variable part has its length in front.
func appendPointKey(dst []byte, a *attrs, i int, base, name uint64) []byte {
	dst = append(dst, keyFull)
	dst = binary.AppendUvarint(dst, base)
	dst = binary.AppendUvarint(dst, name)
	return appendAttrsKey(dst, a, i)
}

// appendSetKey appends the cache key of a data point whose attributes are
// the interned set set: its base and name as appendPointKey, then the set.
// Its labels are a function of these as much as of the full key, as the
// set is its attributes, interned.
func appendSetKey(dst []byte, base, name, set uint64) []byte {
	dst = append(dst, keySet)
	dst = binary.AppendUvarint(dst, base)
	dst = binary.AppendUvarint(dst, name)
	return binary.AppendUvarint(dst, set)
}

// appendAttrsKey appends the attributes of row i: each attribute's key,
// type and raw value.
func appendAttrsKey(dst []byte, a *attrs, i int) []byte {
	start, end := a.m.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		dst = appendBytesKey(dst, a.keys.Value(j))
		typ := a.Type.Value(j)
		dst = append(dst, typ)
		switch typ {
		case schemas.ValueString:
			dst = appendBytesKey(dst, a.Str.Value(j))
		case schemas.ValueBool:
			if a.Bool.Value(j) {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case schemas.ValueInt:
			dst = binary.LittleEndian.AppendUint64(dst, uint64(a.Int.Value(j)))
		case schemas.ValueDouble:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.Double.Value(j)))
		case schemas.ValueBytes, schemas.ValueArray, schemas.ValueKVList, schemas.ValueRaw:
			dst = appendBytesKey(dst, a.Bytes.Value(j))
		}
	}
	return dst
}

// parseLabels reads encoded labels (as encodeLabels writes them) back into
// dst, leaving out __name__; the strings point into p.
func parseLabels(dst []label, p []byte) []label {
	for len(p) > 0 {
		// Each a tag (1 byte) and a length-delimited value: the Label
		// message, its name and its value (appendLabel writes both).
		l, n := consumeBytes(p[1:])
		p = p[1+n:]
		name, k := consumeBytes(l[1:])
		value, _ := consumeBytes(l[1+k+1:])
		if string(name) == "__name__" {
			continue
		}
		dst = append(dst, label{name: unsafeString(name), value: unsafeString(value)})
	}
	return dst
}

// consumeBytes reads a length-delimited field value: the bytes and how
// many bytes of p they took with their length.
func consumeBytes(p []byte) ([]byte, int) {
	n, k := binary.Uvarint(p)
	return p[k : k+int(n)], k + int(n)
}

// labelsHash picks the request shard of a series.
func labelsHash(labels []byte) uint64 { return xxhash.Sum64(labels) }

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
