package aggregate

import (
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/sluice-dev/sluice/schemas"
)

// Hasher computes series identities of the points of a metrics Batch. Reset
// hashes the resources, scopes and metrics once; Series and Metric then cost
// one pass over the point's attributes, or none for a point whose
// attribute set an earlier point had: of the batch (Batch.ItemAttrSets),
// or of an earlier batch of the same decoder (Batch.ItemSetIDs). Not safe
// for concurrent use.
type Hasher struct {
	c              cols
	res, scope     []uint64 // per row: hash of the resource (attributes), of the scope (name, version)
	series, metric []uint64 // per metric row: the series part without point attributes; (name, unit, type)
	tenant         string
	tenantH        uint64
	ok             bool
	// sets number the batch's points' attribute sets, and setH[s] is the
	// hash of set s's attributes once a point of it was hashed
	// (setMet[s]): the numbers its decoder keeps from batch to batch
	// (Batch.ItemSetIDs of SetSpace keptSpace), with keptH and keptMet
	// kept as long, so that a backlog's next batch, which holds the same
	// series, hashes none again; else the batch's own (ItemAttrSets),
	// with localH and localMet.
	sets              []uint32
	setH              []uint64
	setMet            []bool
	localH, keptH     []uint64
	localMet, keptMet []bool
	keptSpace         uint64
}

// maxKeptSetHashes bounds the kept sets' hashes (9 MiB): the decoder keeps
// tens of thousands of sets.
const maxKeptSetHashes = 1 << 20

// Seeds keep the parts of an identity apart.
const (
	seedTenant = 0x9e3779b97f4a7c15
	seedRes    = 0xc2b2ae3d27d4eb4f
	seedScope  = 0x165667b19e3779f9
	seedMetric = 0x27d4eb2f165667c5
	seedPoint  = 0x85ebca77c2b2ae63
	seedKey    = 0xff51afd7ed558ccd
	seedNone   = 0xc4ceb9fe1a85ec53
)

func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func mix(h, x uint64) uint64 { return fmix64(h ^ (x + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2))) }

// attrsHash hashes the entries of row i of a. The entries are combined by
// a sum of per-entry hashes: the same as hashing them sorted by key (order
// does not matter) without sorting or allocating. A null row (no resource,
// no scope) differs from an empty one.
func attrsHash(a *attrCol, i int) uint64 {
	if a.m.IsNull(i) {
		return seedNone
	}
	s, e := a.m.ValueOffsets(i)
	h := uint64(e - s)
	for j := int(s); j < int(e); j++ {
		kh := xxhash.Sum64String(a.keys.Value(j))
		h += fmix64(kh*seedKey ^ valueHash(&a.vals, j))
	}
	return h
}

// valueHash hashes an AnyValue by type and content.
func valueHash(v *schemas.AnyColumns, j int) uint64 {
	typ := v.Type.Value(j)
	var x uint64
	switch typ {
	case schemas.ValueString:
		x = xxhash.Sum64String(v.Str.Value(j))
	case schemas.ValueInt:
		x = uint64(v.Int.Value(j))
	case schemas.ValueDouble:
		x = math.Float64bits(v.Double.Value(j))
	case schemas.ValueBool:
		if v.Bool.Value(j) {
			x = 1
		}
	case schemas.ValueBytes, schemas.ValueArray, schemas.ValueKVList, schemas.ValueRaw:
		x = xxhash.Sum64(v.Bytes.Value(j))
	}
	return fmix64(x ^ (uint64(typ)+1)*seedPoint)
}

func strHash(h uint64, s string) uint64 { return mix(h, xxhash.Sum64String(s)) }

