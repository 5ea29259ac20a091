package cardinality

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cespare/xxhash/v2"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// Observe adds the data points of b, a metrics batch of tenant at stage st,
// seen at now. It reads b only during the call. A batch of a tenant beyond
// Config.MaxTenants is counted as dropped and is not an error.
func (t *Tracker) Observe(tenant string, st Stage, b *schemas.Batch, now time.Time) error {
	if st >= numStages {
		return fmt.Errorf("cardinality: invalid stage %d", st)
	}
	if b == nil || b.Signal != otlpwire.Metrics || b.Metrics == nil || b.Items == nil || b.Resources == nil {
		return ErrNotMetrics
	}
	var c columns
	if err := c.init(b); err != nil {
		return err
	}
	if c.points == 0 {
		return nil
	}
	e := t.epoch(now)
	tn := t.tenantFor(tenant, e)
	if tn == nil {
		t.dropped.Add(1)
		t.droppedPt.Add(uint64(c.points))
		return nil
	}
	s := &tn.stages[st]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate(e)
	return s.observe(&c, &t.cfg)
}

// attrCol is an attributes column (map<utf8, AnyValue>).
type attrCol struct {
	m    *array.Map
	keys *array.String
	vals schemas.AnyColumns
}

func (a *attrCol) init(col arrow.Array, what string) error {
	var ok bool
	if a.m, ok = col.(*array.Map); ok {
		a.keys, ok = a.m.Keys().(*array.String)
	}
	if !ok {
		return fmt.Errorf("cardinality: %w: %s attributes are %s", schemas.ErrSchema, what, col.DataType())
	}
	var err error
	a.vals, err = schemas.NewAnyColumns(a.m.Items())
	return err
}

// columns are the columns of a batch that Observe reads.
type columns struct {
	resAttrs  attrCol
	metRes    *array.Uint32
	metName   *array.String
	ptMetric  *array.Uint32
	ptAttrs   attrCol
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
	if err := c.ptAttrs.init(b.Items.Column(schemas.PtAttributes), "point"); err != nil {
		return err
	}
	var ok1, ok2, ok3 bool
	c.metRes, ok1 = b.Metrics.Column(schemas.MetResourceID).(*array.Uint32)
	c.metName, ok2 = b.Metrics.Column(schemas.MetName).(*array.String)
	c.ptMetric, ok3 = b.Items.Column(schemas.PtMetricID).(*array.Uint32)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("cardinality: %w: not the metrics layout", schemas.ErrSchema)
	}
	c.resources, c.metrics, c.points = int(b.Resources.NumRows()), int(b.Metrics.NumRows()), int(b.Items.NumRows())
	return nil
}

// scratch is per-batch state, reused across batches of one stage.
type scratch struct {
	refs   []metricRef // per metric row
	resSum []uint64    // per resource row: sum of its pair hashes
	resOK  []bool
}

