package aggregate

import (
	"unsafe"
)

// RuleStats are the counters (since New or Restore: they are part of the
// snapshot) and gauges of one rule (Spec.Rule).
type RuleStats struct {
	InputSeries      int               // active input series
	OutputSeries     int               // active output series
	PointsIn         uint64            // points given to Add
	PointsMerged     uint64            // points that went into an output point
	PointsLate       uint64            // points whose interval had closed
	PointsOutOfOrder uint64            // points not newer than their input's last point
	PointsDropped    map[string]uint64 // by reason: summary, bounds_mismatch, no_value, type_change, no_data, invalid
	SeriesFolded     uint64            // new output series a limit refused (folded into the overflow series)
	FoldedByMetric   map[string]uint64 // SeriesFolded by metric name
	StateBytes       int64             // estimated memory of the rule's series and inputs
}

// Sizes used for the state estimate: a struct and its share of the index,
// a map slot (key and uint32 value) and its control byte at the typical
// load of 2/3.
const (
	seriesBytes = int64(unsafe.Sizeof(series{})) + (int64(unsafe.Sizeof(seriesKey{}))+4+1)*3/2
	inputBytes  = int64(unsafe.Sizeof(input{})) + (int64(unsafe.Sizeof(inputKey{}))+4+1)*3/2
	ivalBytes   = int64(unsafe.Sizeof(ival{}))
	gentBytes   = int64(unsafe.Sizeof(gent{}))
	extBytes    = int64(unsafe.Sizeof(ext{}))
	sliceBytes  = int64(unsafe.Sizeof([]gent{})) // an entry of Aggregator.mores
)

func (d *dist) bytes() int64 {
	return int64(unsafe.Sizeof(*d)) + 8*int64(cap(d.buckets)+cap(d.pos.counts)+cap(d.neg.counts))
}

// Stats returns the stats of every rule seen.
func (a *Aggregator) Stats() map[string]RuleStats {
	m := make(map[string]RuleStats, len(a.rules))
	outs := make([]int, len(a.rules))
	ins := make([]int, len(a.rules))
	bytes := make([]int64, len(a.rules))
	for i := range a.inputs {
		p := &a.inputs[i]
		if p.flags&iAlive == 0 {
			continue
		}
		if s := &a.series[p.series]; s.flags&sAlive != 0 {
			r := a.specs[s.spec].rule
			ins[r]++
			bytes[r] += inputBytes
			if p.d != 0 {
				bytes[r] += a.dists[p.d].bytes()
			}
		}
	}
	for si := range a.series {
		s := &a.series[si]
		if s.flags&sAlive == 0 {
			continue
		}
		r := a.specs[s.spec].rule
		outs[r]++
		b := seriesBytes + int64(len(s.attrs)) + ivalBytes*int64(cap(s.open))
		for i := range s.open {
			if x := s.open[i].x; x != 0 {
				b += extBytes
				if m := a.ext[x].more; m != 0 {
					b += sliceBytes + gentBytes*int64(cap(a.mores[m]))
				}
				if d := a.ext[x].d; d != 0 {
					b += a.dists[d].bytes()
				}
			}
		}
		if s.h != nil {
			b += 8*int64(cap(s.h.bounds)) + s.h.tot.bytes()
		}
		bytes[r] += b
	}
	for i, name := range a.rules {
		c := &a.stats[i]
		rs := RuleStats{
			InputSeries: ins[i], OutputSeries: outs[i], PointsIn: c.in, PointsMerged: c.merged,
			PointsLate: c.late, PointsOutOfOrder: c.ooo, SeriesFolded: c.folded, StateBytes: bytes[i],
			PointsDropped: map[string]uint64{},
		}
		if c.foldedBy != nil {
			rs.FoldedByMetric = make(map[string]uint64, len(c.foldedBy))
			for m, n := range c.foldedBy {
				rs.FoldedByMetric[m] = *n
			}
		}
		for j, n := range c.dropped {
			if n > 0 {
				rs.PointsDropped[dropNames[j]] = n
			}
		}
		m[name] = rs
	}
	return m
}
