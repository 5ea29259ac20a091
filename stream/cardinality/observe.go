package cardinality

import (
	"fmt"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// Observe adds the data points of b, a metrics batch of tenant, to stage st
// as seen at now. It reads b only during the call.
//
// At Both it adds them to Before and After in one pass, for a batch the
// rules left as it was: each series and label is hashed once and added to
// both stages' sketches, which end up exactly as after Observe at Before
// and then at After with the same b and now (and so do the reports).
//
// A batch of a tenant beyond Config.MaxTenants is counted as dropped, once
// per stage, and is not an error.
func (t *Tracker) Observe(tenant string, st Stage, b *schemas.Batch, now time.Time) error {
	if st > Both {
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
		n := uint64(1)
		if st == Both {
			n = numStages
		}
		t.dropped.Add(n)
		t.droppedPt.Add(n * uint64(c.points))
		return nil
	}
	var ss []stage
	if st == Both {
		ss = tn.stages[:]
	} else {
		ss = tn.stages[st : st+1]
	}
	for k := range ss { // lock order: Before, then After (as Report)
		ss[k].mu.Lock()
		ss[k].rotate(e)
	}
	sc := t.getScratch()
	defer func() {
		for k := range ss {
			ss[k].mu.Unlock()
		}
		t.putScratch(sc)
	}()
	sc.stage0 = 0
	if st != Both {
		sc.stage0 = int(st)
	}
	if len(b.ItemSetIDs) == c.points && b.SetSpace != 0 && c.ptSets == nil {
		t.kept.mu.Lock() // lock order: stages, then kept
		defer t.kept.mu.Unlock()
		sc.useKept(&t.kept, b.ItemSetIDs, b.SetSpace)
		defer func() { sc.sets, sc.tab = nil, nil }() // the kept table is not the scratch's
	} else {
		sc.useSets(b.ItemAttrSets, c.points)
	}
	return observeStages(ss, &c, sc, &t.cfg)
}

// metricRef is what a metric row of the batch maps to in one stage.
type metricRef struct {
	m      *metric
	salt   uint64 // name hash for the "other" bucket, else 0
	resSum uint64
	hint   int // where the first point label was found last time
	track  bool
	done   bool
}

// maxRun bounds the points whose sketch updates are batched (see
// observeStages).
const maxRun = 64

// pending is a point whose hashes are computed and whose sketch updates
// wait for the end of its run.
type pending struct {
	sum    uint64   // of its pair hashes
	kh, vh []uint64 // its key and value hashes
	start  int      // its first attribute entry
	set    int32    // its attribute set (scratch.sets), or -1
}

// observeStages adds the points of c to ss, one stage or both: each
// point's hashes are computed once and added to every stage.
//
// Points come in runs of one metric row (the batch holds a metric's points
// together). The hashes of a run are computed first, then its series go
// into each stage's sketch in one tight loop, so that the memory accesses
// of a sketch (random, and often cache misses) overlap rather than wait
// in turn behind the hashing; then the label values of the new series.
// The sketches end up as if the points were added one by one: a run has
// one metric row, resolved before it starts, and label inserts do not
// change the series sketches.
func observeStages(ss []stage, c *columns, sc *scratch, cfg *Config) error {
	sc.reset(c, len(ss))
	refs := sc.refs[0]
	pt := &c.ptAttrs
	for i := 0; i < c.points; {
		mr := int(c.ptMetric[i])
		if mr >= c.metrics {
			return fmt.Errorf("cardinality: %w: point %d: metric_id %d of %d metrics", schemas.ErrSchema, i, mr, c.metrics)
		}
		if !refs[mr].done {
			r, err := c.resource(mr)
			if err != nil {
				return err
			}
			sc.hashResource(&c.resAttrs, r)
			for k := range ss {
				ss[k].resolve(&sc.refs[k][mr], mr, r, c, sc, cfg)
			}
		}
		sc.startRun()
		for ; i < c.points && len(sc.run) < maxRun && int(c.ptMetric[i]) == mr; i++ {
			row := i
			if c.ptSets != nil {
				row = int(c.ptSets[i])
			}
			s, e := pt.m.ValueOffsets(row)
			start, end := int(s), int(e)
			var kh, vh []uint64
			var sum uint64
			set := int32(-1)
			if sc.sets != nil {
				set = int32(sc.sets[i])
				kh, vh, sum = sc.setHashes(pt, int(set), start, end)
			} else {
				kh = sc.keyHashes(&pt.keys, start, end)
				vh, sum = sc.rowHashes(pt, start, kh)
			}
			// Set in place: a pending built aside and copied in is loaded
			// in wider words than it was stored, which stalls.
			sc.run = sc.run[:len(sc.run)+1]
			p := &sc.run[len(sc.run)-1]
			p.sum, p.kh, p.vh, p.start, p.set = sum, kh, vh, start, set
		}
		for k := range ss {
			sc.refs[k][mr].add(sc.run, sc.fresh[:len(sc.run)], pt, cfg.MaxLabels, sc.tab, sc.stage0+k)
		}
	}
	return nil
}

// resolve maps metric row mr, of resource row r, to its metric (or the
// other bucket) in s, and adds the values of the resource's attributes to
// the metric's labels.
func (s *stage) resolve(ref *metricRef, mr, r int, c *columns, sc *scratch, cfg *Config) {
	*ref = metricRef{resSum: sc.resSum[r], done: true}
	g := s.cur
	name := c.metName.Value(mr)
	m := g.metrics[name]
	if m == nil && len(g.metrics) < cfg.MaxMetrics {
		m = &metric{id: metricIDs.Add(1), name: strings.Clone(name), series: newSeriesSketch(&g.filterRoom)}
		g.metrics[m.name] = m
	}
	if m == nil {
		if g.other == nil {
			g.other = &metric{id: metricIDs.Add(1), series: newSeriesSketch(&g.filterRoom)}
			g.names = newSketch(seriesPrecision)
		}
		ref.m, ref.salt = g.other, xxhash.Sum64String(name)
		g.names.insert(ref.salt)
		return
	}
	ref.m, ref.track = m, true
	start, end := c.resAttrs.entries(r)
	for j := start; j < end; j++ {
		if l := m.label(sc.resKH[j], &c.resAttrs, j, 0, cfg.MaxLabels); l >= 0 {
			m.labels[l].values.insert(sc.resVH[j])
		}
	}
}

// add adds run, points of the metric row of ref, to stage k (Before or
// After); fresh is scratch space, one per point. A point of an attribute
// set (sets, the batch's, or those kept from batch to batch) whose
// last point added at stage k was the same series (the same metric of the
// same window, resource and set: a series in several steps of a backlog,
// or in each scrape) is not added again: it would find itself counted, or,
// in a dense sketch, change nothing but the filter of counted series.
func (ref *metricRef) add(run []pending, fresh []bool, a *attrCol, maxLabels int, sets *setTable, k int) {
	m := ref.m
	n := 0
	for p := range run {
		key := (run[p].sum + ref.resSum) ^ ref.salt
		if s := run[p].set; s >= 0 {
			last := &sets.ents[s].last[k]
			if last.metric == m.id && last.key == key {
				fresh[p] = false
				continue
			}
			last.metric, last.key = m.id, key
		}
		fresh[p] = m.series.insert(fmix64(key))
		if fresh[p] {
			n++
		}
	}
	m.series.tally(len(run), n)
	if !ref.track {
		return
	}
	for p := range run {
		// A series the exact set already held added its label values to
		// this metric's sketches when it was first seen (those of the
		// resource are added per metric row, in resolve): nothing to add.
		// Keys not tracked then are not tracked now, as labels are only
		// added while there is room.
		if fresh[p] {
			ref.addLabels(&run[p], a, maxLabels)
		}
	}
}

// addLabels adds the attribute values of point p to the labels of ref's
// metric.
func (ref *metricRef) addLabels(p *pending, a *attrCol, maxLabels int) {
	m := ref.m
	hint := ref.hint
	for e, h := range p.kh {
		// Points of a metric usually carry their keys in one order: the
		// expected label is the one after the previous key's.
		l := hint
		if l >= len(m.labels) || m.labels[l].hash != h {
			if l = m.label(h, a, p.start+e, hint, maxLabels); l < 0 {
				continue
			}
		}
		if e == 0 {
			ref.hint = l
		}
		hint = l + 1
		m.labels[l].values.insert(p.vh[e])
	}
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
	m.labels = append(m.labels, label{hash: kh, key: string(a.keys.at(j)), values: newSketch(labelPrecision)})
	return n
}
