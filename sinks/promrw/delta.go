package promrw

import (
	"math"
	"time"
)

// Delta to cumulative (`delta: convert`). Prometheus stores cumulative
// counters and histograms; an OTLP delta point carries only what happened
// since the previous one. The sink keeps a running total per series (metric
// name and labels) and writes the total. The state lives in the sink
// process: ingest partitions by resource, so one resource's series reach one
// sink member; after a restart the totals start again from zero, which
// Prometheus reads as a counter reset.
//
// A Write that fails is called again with the same records, so the totals a
// Write computes are pending until it succeeds: a retry starts again from the
// committed totals and counts nothing twice. (A record delivered again after
// a crash is counted again: at least once.) Series unseen for deltaTTL are
// forgotten; at most deltaMaxSeries are kept, and points of new series past
// that are dropped and counted.

const (
	deltaTTL       = time.Hour
	deltaMaxSeries = 200_000
)

// accum is the running total of one series.
type accum struct {
	value   float64   // sums
	count   uint64    // histograms
	sum     float64   // histograms
	buckets []uint64  // histograms, per explicit bound (+Inf last)
	bounds  []float64 // the bounds the buckets were counted with
	start   int64     // ms: the first point's start time
	seen    time.Time
}

type deltaState struct {
	committed map[string]*accum
	pending   map[string]*accum
}

func newDeltaState() *deltaState {
	return &deltaState{committed: map[string]*accum{}, pending: map[string]*accum{}}
}

// get returns the pending total of key, copied from the committed one on
// first use in this Write; nil when the series is new and there is no room.
func (d *deltaState) get(key string) *accum {
	if a := d.pending[key]; a != nil {
		return a
	}
	a := &accum{}
	if c := d.committed[key]; c != nil {
		*a = *c
		a.buckets = append([]uint64(nil), c.buckets...)
	} else if len(d.committed)+len(d.pending) >= deltaMaxSeries {
		return nil
	}
	d.pending[key] = a
	return a
}

// commit makes this Write's totals the committed ones and forgets series
// unseen for deltaTTL.
func (d *deltaState) commit(now time.Time) {
	for k, a := range d.pending {
		a.seen = now
		d.committed[k] = a
	}
	clear(d.pending)
	for k, a := range d.committed {
		if now.Sub(a.seen) > deltaTTL {
			delete(d.committed, k)
		}
	}
}

// discard drops this Write's totals (the Write failed and will be retried).
func (d *deltaState) discard() { clear(d.pending) }

// sameBounds reports whether a's buckets were counted with bounds.
func (a *accum) sameBounds(bounds []float64) bool {
	if len(a.bounds) != len(bounds) {
		return false
	}
	for i, b := range bounds {
		if math.Float64bits(a.bounds[i]) != math.Float64bits(b) {
			return false
		}
	}
	return true
}