// Reset prepares h for the points of b (a metrics batch). h keeps no
// reference to b's buffers beyond the next Reset.
func (h *Hasher) Reset(b *schemas.Batch) error {
	h.ok = false
	if err := h.c.init(b); err != nil {
		return err
	}
	c := &h.c
	h.res = grow(h.res, c.nRes)
	for i := range h.res {
		h.res[i] = mix(seedRes, attrsHash(&c.resAttrs, i))
	}
	h.scope = grow(h.scope, c.nScope)
	for i := range h.scope {
		x := strHash(seedScope, c.scName.Value(i))
		x = strHash(x, c.scVersion.Value(i))
		if c.scAttrs.m.IsNull(i) {
			x = mix(x, seedNone)
		}
		h.scope[i] = x
	}
	h.series = grow(h.series, c.nMetrics)
	h.metric = grow(h.metric, c.nMetrics)
	for i := range h.series {
		m := strHash(seedMetric, c.mName.Value(i))
		m = strHash(m, c.mUnit.Value(i))
		m = mix(m, uint64(c.mType.Value(i)))
		h.metric[i] = m
		x := mix(m, h.res[c.mRes.Value(i)])
		x = mix(x, h.scope[c.mScope.Value(i)])
		x = mix(x, uint64(uint32(c.mTemp.Value(i))))
		if c.mMono.Value(i) {
			x = mix(x, 1)
		}
		h.series[i] = x
	}
	h.useSets(b)
	h.ok = true
	return nil
}

// useSets takes the numbers of b's points' attribute sets (see Hasher).
func (h *Hasher) useSets(b *schemas.Batch) {
	n := h.c.nPoints
	h.sets = nil
	if ids := b.ItemSetIDs; len(ids) == n && n > 0 && b.SetSpace != 0 {
		if hi := int(slices.Max(ids)); hi < maxKeptSetHashes {
			if b.SetSpace != h.keptSpace {
				h.keptSpace = b.SetSpace
				h.keptH, h.keptMet = h.keptH[:0], h.keptMet[:0]
			}
			if hi >= len(h.keptH) {
				h.keptH = append(h.keptH, make([]uint64, hi+1-len(h.keptH))...)
				h.keptMet = append(h.keptMet, make([]bool, hi+1-len(h.keptMet))...)
			}
			h.sets, h.setH, h.setMet = ids, h.keptH, h.keptMet
			return
		}
	}
	if s := b.ItemAttrSets; len(s) == n && n > 0 {
		h.localH = grow(h.localH, n)
		h.localMet = grow(h.localMet, n)
		clear(h.localMet)
		h.sets, h.setH, h.setMet = s, h.localH, h.localMet
	}
}

// pointAttrs is the hash of point row's attributes, made once per set
// when the batch numbers them.
func (h *Hasher) pointAttrs(row int) uint64 {
	if h.sets != nil {
		// A batch's sets are numbered in order of first appearance,
		// below the number of points, and the kept ones below the kept
		// hashes (a number beyond, from a malformed record, is hashed as
		// it comes).
		if s := int(h.sets[row]); s < len(h.setMet) {
			if h.setMet[s] {
				return h.setH[s]
			}
			x := attrsHash(&h.c.attrs, h.c.attrRow(row))
			h.setH[s], h.setMet[s] = x, true
			return x
		}
	}
	return attrsHash(&h.c.attrs, h.c.attrRow(row))
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (h *Hasher) tenantHash(tenant string) uint64 {
	if tenant != h.tenant || h.tenantH == 0 {
		h.tenant, h.tenantH = tenant, mix(seedTenant, xxhash.Sum64String(tenant))
	}
	return h.tenantH
}

// Series is the 64-bit identity of item row's series: tenant, resource
// attributes, scope name and version, metric name, unit, type, aggregation
// temporality, monotonicity and point attributes. Attribute order does not
// matter. It does not allocate.
func (h *Hasher) Series(tenant string, row int) uint64 {
	c := &h.c
	x := mix(h.tenantHash(tenant), h.series[c.metricID.Value(row)])
	return mix(x, h.pointAttrs(row))
}

// Metric is the identity of (tenant, metric name, unit, type): the key of a
// limit rule's count, by which its points are routed.
func (h *Hasher) Metric(tenant string, row int) uint64 {
	return mix(h.tenantHash(tenant), h.metric[h.c.metricID.Value(row)])
}

// Family is the identity of item row's series without its point
// attributes: tenant, resource attributes, scope and the metric's name,
// unit, type, temporality and monotonicity. Every point of a series has
// its series' family, so routing points by family keeps each series in
// one place, and the points of one metric row go together.
func (h *Hasher) Family(tenant string, row int) uint64 {
	return mix(h.tenantHash(tenant), h.series[h.c.metricID.Value(row)])
}
