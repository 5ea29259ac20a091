package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Merging. A metric data point whose identity a rule changed (its
// attributes, resource attributes, name or unit) may now share its series
// with points of other input series; the worker merges such points by
// series and interval (stream/aggregate) instead of writing them side by
// side. The rules mark each point with how: Result.Mark.

// MergeSpec says how the points a rule collapsed into one series combine.
type MergeSpec struct {
	Rule     string        // the rule that set it; "" for the default
	Interval time.Duration // output interval, aligned to the Unix epoch
	Grace    time.Duration // how long late points of an interval are waited for
	Gauge    string        // gauges and non-monotonic sums: last, sum, min, max, avg, count
	Summary  string        // summaries: drop, count_sum
}

// LimitSpec is a limit action: at most MaxSeries output series per metric
// and tenant; the points of further series fold into one overflow series.
type LimitSpec struct {
	Rule      string
	MaxSeries int
	// Merge is how the points of a series the limit counts merge when no
	// rule changed the series: the rule's aggregate block, else its file's
	// merge block, else DefaultMerge.
	Merge MergeSpec
}

// Mark tells the worker what to do with a metric point after the rules:
// Merge is 1 + an index in Set.Merges() (0: the point's identity is as it
// came, it is written as it is), Limit 1 + an index in Set.Limits().
type Mark struct{ Merge, Limit uint16 }

// DefaultMerge is how points collapsed by a rule without an aggregate
// block combine.
var DefaultMerge = MergeSpec{Interval: 60 * time.Second, Grace: 60 * time.Second, Gauge: "last", Summary: "drop"}

// GaugeFuncs and SummaryModes are the values of aggregate's gauge and
// summary keys.
var (
	GaugeFuncs   = []string{"last", "sum", "min", "max", "avg", "count"}
	SummaryModes = []string{"drop", "count_sum"}
)

const (
	minInterval = time.Second
	maxInterval = 24 * time.Hour
	maxSeries   = 10_000_000
)

// aggregate: {without: [keys] | by: [keys], interval, grace, gauge,
// summary} removes the listed keys (or all but the listed keys) from the
// attributes and resource attributes of the matching points, and marks
// them to be merged by series. Without without and by it only says how the
// points the rule's other actions collapse are merged.
type aggregateAction struct {
	without, by map[string]struct{} // at most one is set
	spec        MergeSpec
}

func decodeAggregate(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	if r.Signal != otlpwire.Metrics {
		d.errorf(k, "aggregate", "only metrics are aggregated, not %s", r.Signal)
		return nil
	}
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "aggregate", "want a mapping, e.g. {without: [k8s.pod.name], interval: 30s}")
		return nil
	}
	a := &aggregateAction{spec: DefaultMerge}
	a.spec.Rule = r.Name
	ok, graceSet := true, false
	d.eachKey(v, func(mk, mv *yaml.Node) {
		switch mk.Value {
		case "without", "by":
			keys, good := d.keyList("aggregate."+mk.Value, mv)
			ok = ok && good
			if mk.Value == "without" {
				a.without = keys
			} else {
				a.by = keys
			}
		default:
			set, good := d.mergeKey(&a.spec, "aggregate", mk, mv)
			if !set && good {
				d.errorf(mk, "aggregate", "unknown key %q (valid: without, by, interval, grace, gauge, summary)", mk.Value)
				good = false
			}
			graceSet = graceSet || (good && mk.Value == "grace")
			ok = ok && good
		}
	})
	if a.without != nil && a.by != nil {
		d.errorf(v, "aggregate", "give without or by, not both")
		ok = false
	}
	if !graceSet {
		a.spec.Grace = a.spec.Interval
	}
	if !ok {
		return nil
	}
	r.merge = &a.spec
	return a
}

// mergeKey reads one key of a merge spec (interval, grace, gauge,
// summary) into spec. known: the key is one; ok: its value is good.
func (d *fileDecoder) mergeKey(spec *MergeSpec, block string, mk, mv *yaml.Node) (known, ok bool) {
	switch mk.Value {
	case "interval", "grace":
		dur, good := d.duration(block+"."+mk.Value, mv, mk.Value == "grace")
		if mk.Value == "interval" {
			spec.Interval = dur
		} else {
			spec.Grace = dur
		}
		return true, good
	case "gauge":
		var good bool
		spec.Gauge, good = d.oneOf(block+".gauge", mv, GaugeFuncs)
		return true, good
	case "summary":
		var good bool
		spec.Summary, good = d.oneOf(block+".summary", mv, SummaryModes)
		return true, good
	}
	return false, true
}

// decodeMerge reads a rule file's merge block: how the points that the
// file's rules collapse without an aggregate action are merged (default
// DefaultMerge).
//
// merge: none instead says that the points the file's rules change are
// written as they come (none is true).
func (d *fileDecoder) decodeMerge(v *yaml.Node) (spec *MergeSpec, none bool) {
	if v.Kind == yaml.ScalarNode && v.Value == "none" {
		return nil, true
	}
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "merge", "want a mapping, e.g. {interval: 30s, gauge: sum}, or none")
		return nil, false
	}
	m := DefaultMerge
	ok, graceSet := true, false
	d.eachKey(v, func(mk, mv *yaml.Node) {
		known, good := d.mergeKey(&m, "merge", mk, mv)
		if !known {
			d.errorf(mk, "merge", "unknown key %q (valid: interval, grace, gauge, summary)", mk.Value)
			good = false
		}
		graceSet = graceSet || (good && mk.Value == "grace")
		ok = ok && good
	})
	if !graceSet {
		m.Grace = m.Interval
	}
	if !ok {
		return nil, false
	}
	return &m, false
}

