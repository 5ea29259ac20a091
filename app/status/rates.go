package status

import (
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// A quantity is a number of a stage: the sum of the series of the
// process's registry that sel selects.
type quantity struct {
	name string // in, out, errors, dead_letters, lag
	sels []sel
}

// sel selects the series of one metric, all of them or those whose label
// has value.
type sel struct{ metric, label, value string }

func (s sel) String() string {
	if s.label == "" {
		return s.metric
	}
	return s.metric + `{` + s.label + `="` + s.value + `"}`
}

// source is how the page names where a number comes from, in PromQL.
func (q quantity) source() string {
	var parts []string
	for _, s := range q.sels {
		parts = append(parts, "sum("+s.String()+")")
	}
	return strings.Join(parts, " + ")
}

// quantities are a stage's numbers, from the metrics its code exports
// (README, "Admin endpoints").
func quantities(kind, name string) []quantity {
	stageSel := func(metric string) sel { return sel{metric, "stage", name} }
	switch kind {
	case KindIngest:
		return []quantity{
			{"in", []sel{{"sluice_ingest_items_total", "", ""}, {"sluice_ingest_rejected_items_total", "", ""}}},
			{"out", []sel{{"sluice_ingest_items_total", "", ""}}},
			{"errors", []sel{{"sluice_ingest_errors_total", "", ""}}},
		}
	case KindWorker:
		return []quantity{
			{"in", []sel{{"sluice_worker_items_in_total", "", ""}}},
			{"out", []sel{{"sluice_worker_items_out_total", "", ""}}},
			{"errors", []sel{stageSel("sluice_stage_handle_errors_total")}},
			{"dead_letters", []sel{{"sluice_worker_dead_letters_total", "", ""}}},
			{"lag", []sel{stageSel("sluice_consumer_lag_records")}},
		}
	case KindAggregator:
		return []quantity{
			{"in", []sel{{"sluice_aggregator_points_in_total", "", ""}}},
			{"out", []sel{{"sluice_aggregator_points_out_total", "", ""}}},
			{"errors", []sel{stageSel("sluice_stage_handle_errors_total")}},
			{"dead_letters", []sel{{"sluice_aggregator_dead_letters_total", "", ""}}},
			{"lag", []sel{stageSel("sluice_consumer_lag_records")}},
		}
	case KindSink:
		sink := strings.TrimPrefix(name, "sink/")
		return []quantity{
			{"in", []sel{stageSel("sluice_stage_items_total")}},
			// Remote write counts samples (a histogram point is several).
			{"out", []sel{{"sluice_sink_items_sent_total", "sink", sink}, {"sluice_sink_samples_sent_total", "sink", sink}}},
			{"errors", []sel{stageSel("sluice_stage_handle_errors_total")}},
			{"dead_letters", []sel{{"sluice_sink_dead_letters_total", "sink", sink}}},
			{"lag", []sel{stageSel("sluice_consumer_lag_records")}},
		}
	}
	return nil
}

// The per-rule counters (app's rule collector; rules/README.md).
var ruleCounters = []struct{ name, metric string }{
	{"matched", "sluice_rule_matched_total"},
	{"dropped", "sluice_rule_dropped_total"},
	{"changed", "sluice_rule_changed_total"},
	{"errors", "sluice_rule_errors_total"},
}

// ruleKey identifies a rule's series: its labels.
type ruleKey struct{ file, signal, rule string }

// sample is the numbers of one gathering of the registry.
type sample struct {
	t      time.Time
	stages map[string]float64 // stage + "\x00" + quantity
	rules  map[ruleKey][4]float64
	has    map[string]bool // stage quantities some series of which exists
}

func stageKey(stage, q string) string { return stage + "\x00" + q }

// extract reads the numbers of stages and rules out of gathered families.
func extract(t time.Time, mfs []*dto.MetricFamily, stages []Stage) sample {
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	s := sample{t: t, stages: map[string]float64{}, rules: map[ruleKey][4]float64{}, has: map[string]bool{}}
	for _, st := range stages {
		for _, q := range quantities(st.Kind, st.Name) {
			var sum float64
			found := false
			for _, sl := range q.sels {
				v, ok := sumOf(byName[sl.metric], sl)
				sum += v
				found = found || ok
			}
			s.stages[stageKey(st.Name, q.name)] = sum
			s.has[stageKey(st.Name, q.name)] = found
		}
	}
	for i, c := range ruleCounters {
		mf := byName[c.metric]
		if mf == nil {
			continue
		}
		for _, m := range mf.GetMetric() {
			var k ruleKey
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "file":
					k.file = l.GetValue()
				case "signal":
					k.signal = l.GetValue()
				case "rule":
					k.rule = l.GetValue()
				}
			}
			v := s.rules[k]
			v[i] = value(m)
			s.rules[k] = v
		}
	}
	return s
}

// sumOf sums the series of mf that s selects; ok reports whether any did.
func sumOf(mf *dto.MetricFamily, s sel) (sum float64, ok bool) {
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if s.label != "" && !hasLabel(m, s.label, s.value) {
			continue
		}
		sum += value(m)
		ok = true
	}
	return sum, ok
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// history is a ring of the last samples, from which rates are computed.
type history struct {
	mu      sync.Mutex
	samples []sample // oldest first
	max     int
}

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) == h.max {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:len(h.samples)-1]
	}
	h.samples = append(h.samples, s)
}

// since returns the oldest sample at most window (plus slack) before now,
// and false when there is none at least half of window old: no rate yet.
func (h *history) since(now time.Time, window, slack time.Duration) (sample, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := sort.Search(len(h.samples), func(i int) bool { return now.Sub(h.samples[i].t) <= window+slack })
	if i == len(h.samples) || now.Sub(h.samples[i].t) < window/2 {
		return sample{}, false
	}
	return h.samples[i], true
}

// rate is the per-second increase of a counter from then to now; a
// counter that went down (rules reloaded: a rule's counters start again)
// counts from zero.
func rate(now, then float64, dt time.Duration) float64 {
	d := now - then
	if d < 0 {
		d = now
	}
	return d / dt.Seconds()
}
