package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/reload"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/rules/columnar"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream/aggregate"
	"github.com/sluice-dev/sluice/stream/worker"
)

// ruleSet keeps the worker's rule set current: it loads the rules
// directory at start, then reloads it when its files change (checked every
// interval) or on demand (SIGHUP). A new set is compiled completely before
// it replaces the old one, between two batches; a set that does not load
// leaves the old one running and is reported in the log and in
// sluice_rules_reloads_total{result="error"}.
type ruleSet struct {
	dir     string
	log     *slog.Logger
	current atomic.Pointer[rules.Set]
	stamp   [sha256.Size]byte
	apply   func(worker.Transform)
	// missing: the directory did not exist at the last look, which was
	// reported then; it is reported again only once it has come back
	// and gone again (or on SIGHUP), not at every interval.
	missing bool

	reloads *prometheus.CounterVec
	info    *prometheus.GaugeVec
}

// newRuleSet loads dir. A directory that does not exist means no rules
// (the worker passes everything through) and is only logged; rules that do
// not load are an error, so a broken set never starts.
func newRuleSet(dir string, log *slog.Logger, reg prometheus.Registerer) (*ruleSet, error) {
	rs := &ruleSet{dir: dir, log: log,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_rules_reloads_total",
			Help: "Reloads of the rules directory, by result (ok or error; an error keeps the previous rule set)."}, []string{"result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_rules_info",
			Help: "1 for the rule set in use, labelled with its version (a hash of the files) and rule count."}, []string{"version", "rules"}),
	}
	if reg != nil {
		reg.MustRegister(rs.reloads, rs.info, ruleStatsCollector{rs})
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		log.Warn("no rules directory: records pass through unchanged", "dir", dir)
		rs.missing = true
		return rs, nil
	}
	set, err := rules.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	rs.stamp, _ = dirStamp(dir)
	rs.install(set)
	return rs, nil
}

// Transform is the engine of the current set; nil when there are no rules.
func (rs *ruleSet) Transform() worker.Transform {
	if set := rs.current.Load(); set != nil {
		t, err := newMerging(set)
		if err != nil { // the rules package validated the specs: a bug
			panic(err)
		}
		return t
	}
	return nil
}

// merging is the columnar engine as a worker.Merger: it turns the marks of
// the rules into the aggregate specs the worker sends with the points.
type merging struct {
	*columnar.Engine
	specs  [][]*aggregate.Spec // [Mark.Merge][Mark.Limit]
	marked []columnar.Marked
	keeps  bool // the set's KeepsResources
	limits bool // some rule limits series
}

func newMerging(set *rules.Set) (*merging, error) {
	m := &merging{Engine: columnar.New(set, columnar.Options{Allocator: arrowpool.Default, AttrSetTable: true}), keeps: set.KeepsResources(), limits: len(set.Limits()) > 0}
	merges, limits := set.Merges(), set.Limits()
	m.specs = make([][]*aggregate.Spec, len(merges)+1)
	for mi := range m.specs {
		m.specs[mi] = make([]*aggregate.Spec, len(limits)+1)
		for li := range m.specs[mi] {
			var merge rules.MergeSpec
			switch {
			case mi > 0:
				merge = merges[mi-1]
			case li > 0: // only a limit marked the point: its rule says how it merges
				merge = limits[li-1].Merge
			default: // not marked: never looked up
				merge = rules.DefaultMerge
			}
			spec, err := aggregateSpec(merge, limits, li)
			if err != nil {
				return nil, err
			}
			m.specs[mi][li] = spec
		}
	}
	return m, nil
}