// keyList reads a list of attribute keys.
func (d *fileDecoder) keyList(key string, v *yaml.Node) (map[string]struct{}, bool) {
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, key, `want a list of keys, e.g. [k8s.pod.name, service.instance.id]`)
		return nil, false
	}
	out := make(map[string]struct{}, len(v.Content))
	ok := true
	for _, n := range v.Content {
		n = resolve(n)
		if n.Kind != yaml.ScalarNode || n.Value == "" {
			d.errorf(n, key, "want a key (a string)")
			ok = false
			continue
		}
		out[n.Value] = struct{}{}
	}
	return out, ok
}

// duration reads a Go duration ("30s", "1m") within the limits of an
// interval; zero is allowed only for a grace period.
func (d *fileDecoder) duration(key string, v *yaml.Node, zeroOK bool) (time.Duration, bool) {
	dur, err := time.ParseDuration(scalar(v))
	switch {
	case err != nil:
		d.errorf(v, key, "want a duration such as 30s or 1m, not %q", scalar(v))
	case zeroOK && dur == 0:
		return 0, true
	case dur < minInterval || dur > maxInterval:
		d.errorf(v, key, "%s is out of range (%s to %s)", dur, minInterval, maxInterval)
	default:
		return dur, true
	}
	return 0, false
}

// oneOf reads a scalar that must be one of valid.
func (d *fileDecoder) oneOf(key string, v *yaml.Node, valid []string) (string, bool) {
	s := scalar(v)
	if !slices.Contains(valid, s) {
		d.errorf(v, key, "unknown value %q (valid: %s)", s, strings.Join(valid, ", "))
		return s, false
	}
	return s, true
}

func (a *aggregateAction) apply(c *call) (outcome, error) {
	cm := c.env.common()
	out := unchanged
	switch {
	case a.without != nil:
		for k := range a.without {
			if _, ok := cm.Attributes[k]; ok {
				delete(cm.Attributes, k)
				out = changed
			}
			if _, ok := cm.Resource[k]; ok {
				delete(cm.Resource, k)
				out = changed
			}
		}
	case a.by != nil:
		if retain(cm.Attributes, a.by) {
			out = changed
		}
		if retain(cm.Resource, a.by) {
			out = changed
		}
	}
	return out, nil
}

// limit: {max_series: N} caps the output series of each metric the rule
// matches, per tenant; see LimitSpec.
type limitAction struct{}

func decodeLimit(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	if r.Signal != otlpwire.Metrics {
		d.errorf(k, "limit", "only metrics series are limited, not %s", r.Signal)
		return nil
	}
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "limit", "want a mapping, e.g. {max_series: 10000}")
		return nil
	}
	spec := &LimitSpec{Rule: r.Name}
	reported := false
	d.eachKey(v, func(mk, mv *yaml.Node) {
		reported = true
		if mk.Value != "max_series" {
			d.errorf(mk, "limit", "unknown key %q (valid: max_series)", mk.Value)
			return
		}
		n, err := strconv.Atoi(scalar(mv))
		if err != nil || n < 1 || n > maxSeries {
			d.errorf(mv, "limit.max_series", "want a whole number from 1 to %d, not %q", maxSeries, scalar(mv))
			return
		}
		spec.MaxSeries = n
	})
	if spec.MaxSeries == 0 {
		if !reported {
			d.errorf(v, "limit", "max_series is required")
		}
		return nil
	}
	r.limit = spec
	return limitAction{}
}

func (limitAction) apply(*call) (outcome, error) { return unchanged, nil }

// Merges lists the merge specs Mark.Merge points into: the first is
// DefaultMerge, then one per rule with an aggregate action and one per
// file with a merge block, in rule order.
func (s *Set) Merges() []MergeSpec { return s.merges }

// Limits lists the limit specs Mark.Limit points into, in rule order.
func (s *Set) Limits() []LimitSpec { return s.limits }

// indexMerges numbers the merge and limit specs of the set's rules.
func (s *Set) indexMerges() {
	s.merges = []MergeSpec{DefaultMerge}
	fileIdx := map[*MergeSpec]uint16{} // a file's merge block, shared by its rules
	for _, r := range s.all {
		r.mergeIdx, r.limitIdx = 0, 0
		if r.Signal != otlpwire.Metrics {
			continue
		}
		r.mergeIdx = 1 // rules that change a point's identity merge by default
		switch {
		case r.noMerge && r.merge == nil && r.limit == nil:
			r.mergeIdx = 0 // merge: none: the points it changes are written as they come
			continue
		case r.merge != nil:
			s.merges = append(s.merges, *r.merge)
			r.mergeIdx = uint16(len(s.merges))
		case r.fileMerge != nil:
			if fileIdx[r.fileMerge] == 0 {
				s.merges = append(s.merges, *r.fileMerge)
				fileIdx[r.fileMerge] = uint16(len(s.merges))
			}
			r.mergeIdx = fileIdx[r.fileMerge]
		}
		if r.limit != nil {
			l := *r.limit
			l.Merge = s.merges[r.mergeIdx-1]
			s.limits = append(s.limits, l)
			r.limitIdx = uint16(len(s.limits))
		}
	}
}

// String describes a spec as the aggregate block that gives it.
func (m MergeSpec) String() string {
	return fmt.Sprintf("interval %s, grace %s, gauge %s, summary %s", m.Interval, m.Grace, m.Gauge, m.Summary)
}
