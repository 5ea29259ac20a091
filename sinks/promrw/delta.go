package promrw

import (
	"math"
	"time"
)

// Delta to cumulative (`delta: convert`). Prometheus stores cumulative
// counters and histograms; an OTLP delta point carries only what happened
// since the previous one. The sink keeps a running total per tenant and
// series (metric name and labels) and writes the total: two tenants sending
// the same series each get their own total, as the backend stores them apart
// (the tenant header). The state lives in the sink
// process: ingest partitions by resource, so one resource's series reach one
// sink member; after a restart the totals start again from zero, which
// Prometheus reads as a counter reset.
//
// A Write that fails is called again with the same records, so the totals a
// Write computes are pending until it succeeds: a retry starts again from the
// committed totals and counts nothing twice. (A record delivered again after
// a crash is counted again: at least once.) Series unseen for deltaTTL are
// forgotten; at most deltaMaxSeries are kept per tenant, and points of new
// series past that are dropped and counted: a tenant at its cap stops only
// its own new series, never another tenant's.

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
	tenants   map[string]*deltaTenant
	maxSeries int // per tenant: deltaMaxSeries
}

// deltaTenant is the running totals of one tenant's series, by encoded
// labels.
type deltaTenant struct {
	committed map[string]*accum
	pending   map[string]*accum
}

func newDeltaState() *deltaState {
	return &deltaState{tenants: map[string]*deltaTenant{}, maxSeries: deltaMaxSeries}
}

// get returns the pending total of tenant's series key, copied from the
// committed one on first use in this Write; nil when the series is new and
// the tenant has no room.
func (d *deltaState) get(tenant, key string) *accum {
	dt := d.tenants[tenant]
	if dt == nil {
		dt = &deltaTenant{committed: map[string]*accum{}, pending: map[string]*accum{}}
		d.tenants[tenant] = dt
	}
	if a := dt.pending[key]; a != nil {
		return a
	}
	a := &accum{}
	if c := dt.committed[key]; c != nil {
		*a = *c
		a.buckets = append([]uint64(nil), c.buckets...)
	} else if len(dt.committed)+len(dt.pending) >= d.maxSeries {
		return nil
	}
	dt.pending[key] = a
	return a
}

// commit makes this Write's totals the committed ones and forgets series
// unseen for deltaTTL, and tenants left without series.
func (d *deltaState) commit(now time.Time) {
	for tenant, dt := range d.tenants {
		for k, a := range dt.pending {
			a.seen = now
			dt.committed[k] = a
		}
		clear(dt.pending)
		for k, a := range dt.committed {
			if now.Sub(a.seen) > deltaTTL {
				delete(dt.committed, k)
			}
		}
		if len(dt.committed) == 0 {
			delete(d.tenants, tenant)
		}
	}
}

// discard drops this Write's totals (the Write failed and will be retried).
func (d *deltaState) discard() {
	for tenant, dt := range d.tenants {
		clear(dt.pending)
		if len(dt.committed) == 0 {
			delete(d.tenants, tenant)
		}
	}
}

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
