package cardinality

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cespare/xxhash/v2"

	"github.com/sluice-dev/sluice/schemas"
)

// columns are the columns of a batch that Observe reads.
type columns struct {
	resAttrs attrCol
	metRes   *array.Uint32
	metName  *array.String
	ptMetric []uint32
	ptAttrs  attrCol
	// ptSets, for a batch holding its points' attributes as a table of
	// sets (schemas.Batch.ItemAttrSetTable, which is then ptAttrs): point
	// i's row in it.
	ptSets    []uint32
	resources int
	metrics   int
	points    int
}

func (c *columns) init(b *schemas.Batch) error {
	if b.Resources.NumCols() != int64(schemas.ResourcesSchema.NumFields()) ||
		b.Metrics.NumCols() != int64(schemas.MetricsSchema.NumFields()) ||
		b.Items.NumCols() != int64(schemas.DataPointsSchema.NumFields()) {
		return fmt.Errorf("cardinality: %w: not the metrics layout", schemas.ErrSchema)
	}
	if err := c.resAttrs.init(b.Resources.Column(schemas.ResAttributes), "resource"); err != nil {
		return err
	}
	c.ptSets = nil
	if t := b.ItemAttrSetTable; t != nil {
		if len(b.ItemAttrSets) != int(b.Items.NumRows()) {
			return fmt.Errorf("cardinality: %w: %d attribute sets for %d points", schemas.ErrSchema, len(b.ItemAttrSets), b.Items.NumRows())
		}
		for i, s := range b.ItemAttrSets {
			if int(s) >= t.Len() {
				return fmt.Errorf("cardinality: %w: point %d: attribute set %d of %d", schemas.ErrSchema, i, s, t.Len())
			}
		}
		if err := c.ptAttrs.init(t, "point"); err != nil {
			return err
		}
		c.ptSets = b.ItemAttrSets
	} else if err := c.ptAttrs.init(b.Items.Column(schemas.PtAttributes), "point"); err != nil {
		return err
	}
	var ok1, ok2, ok3 bool
	var ptMetric *array.Uint32
	c.metRes, ok1 = b.Metrics.Column(schemas.MetResourceID).(*array.Uint32)
	c.metName, ok2 = b.Metrics.Column(schemas.MetName).(*array.String)
	ptMetric, ok3 = b.Items.Column(schemas.PtMetricID).(*array.Uint32)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("cardinality: %w: not the metrics layout", schemas.ErrSchema)
	}
	c.ptMetric = ptMetric.Uint32Values()
	c.resources, c.metrics, c.points = int(b.Resources.NumRows()), int(b.Metrics.NumRows()), int(b.Items.NumRows())
	return nil
}

// resource returns the resource row of metric row mr.
func (c *columns) resource(mr int) (int, error) {
	r := int(c.metRes.Value(mr))
	if r >= c.resources {
		return 0, fmt.Errorf("cardinality: %w: metric %d: resource_id %d of %d resources", schemas.ErrSchema, mr, r, c.resources)
	}
	return r, nil
}

// attrCol is an attributes column (map<utf8, AnyValue>), its entries read
// straight from the buffers.
type attrCol struct {
	m    *array.Map
	keys strCol
	vals anyCol
	n    int // entries
}

func (a *attrCol) init(col arrow.Array, what string) error {
	var ok bool
	var keys *array.String
	if a.m, ok = col.(*array.Map); ok {
		keys, ok = a.m.Keys().(*array.String)
	}
	if !ok {
		return fmt.Errorf("cardinality: %w: %s attributes are %s", schemas.ErrSchema, what, col.DataType())
	}
	v, err := schemas.NewAnyColumns(a.m.Items())
	if err != nil {
		return err
	}
	a.n = keys.Len()
	if v.Type.Len() < a.n || v.Str.Len() < a.n || v.Int.Len() < a.n || v.Double.Len() < a.n || v.Bool.Len() < a.n || v.Bytes.Len() < a.n {
		return fmt.Errorf("cardinality: %w: %s attribute values shorter than their keys", schemas.ErrSchema, what)
	}
	a.keys = newStrCol(keys)
	a.vals = anyCol{typ: v.Type.Uint8Values(), str: newStrCol(v.Str), ints: v.Int.Int64Values(),
		dbls: v.Double.Float64Values(), bools: v.Bool, bytes: newStrCol(v.Bytes)}
	return nil
}