// metricRef is what a metric row of the batch maps to.
type metricRef struct {
	m      *metric
	salt   uint64 // name hash for the "other" bucket, else 0
	resSum uint64
	hint   int // where the first point label was found last time
	track  bool
	done   bool
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func (s *stage) observe(c *columns, cfg *Config) error {
	sc := &s.scratch
	sc.refs = grow(sc.refs, c.metrics)
	sc.resSum = grow(sc.resSum, c.resources)
	sc.resOK = grow(sc.resOK, c.resources)
	pt := &c.ptAttrs
	for i := range c.points {
		mr := int(c.ptMetric.Value(i))
		if mr >= c.metrics {
			return fmt.Errorf("cardinality: %w: point %d: metric_id %d of %d metrics", schemas.ErrSchema, i, mr, c.metrics)
		}
		ref := &sc.refs[mr]
		if !ref.done {
			if err := s.resolve(ref, mr, c, cfg); err != nil {
				return err
			}
		}
		m := ref.m
		sum := ref.resSum
		start, end := pt.m.ValueOffsets(i)
		hint := ref.hint
		for j := int(start); j < int(end); j++ {
			key := pt.keys.Value(j)
			vh := valueHash(&pt.vals, j)
			if !ref.track {
				sum += pairHash(xxhash.Sum64String(key), vh)
				continue
			}
			// Points of a metric usually repeat their keys in one order:
			// comparing with the expected key is cheaper than hashing it.
			var kh uint64
			l := -1
			if hint < len(m.labels) && m.labels[hint].key == key {
				kh, l = m.labels[hint].hash, hint
			} else {
				kh = xxhash.Sum64String(key)
				l = m.label(kh, pt, j, hint, cfg.MaxLabels)
			}
			sum += pairHash(kh, vh)
			if l >= 0 {
				if j == int(start) {
					ref.hint = l
				}
				hint = l + 1
				m.labels[l].values.insert(vh)
			}
		}
		m.series.insert(fmix64(sum ^ ref.salt))
	}
	return nil
}

// resolve maps metric row mr to its metric (or the other bucket), and adds
// the values of its resource's attributes to the metric's labels.
func (s *stage) resolve(ref *metricRef, mr int, c *columns, cfg *Config) error {
	r := int(c.metRes.Value(mr))
	if r >= c.resources {
		return fmt.Errorf("cardinality: %w: metric %d: resource_id %d of %d resources", schemas.ErrSchema, mr, r, c.resources)
	}
	sc := &s.scratch
	ra := &c.resAttrs
	start, end := ra.m.ValueOffsets(r)
	if ra.m.IsNull(r) {
		start, end = 0, 0
	}
	if !sc.resOK[r] {
		var sum uint64
		for j := int(start); j < int(end); j++ {
			sum += pairHash(xxhash.Sum64String(ra.keys.Value(j)), valueHash(&ra.vals, j))
		}
		sc.resSum[r], sc.resOK[r] = sum, true
	}
	*ref = metricRef{resSum: sc.resSum[r], done: true}

	g := s.cur
	name := c.metName.Value(mr)
	m := g.metrics[name]
	if m == nil && len(g.metrics) < cfg.MaxMetrics {
		m = &metric{name: strings.Clone(name), series: newSketch(seriesPrecision)}
		g.metrics[m.name] = m
	}
	if m == nil {
		if g.other == nil {
			g.other = &metric{series: newSketch(seriesPrecision)}
			g.names = newSketch(seriesPrecision)
		}
		ref.m, ref.salt = g.other, xxhash.Sum64String(name)
		g.names.insert(ref.salt)
		return nil
	}
	ref.m, ref.track = m, true
	for j := int(start); j < int(end); j++ {
		if l := m.label(xxhash.Sum64String(ra.keys.Value(j)), ra, j, 0, cfg.MaxLabels); l >= 0 {
			m.labels[l].values.insert(valueHash(&ra.vals, j))
		}
	}
	return nil
}

// label returns the index of the label whose key hashes to kh (the key of
// entry j of a), adding it when there is room, or -1. The search starts at
// hint: points of a metric usually carry their keys in the same order.
func (m *metric) label(kh uint64, a *attrCol, j, hint, maxLabels int) int {
	n := len(m.labels)
	for k := range n {
		i := hint + k
		if i >= n {
			i -= n
		}
		if m.labels[i].hash == kh {
			return i
		}
	}
	if n >= maxLabels {
		m.labelsDropped = true
		return -1
	}
	m.labels = append(m.labels, label{hash: kh, key: strings.Clone(a.keys.Value(j)), values: newSketch(labelPrecision)})
	return n
}

// Seeds that keep values of different types apart.
const (
	seedInt    = 0x9e3779b97f4a7c15
	seedDouble = 0xc2b2ae3d27d4eb4f
	seedBool   = 0x165667b19e3779f9
	seedBytes  = 0x27d4eb2f165667c5
	seedOther  = 0x85ebca77c2b2ae63
)

// valueHash hashes the AnyValue of row j. Strings hash as their bytes (the
// common case, and what a Prometheus label value is).
func valueHash(v *schemas.AnyColumns, j int) uint64 {
	switch typ := v.Type.Value(j); typ {
	case schemas.ValueString:
		return xxhash.Sum64String(v.Str.Value(j))
	case schemas.ValueInt:
		return fmix64(uint64(v.Int.Value(j)) ^ seedInt)
	case schemas.ValueDouble:
		return fmix64(math.Float64bits(v.Double.Value(j)) ^ seedDouble)
	case schemas.ValueBool:
		if v.Bool.Value(j) {
			return fmix64(seedBool + 1)
		}
		return fmix64(seedBool)
	case schemas.ValueBytes, schemas.ValueArray, schemas.ValueKVList, schemas.ValueRaw:
		return fmix64(xxhash.Sum64(v.Bytes.Value(j)) ^ (seedBytes + uint64(typ)))
	default:
		return fmix64(seedOther + uint64(typ))
	}
}

// pairHash combines a key and a value hash; series identities are sums of
// pair hashes, so the attribute order does not matter.
func pairHash(kh, vh uint64) uint64 { return fmix64(kh ^ (vh * seedInt) ^ seedOther) }

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
