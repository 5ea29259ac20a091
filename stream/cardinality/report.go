package cardinality

import (
	"cmp"
	"slices"
	"time"
)

// Report is the cardinality of the active series of one or all tenants.
type Report struct {
	Tenants []TenantReport `json:"tenants"`
	// Batches and points of tenants beyond Config.MaxTenants, since the
	// start (only in the report of all tenants).
	DroppedBatches uint64 `json:"dropped_batches,omitempty"`
	DroppedPoints  uint64 `json:"dropped_points,omitempty"`
}

// TenantReport is one tenant's series, before and after the rules.
type TenantReport struct {
	Tenant       string         `json:"tenant"`
	SeriesBefore uint64         `json:"series_before"`
	SeriesAfter  uint64         `json:"series_after"`
	Metrics      []MetricReport `json:"metrics"` // by most series, at most topN
	// Other is the metrics beyond Config.MaxMetrics, counted together; their
	// series are in SeriesBefore and SeriesAfter too.
	Other *OtherReport `json:"other,omitempty"`
}

// MetricReport is one metric's active series and its labels with the most
// distinct values.
type MetricReport struct {
	Name         string        `json:"name"`
	SeriesBefore uint64        `json:"series_before"`
	SeriesAfter  uint64        `json:"series_after"`
	Labels       []LabelReport `json:"labels"`
	// LabelsTruncated: the metric has more label keys than Config.MaxLabels;
	// the others were not counted.
	LabelsTruncated bool `json:"labels_truncated,omitempty"`
}

// LabelReport is the number of distinct values of one label of a metric.
type LabelReport struct {
	Key          string `json:"key"`
	ValuesBefore uint64 `json:"values_before"`
	ValuesAfter  uint64 `json:"values_after"`
}

// OtherReport counts the metrics that were not tracked by name.
type OtherReport struct {
	MetricsBefore uint64 `json:"metrics_before"`
	MetricsAfter  uint64 `json:"metrics_after"`
	SeriesBefore  uint64 `json:"series_before"`
	SeriesAfter   uint64 `json:"series_after"`
}

// Report returns the active series of tenant ("" for all tenants, in name
// order) at now. topN bounds the metrics per tenant and the labels per
// metric; topN <= 0 means all. Tenants with no active series are left out.
func (t *Tracker) Report(name string, topN int, now time.Time) Report {
	e := t.epoch(now)
	var tns []*tenant
	t.mu.RLock()
	if name == "" {
		for _, tn := range t.tenants {
			tns = append(tns, tn)
		}
	} else if tn := t.tenants[name]; tn != nil {
		tns = append(tns, tn)
	}
	t.mu.RUnlock()
	slices.SortFunc(tns, func(a, b *tenant) int { return cmp.Compare(a.name, b.name) })

	r := Report{Tenants: []TenantReport{}}
	if name == "" {
		r.DroppedBatches, r.DroppedPoints = t.dropped.Load(), t.droppedPt.Load()
	}
	for _, tn := range tns {
		if tr, ok := tn.report(topN, e); ok {
			r.Tenants = append(r.Tenants, tr)
		}
	}
	return r
}

// lookup returns the metric of name in g, or nil.
func (g *generation) lookup(name string) *metric {
	if g == nil {
		return nil
	}
	return g.metrics[name]
}

func (m *metric) sketch() *sketch {
	if m == nil {
		return nil
	}
	return m.series
}

func (m *metric) values(key string) *sketch {
	if m == nil {
		return nil
	}
	for i := range m.labels {
		if m.labels[i].key == key {
			return m.labels[i].values
		}
	}
	return nil
}