// entries returns the entries of row i: [start, end), empty for a null row.
func (a *attrCol) entries(i int) (start, end int) {
	if a.m.IsNull(i) {
		return 0, 0
	}
	s, e := a.m.ValueOffsets(i)
	return int(s), int(e)
}

// strCol is a utf8 or binary column read straight from its buffers: row j
// is data[off[j]:off[j+1]], without the per-value checks of the arrays'
// accessors.
type strCol struct {
	off  []int32
	data []byte
}

func newStrCol(a interface {
	arrow.Array
	ValueOffsets() []int32
}) strCol {
	if a.Len() == 0 {
		return strCol{}
	}
	c := strCol{off: a.ValueOffsets()}
	if buf := a.Data().Buffers()[2]; buf != nil {
		c.data = buf.Bytes()
	}
	return c
}

func (c *strCol) at(j int) []byte { return c.data[c.off[j]:c.off[j+1]] }

// run is the bytes of rows [j, j+n), back to back.
func (c *strCol) run(j, n int) []byte { return c.data[c.off[j]:c.off[j+n]] }

// sameRun reports whether rows [a, a+n) and [b, b+n) hold the same values.
func (c *strCol) sameRun(a, b, n int) bool {
	if n == 0 {
		return true // also for a column of no rows, which has no offsets
	}
	oa, ob := c.off[a:a+n+1], c.off[b:b+n+1]
	d := ob[0] - oa[0]
	ob = ob[:len(oa)]
	for k := 1; k < len(oa); k++ {
		if ob[k]-oa[k] != d {
			return false
		}
	}
	return bytes.Equal(c.data[oa[0]:oa[n]], c.data[ob[0]:ob[n]])
}

// anyCol is an AnyValue column (schemas.AnyColumns) read straight from its
// buffers.
type anyCol struct {
	typ   []uint8
	str   strCol
	ints  []int64
	dbls  []float64
	bools *array.Boolean
	bytes strCol
}

// Seeds that keep values of different types apart.
const (
	seedInt    = 0x9e3779b97f4a7c15
	seedDouble = 0xc2b2ae3d27d4eb4f
	seedBool   = 0x165667b19e3779f9
	seedBytes  = 0x27d4eb2f165667c5
	seedOther  = 0x85ebca77c2b2ae63
)

// hash hashes the AnyValue of row j. Strings hash as their bytes (the
// common case, and what a Prometheus label value is).
func (v *anyCol) hash(j int) uint64 {
	switch typ := v.typ[j]; typ {
	case schemas.ValueString:
		return strHash(v.str.at(j))
	case schemas.ValueInt:
		return fmix64(uint64(v.ints[j]) ^ seedInt)
	case schemas.ValueDouble:
		return fmix64(math.Float64bits(v.dbls[j]) ^ seedDouble)
	case schemas.ValueBool:
		if v.bools.Value(j) {
			return fmix64(seedBool + 1)
		}
		return fmix64(seedBool)
	case schemas.ValueBytes, schemas.ValueArray, schemas.ValueKVList, schemas.ValueRaw:
		return fmix64(xxhash.Sum64(v.bytes.at(j)) ^ (seedBytes + uint64(typ)))
	default:
		return fmix64(seedOther + uint64(typ))
	}
}

// runKey hashes the values of rows [j, j+n) together, to look the run up
// in a table: equal runs (as same tells) hash equal, and unequal ones
// seldom do.
func (v *anyCol) runKey(j, n int) uint64 {
	h := xxhash.Sum64(v.str.run(j, n))
	for e, typ := range v.typ[j : j+n] {
		var x uint64
		switch typ {
		case schemas.ValueString:
			continue
		case schemas.ValueInt:
			x = uint64(v.ints[j+e])
		case schemas.ValueDouble:
			x = math.Float64bits(v.dbls[j+e])
		case schemas.ValueBool:
			if v.bools.Value(j + e) {
				x = 1
			}
		default:
			x = uint64(v.bytes.off[j+e+1] - v.bytes.off[j+e])
		}
		h = (h ^ x ^ uint64(typ)<<56) * seedInt
	}
	return h
}

