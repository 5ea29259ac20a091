package cardinality

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxMetrics = 10000
	DefaultMaxLabels  = 64
	DefaultWindow     = 10 * time.Minute
	DefaultMaxTenants = 1000
)

// Sketch precisions (see the package doc for errors and sizes).
const (
	seriesPrecision = 14
	labelPrecision  = 12
)

// Config bounds a Tracker. Zero fields take the defaults.
type Config struct {
	MaxMetrics int           // per tenant, stage and window, metrics tracked by name; beyond, counted in an "other" bucket
	MaxLabels  int           // per metric, label keys tracked
	Window     time.Duration // a series is active for one to two windows after it was last seen
	MaxTenants int           // tenants tracked; batches of further tenants are counted as dropped
}

func (c Config) withDefaults() Config {
	if c.MaxMetrics <= 0 {
		c.MaxMetrics = DefaultMaxMetrics
	}
	if c.MaxLabels <= 0 {
		c.MaxLabels = DefaultMaxLabels
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.MaxTenants <= 0 {
		c.MaxTenants = DefaultMaxTenants
	}
	return c
}

// Stage says where in the pipeline a batch was observed.
type Stage uint8

const (
	Before Stage = iota // the raw batch, before the rules
	After               // the batch the rules produced
	// Both is a batch the rules left as it was, observed for Before and
	// After in one pass (see Observe).
	Both
)

// numStages is the number of stages the tracker counts (Before and After).
const numStages = 2

func (s Stage) String() string {
	switch s {
	case Before:
		return "before"
	case After:
		return "after"
	case Both:
		return "both"
	}
	return "invalid"
}

// ErrNotMetrics is returned by Observe for a batch that is not of metrics.
var ErrNotMetrics = errors.New("cardinality: not a metrics batch")

// Tracker tracks series cardinality per tenant and stage. It is safe for
// concurrent use.
type Tracker struct {
	cfg Config
	now func() time.Time // Handler's clock

	mu        sync.RWMutex
	tenants   map[string]*tenant
	sweptAt   int64 // epoch of the last sweep for idle tenants
	dropped   atomic.Uint64
	droppedPt atomic.Uint64

	scratchMu sync.Mutex
	scratches []*scratch // of finished Observe calls, for the next ones

	kept keptSets // of the decoder's sets, from batch to batch
}

// New returns a Tracker bounded by cfg.
func New(cfg Config) *Tracker {
	return &Tracker{cfg: cfg.withDefaults(), now: time.Now, tenants: map[string]*tenant{}, sweptAt: -1}
}

type tenant struct {
	name     string
	lastSeen atomic.Int64 // epoch of the last Observe
	stages   [numStages]stage
}

// stage holds the two generations of one tenant and stage. mu guards
// everything, including the sketches. An Observe call holds it for its
// whole batch (at Both, Before's then After's); its per-batch state is in a
// scratch of the Tracker's, not here, so that it costs per call running at
// once rather than per tenant.
type stage struct {
	mu    sync.Mutex
	epoch int64 // window number of cur
	cur   *generation
	prev  *generation // nil when nothing was seen in the previous window
}

// generation is the state of one window.
type generation struct {
	metrics    map[string]*metric
	other      *metric // series of metrics beyond MaxMetrics; nil until needed
	names      *sketch // names of those metrics
	filterRoom int     // bytes the filters of its dense series sketches may still take
}

type metric struct {
	// id is never given twice (metricIDs): what the sets' last series
	// name (setEnt), without holding the metric, its window's, in memory.
	id            uint64
	name          string
	series        *sketch
	labels        []label
	labelsDropped bool
}

type label struct {
	hash   uint64 // of key
	key    string
	values *sketch
}

// metricIDs numbers the metrics of every window of every Tracker.
var metricIDs atomic.Uint64

func newGeneration() *generation {
	return &generation{metrics: map[string]*metric{}, filterRoom: maxFilterBytes}
}

func (t *Tracker) epoch(now time.Time) int64 { return now.UnixNano() / int64(t.cfg.Window) }

// rotate moves s to window e: the current generation becomes the previous
// one after one window, and both are dropped after two. A clock going
// backwards keeps the current generation.
func (s *stage) rotate(e int64) {
	switch {
	case s.cur == nil:
		s.cur, s.prev = newGeneration(), nil
	case e == s.epoch+1:
		s.cur, s.prev = newGeneration(), s.cur
	case e > s.epoch+1:
		s.cur, s.prev = newGeneration(), nil
	default:
		return
	}
	s.epoch = e
}

// tenantFor returns the state of name, creating it when there is room, or
// nil. It marks the tenant as seen in epoch e while holding t.mu, so a sweep
// never removes a tenant that is being written.
func (t *Tracker) tenantFor(name string, e int64) *tenant {
	t.mu.RLock()
	tn := t.tenants[name]
	if tn != nil {
		tn.lastSeen.Store(e)
	}
	t.mu.RUnlock()
	if tn != nil {
		return tn
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tn = t.tenants[name]; tn == nil {
		if len(t.tenants) >= t.cfg.MaxTenants && t.sweptAt != e {
			t.sweptAt = e
			for k, v := range t.tenants {
				if v.lastSeen.Load() < e-1 { // nothing active
					delete(t.tenants, k)
				}
			}
		}
		if len(t.tenants) >= t.cfg.MaxTenants {
			return nil
		}
		tn = &tenant{name: strings.Clone(name)}
		t.tenants[tn.name] = tn
	}
	tn.lastSeen.Store(e)
	return tn
}
