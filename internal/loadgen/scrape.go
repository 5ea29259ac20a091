package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Stage is a sluice process whose cost a run measures, through the
// Prometheus metrics of its admin endpoint.
type Stage struct {
	// Role is ingest, worker, sink or run (all in one process): which
	// counter gives its items.
	Role string
	// URL is the admin endpoint, e.g. http://127.0.0.1:9464.
	URL string
}

// itemsMetric is the counter of the items a role handled, and the stages
// of it that count (nil: all).
var itemsMetric = map[string]struct {
	name string
	keep func(*dto.Metric) bool
}{
	"ingest": {"sluice_ingest_items_total", nil},
	"run":    {"sluice_ingest_items_total", nil},
	"worker": {"sluice_worker_items_in_total", nil},
	// every sink type counts the items it delivered as its stage's
	"sink": {"sluice_stage_items_total", func(m *dto.Metric) bool { return strings.HasPrefix(label(m, "stage"), "sink/") }},
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Sample is a stage's counters at one time.
type Sample struct {
	CPU   float64 // process_cpu_seconds_total
	Items float64
	// BusBytes is what the process wrote to the raw topics (Kafka,
	// compressed), 0 where the bus does not tell.
	BusBytes float64
	// Delay is the sinks' delivery delay histogram, cumulative counts by
	// upper bound.
	Delay map[float64]float64
}

// Scrape reads the stage's counters.
func (s Stage) Scrape(ctx context.Context) (Sample, error) {
	items, ok := itemsMetric[s.Role]
	if !ok {
		return Sample{}, fmt.Errorf("stage role %q: want ingest, worker, sink or run", s.Role)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.URL, "/")+"/metrics", nil)
	if err != nil {
		return Sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("%s/metrics: %s", s.URL, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return Sample{}, fmt.Errorf("%s/metrics: %w", s.URL, err)
	}
	out := Sample{CPU: sum(fams["process_cpu_seconds_total"], nil), Items: sum(fams[items.name], items.keep),
		BusBytes: sum(fams["sluice_kafka_produce_compressed_bytes_total"], func(m *dto.Metric) bool { return strings.Contains(label(m, "topic"), ".raw.") })}
	if f := fams["sluice_sink_delivery_delay_seconds"]; f != nil {
		out.Delay = map[float64]float64{}
		for _, m := range f.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				out.Delay[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
			out.Delay[math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out, nil
}

func sum(f *dto.MetricFamily, keep func(*dto.Metric) bool) float64 {
	var s float64
	for _, m := range f.GetMetric() {
		if keep != nil && !keep(m) {
			continue
		}
		switch {
		case m.Counter != nil:
			s += m.GetCounter().GetValue()
		case m.Gauge != nil:
			s += m.GetGauge().GetValue()
		case m.Untyped != nil:
			s += m.GetUntyped().GetValue()
		}
	}
	return s
}

// delayQuantile is the q quantile of the delay observed between two
// samples, interpolated in its bucket as PromQL's histogram_quantile does;
// NaN without observations.
func delayQuantile(before, after map[float64]float64, q float64) float64 {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return math.NaN()
	}
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return math.NaN()
	}
	rank, prevBound, prevCount := q*total, 0.0, 0.0
	for _, b := range bounds {
		c := after[b] - before[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/max(c-prevCount, 1e-9)
		}
		prevBound, prevCount = b, c
	}
	return prevBound
}