func (tn *tenant) report(topN int, e int64) (TenantReport, bool) {
	// Lock order: Before, then After (Observe holds one at a time).
	for st := range tn.stages {
		s := &tn.stages[st]
		s.mu.Lock()
		defer s.mu.Unlock()
		s.rotate(e)
	}
	tr := TenantReport{Tenant: tn.name, Metrics: []MetricReport{}}
	idx := map[string]int{}
	for st := range tn.stages {
		s := &tn.stages[st]
		done := map[string]bool{}
		for _, g := range []*generation{s.cur, s.prev} {
			if g == nil {
				continue
			}
			for name := range g.metrics {
				if done[name] {
					continue
				}
				done[name] = true
				i, ok := idx[name]
				if !ok {
					i = len(tr.Metrics)
					idx[name] = i
					tr.Metrics = append(tr.Metrics, MetricReport{Name: name})
				}
				mr := &tr.Metrics[i]
				n := union(s.cur.lookup(name).sketch(), s.prev.lookup(name).sketch())
				if Stage(st) == Before {
					mr.SeriesBefore = n
				} else {
					mr.SeriesAfter = n
				}
			}
		}
	}
	var other OtherReport
	for st := range tn.stages {
		s := &tn.stages[st]
		var cur, prev, curN, prevN *sketch
		if s.cur.other != nil {
			cur, curN = s.cur.other.series, s.cur.names
		}
		if s.prev != nil && s.prev.other != nil {
			prev, prevN = s.prev.other.series, s.prev.names
		}
		if Stage(st) == Before {
			other.SeriesBefore, other.MetricsBefore = union(cur, prev), union(curN, prevN)
		} else {
			other.SeriesAfter, other.MetricsAfter = union(cur, prev), union(curN, prevN)
		}
	}
	tr.SeriesBefore, tr.SeriesAfter = other.SeriesBefore, other.SeriesAfter
	for _, m := range tr.Metrics {
		tr.SeriesBefore += m.SeriesBefore
		tr.SeriesAfter += m.SeriesAfter
	}
	if other != (OtherReport{}) {
		tr.Other = &other
	}
	if len(tr.Metrics) == 0 && tr.Other == nil {
		return tr, false
	}
	slices.SortFunc(tr.Metrics, func(a, b MetricReport) int {
		return cmp.Or(-cmp.Compare(max(a.SeriesBefore, a.SeriesAfter), max(b.SeriesBefore, b.SeriesAfter)), cmp.Compare(a.Name, b.Name))
	})
	if topN > 0 && len(tr.Metrics) > topN {
		tr.Metrics = tr.Metrics[:topN]
	}
	for i := range tr.Metrics {
		tr.Metrics[i].Labels, tr.Metrics[i].LabelsTruncated = tn.labels(tr.Metrics[i].Name, topN)
	}
	return tr, true
}

// labels reports the labels of metric name, the most distinct values first.
func (tn *tenant) labels(name string, topN int) ([]LabelReport, bool) {
	out := []LabelReport{}
	idx := map[string]int{}
	truncated := false
	for st := range tn.stages {
		s := &tn.stages[st]
		cur, prev := s.cur.lookup(name), s.prev.lookup(name)
		done := map[string]bool{}
		for _, m := range []*metric{cur, prev} {
			if m == nil {
				continue
			}
			truncated = truncated || m.labelsDropped
			for _, l := range m.labels {
				if done[l.key] {
					continue
				}
				done[l.key] = true
				i, ok := idx[l.key]
				if !ok {
					i = len(out)
					idx[l.key] = i
					out = append(out, LabelReport{Key: l.key})
				}
				n := union(cur.values(l.key), prev.values(l.key))
				if Stage(st) == Before {
					out[i].ValuesBefore = n
				} else {
					out[i].ValuesAfter = n
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b LabelReport) int {
		return cmp.Or(-cmp.Compare(max(a.ValuesBefore, a.ValuesAfter), max(b.ValuesBefore, b.ValuesAfter)), cmp.Compare(a.Key, b.Key))
	})
	if topN > 0 && len(out) > topN {
		out = out[:topN]
	}
	return out, truncated
}