// aggregateSpec is the spec of points merged by merge and limited by limit
// li (1-based; 0 none). It is named after the rule that asked for it: the
// aggregate rule, else the limit rule, else "default" (a rule changed the
// series without an aggregate action).
func aggregateSpec(merge rules.MergeSpec, limits []rules.LimitSpec, li int) (*aggregate.Spec, error) {
	spec := &aggregate.Spec{Rule: merge.Rule, Interval: merge.Interval, Grace: merge.Grace}
	var err1, err2 error
	spec.Gauge, err1 = aggregate.ParseGaugeFunc(merge.Gauge)
	spec.Summary, err2 = aggregate.ParseSummaryMode(merge.Summary)
	if li > 0 {
		spec.Limit = limits[li-1].MaxSeries
		if spec.Rule == "" {
			spec.Rule = limits[li-1].Rule
		}
	}
	if spec.Rule == "" {
		spec.Rule = "default"
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return spec, spec.Validate()
}

// ApplyMerge implements worker.Merger.
func (m *merging) ApplyMerge(b *schemas.Batch, dst []worker.Merge) (*schemas.Batch, []worker.Merge, error) {
	out, marked, err := m.ApplyMarked(b, m.marked[:0])
	m.marked = marked[:0]
	if err != nil {
		return nil, dst, err
	}
	for _, mk := range marked {
		dst = append(dst, worker.Merge{Row: mk.Row, Orig: mk.Orig, Spec: m.specs[mk.Mark.Merge][mk.Mark.Limit]})
	}
	return out, dst, nil
}

// KeepsResources implements worker.ResourceKeeper.
func (m *merging) KeepsResources() bool { return m.keeps }

// HasLimits implements worker.ResourceKeeper.
func (m *merging) HasLimits() bool { return m.limits }

func (rs *ruleSet) install(set *rules.Set) {
	if old := rs.current.Swap(set); old != nil {
		rs.info.DeleteLabelValues(old.Version(), fmt.Sprint(old.Len()))
	}
	rs.info.WithLabelValues(set.Version(), fmt.Sprint(set.Len())).Set(1)
	rs.log.Info("rules loaded", "dir", rs.dir, "version", set.Version(), "rules", set.Len(), "files", len(set.Files()))
	if rs.apply != nil {
		rs.apply(rs.Transform())
	}
}

// Reload loads the directory again and swaps the set if it changed. A
// directory that does not exist is the documented "no rules" state, not an
// error: it is logged when it starts (once), and the set in use, if any,
// stays.
func (rs *ruleSet) Reload() {
	if _, err := os.Stat(rs.dir); errors.Is(err, fs.ErrNotExist) {
		if !rs.missing {
			rs.missing = true
			if rs.current.Load() != nil {
				rs.log.Warn("rules directory is gone; the previous rule set stays in use", "dir", rs.dir)
			} else {
				rs.log.Warn("no rules directory: records pass through unchanged", "dir", rs.dir)
			}
		}
		return
	}
	if rs.missing {
		rs.missing = false
		rs.log.Info("rules directory appeared; loading it", "dir", rs.dir)
	}
	stamp, err := dirStamp(rs.dir)
	if err == nil && stamp == rs.stamp && rs.current.Load() != nil {
		return
	}
	set, err := rules.Load(rs.dir)
	if err != nil {
		rs.reloads.WithLabelValues("error").Inc()
		rs.log.Error("rules not reloaded; the previous rule set stays in use", "dir", rs.dir, "err", err)
		rs.stamp = stamp // do not report the same broken files again until they change
		return
	}
	rs.stamp = stamp
	rs.reloads.WithLabelValues("ok").Inc()
	if cur := rs.current.Load(); cur != nil && cur.Version() == set.Version() {
		return
	}
	rs.install(set)
}

// Watch reloads every interval when the files changed, and at once on hup.
func (rs *ruleSet) Watch(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	reload.Run(ctx, interval, hup, func(force bool) {
		if force {
			rs.log.Info("SIGHUP: reloading rules", "dir", rs.dir)
			rs.stamp = [sha256.Size]byte{} // reload even if nothing seems changed
			rs.missing = false             // and say again if the directory is missing
		}
		rs.Reload()
	})
}

// dirStamp is a hash of the rule files' names, sizes and modification
// times: cheap to take every few seconds.
func dirStamp(dir string) ([sha256.Size]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	var files []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		files = append(files, filepath.Join(dir, e.Name()))
	}
	return reload.Stamp(files...), nil
}

// ruleStatsCollector exports the per-rule counters of the current set.
type ruleStatsCollector struct{ rs *ruleSet }

var (
	ruleLabels  = []string{"rule", "signal", "file"}
	ruleMatched = prometheus.NewDesc("sluice_rule_matched_total", "Items the rule's condition matched.", ruleLabels, nil)
	ruleDropped = prometheus.NewDesc("sluice_rule_dropped_total", "Items the rule dropped.", ruleLabels, nil)
	ruleChanged = prometheus.NewDesc("sluice_rule_changed_total", "Items the rule changed.", ruleLabels, nil)
	ruleErrors  = prometheus.NewDesc("sluice_rule_errors_total", "Items on which one of the rule's expressions failed.", ruleLabels, nil)
	ruleSeconds = prometheus.NewDesc("sluice_rule_eval_seconds_total", "Time spent evaluating the rule.", ruleLabels, nil)
)

func (c ruleStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ruleMatched, ruleDropped, ruleChanged, ruleErrors, ruleSeconds} {
		ch <- d
	}
}

func (c ruleStatsCollector) Collect(ch chan<- prometheus.Metric) {
	set := c.rs.current.Load()
	if set == nil {
		return
	}
	for _, s := range set.Stats() {
		l := []string{s.Rule, s.Signal.String(), filepath.Base(s.File)}
		ch <- prometheus.MustNewConstMetric(ruleMatched, prometheus.CounterValue, float64(s.Matched), l...)
		ch <- prometheus.MustNewConstMetric(ruleDropped, prometheus.CounterValue, float64(s.Dropped), l...)
		ch <- prometheus.MustNewConstMetric(ruleChanged, prometheus.CounterValue, float64(s.Changed), l...)
		ch <- prometheus.MustNewConstMetric(ruleErrors, prometheus.CounterValue, float64(s.Errors), l...)
		ch <- prometheus.MustNewConstMetric(ruleSeconds, prometheus.CounterValue, float64(s.EvalNanos)/1e9, l...)
	}
}