// same reports whether rows [a, a+n) and [b, b+n) hold the same values,
// as hash sees them: in one loop over their types and string offsets, and
// one comparison of their strings' bytes.
func (v *anyCol) same(a, b, n int) bool {
	if n == 0 {
		return true // also for a column of no rows, which has no offsets
	}
	ta, tb := v.typ[a:a+n], v.typ[b:b+n]
	a0, b0 := v.str.off[a], v.str.off[b]
	oa, ob := v.str.off[a+1:a+n+1], v.str.off[b+1:b+n+1] // the ends
	tb, oa, ob = tb[:len(ta)], oa[:len(ta)], ob[:len(ta)]
	for e, typ := range ta {
		if tb[e] != typ || ob[e]-oa[e] != b0-a0 {
			return false
		}
		switch typ {
		case schemas.ValueString:
		case schemas.ValueInt:
			if v.ints[a+e] != v.ints[b+e] {
				return false
			}
		default:
			if !v.sameOther(typ, a+e, b+e) {
				return false
			}
		}
	}
	return bytes.Equal(v.str.data[a0:oa[n-1]], v.str.data[b0:ob[n-1]])
}

// sameOther reports whether rows a and b, of type typ (neither a string
// nor an int), hold the same value.
func (v *anyCol) sameOther(typ uint8, a, b int) bool {
	switch typ {
	case schemas.ValueDouble:
		return math.Float64bits(v.dbls[a]) == math.Float64bits(v.dbls[b])
	case schemas.ValueBool:
		return v.bools.Value(a) == v.bools.Value(b)
	case schemas.ValueBytes, schemas.ValueArray, schemas.ValueKVList, schemas.ValueRaw:
		return bytes.Equal(v.bytes.at(a), v.bytes.at(b))
	}
	return true
}

// hashRow sets vh[e] to the hash of the value of row start+e, as hash
// does, for each e < len(kh), and returns the sum of their pair hashes with
// kh. It is hash and pairHash in one loop over the rows' types and string
// offsets, short strings (the usual values) hashed inline.
func (v *anyCol) hashRow(start int, kh, vh []uint64) (sum uint64) {
	n := len(kh)
	if n == 0 {
		return 0 // also for a column of no rows, which has no offsets
	}
	typ, off, vh := v.typ[start:start+n], v.str.off[start:start+n+1], vh[:n]
	for e, t := range typ {
		var h uint64
		if s := v.str.data[off[e]:off[e+1]]; t == schemas.ValueString && len(s) <= 16 {
			// strHash, inline
			x, y := shortWords(s)
			h = wyShort(x, y, len(s))
		} else {
			h = v.hash(start + e)
		}
		vh[e] = h
		sum += pairHash(kh[e], h)
	}
	return sum
}

// Constants of wyhash (github.com/wangyi-fudan/wyhash, final version 4),
// whose function for short inputs strHash follows.
const (
	wyp0 = 0xa0761d6478bd642f
	wyp1 = 0xe7037ed1a0b428db
	wyp2 = 0x8ebc6af09c88c6e3
	wyp3 = 0x589965cc75374cc3
	// wySeed is wyhash's seed 0 as its start mixes it.
	wySeed = 0x1ff5c2923a788d2c // wymix(wyp0, wyp1)
)

// wymix folds the 128-bit product of a and b.
func wymix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// strHash hashes b: as wyhash for up to 16 bytes (two loads and
// two multiplications: label values are short), xxhash beyond.
func strHash(b []byte) uint64 {
	if len(b) > 16 {
		return xxhash.Sum64(b)
	}
	x, y := shortWords(b)
	return wyShort(x, y, len(b))
}

// shortWords reads b, at most 16 bytes, as wyhash does: two overlapping
// words, or three bytes.
func shortWords(b []byte) (x, y uint64) {
	switch n := len(b); {
	case n >= 8:
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		return uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[n-4:]))
	case n > 0:
		return uint64(b[0])<<16 | uint64(b[n>>1])<<8 | uint64(b[n-1]), 0
	}
	return 0, 0
}

// wyShort is wyhash's end for an input of n <= 16 bytes read as x and y.
func wyShort(x, y uint64, n int) uint64 {
	hi, lo := bits.Mul64(x^wyp1, y^wySeed)
	return wymix(lo^wyp0^uint64(n), hi^wyp1)
}

// pairHash combines a key and a value hash (both well mixed); series
// identities are sums of pair hashes, so the attribute order does not
// matter.
func pairHash(kh, vh uint64) uint64 { return wymix(kh^wyp2, vh^wyp3) }

// fmix64 is MurmurHash3's finalizer: a bijection that spreads every input
// bit over the output.
func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
