package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	chart "github.com/wcharczuk/go-chart/v2"
)

// BenchOptions shape `sluice bench`: a load in steps, the stages whose
// cost is read from their metrics, and the target the report sizes for.
type BenchOptions struct {
	Options
	// Steps are the connections of each closed-loop step (a ramp that
	// shows where the ingest tier saturates), or, with Rate, ignored: one
	// open-loop step. Each step runs Options.Duration or Requests.
	Steps  []int
	Stages []Stage
	// Settle bounds the wait, after the last step, for the workers and
	// sinks to take in what the ingesters wrote (default 2m).
	Settle time.Duration
	// TargetRate is the throughput to size for, items/s; CoresPerReplica the
	// cores of a replica; Utilization the share of them a replica may use
	// (default 0.7: headroom for bursts and a lost replica).
	TargetRate      float64
	TargetUnit      string
	CoresPerReplica float64
	Utilization     float64
	// Log, when set, is told about each step.
	Log func(format string, args ...any)
}

// Report is what `sluice bench` measured.
type Report struct {
	Time        time.Time
	Host        string
	CPUs        int
	Profile     string
	Protocol    string
	Steps       []Step
	Stages      []StageResult
	DelayP50    float64 // seconds, NaN when no sink reported
	DelayP99    float64
	Options     BenchOptions
	SettleError string
}

// Step is one step of the load.
type Step struct {
	Connections int
	Rate        float64
	*Result
}

// StageResult is a stage's cost over the whole run.
type StageResult struct {
	Stage
	CPU, Items, BusBytes float64
}

// CPUPerMillion is the stage's CPU-seconds per million items.
func (s StageResult) CPUPerMillion() float64 {
	if s.Items <= 0 {
		return math.NaN()
	}
	return s.CPU / s.Items * 1e6
}

// ItemsPerCore is what one core of the stage takes, items/s.
func (s StageResult) ItemsPerCore() float64 {
	if s.CPU <= 0 {
		return math.NaN()
	}
	return s.Items / s.CPU
}

// Replicas is how many replicas of cores each, used to utilization, take
// target items/s.
func (s StageResult) Replicas(target, cores, utilization float64) int {
	per := s.ItemsPerCore() * cores * utilization
	if !(per > 0) || target <= 0 {
		return 0
	}
	return int(math.Ceil(target / per))
}

// ParseTarget reads a target rate such as 2M-datapoints/s, 500k/s or
// 1e6: the items per second and the unit's name ("" when none given).
func ParseTarget(s string) (float64, string, error) {
	v := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	num, unit, _ := strings.Cut(v, "-")
	mult := 1.0
	switch {
	case strings.HasSuffix(num, "k"), strings.HasSuffix(num, "K"):
		mult, num = 1e3, num[:len(num)-1]
	case strings.HasSuffix(num, "M"):
		mult, num = 1e6, num[:len(num)-1]
	case strings.HasSuffix(num, "G"):
		mult, num = 1e9, num[:len(num)-1]
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) {
		return 0, "", fmt.Errorf("target %q: want a rate such as 2M-datapoints/s, 500k/s or 1e6", s)
	}
	return f * mult, unit, nil
}

// Bench runs the steps and builds the report.
func Bench(ctx context.Context, o BenchOptions) (*Report, error) {
	if o.Settle <= 0 {
		o.Settle = 2 * time.Minute
	}
	if o.CoresPerReplica <= 0 {
		o.CoresPerReplica = 1
	}
	if o.Utilization <= 0 || o.Utilization > 1 {
		o.Utilization = 0.7
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	host, _ := os.Hostname()
	rep := &Report{Time: time.Now().UTC(), Host: host, CPUs: runtime.NumCPU(), Profile: o.Profile.String(), Protocol: o.Target.Protocol, Options: o}
	before := make([]Sample, len(o.Stages))
	for i, s := range o.Stages {
		var err error
		if before[i], err = s.Scrape(ctx); err != nil {
			return nil, err
		}
	}
	steps := o.Steps
	if o.Rate > 0 || len(steps) == 0 {
		steps = []int{max(o.Connections, 1)}
	}
	next := o.First
	for _, c := range steps {
		so := o.Options
		so.Connections, so.First = c, next
		res, err := Run(ctx, so)
		if err != nil {
			return nil, err
		}
		next = res.Next
		rep.Steps = append(rep.Steps, Step{Connections: c, Rate: o.Rate, Result: res})
		logf("%d connections: %.0f items/s acknowledged, p50 %v, p99 %v, %d of %d requests failed",
			c, res.ItemsPerSecond(), res.Quantile(0.5), res.Quantile(0.99), res.Failed, res.Requests)
	}
	// The workers and sinks catch up with what was written: their counts
	// stand still for a quiet period.
	const quiet = 5 * time.Second
	after := make([]Sample, len(o.Stages))
	deadline := time.Now().Add(o.Settle)
	for first := true; ; first = false {
		settled := !first
		for i, s := range o.Stages {
			a, err := s.Scrape(ctx)
			if err != nil {
				return nil, err
			}
			if a.Items != after[i].Items {
				settled = false
			}
			after[i] = a
		}
		if settled || time.Now().After(deadline) {
			if !settled {
				rep.SettleError = fmt.Sprintf("the stages were still taking in items after %v", o.Settle)
			}
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(quiet):
		}
	}
	rep.DelayP50, rep.DelayP99 = math.NaN(), math.NaN()
	var delayBefore, delayAfter map[float64]float64
	for i, s := range o.Stages {
		rep.Stages = append(rep.Stages, StageResult{Stage: s, CPU: after[i].CPU - before[i].CPU,
			Items: after[i].Items - before[i].Items, BusBytes: after[i].BusBytes - before[i].BusBytes})
		if after[i].Delay != nil && delayAfter == nil {
			delayBefore, delayAfter = before[i].Delay, after[i].Delay
		}
	}
	if delayAfter != nil {
		rep.DelayP50, rep.DelayP99 = delayQuantile(delayBefore, delayAfter, 0.5), delayQuantile(delayBefore, delayAfter, 0.99)
	}
	return rep, nil
}

// Write writes the report into dir: report.md, and the plots it shows,
// throughput.svg and stages.svg.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	r.markdown(&b)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), b.Bytes(), 0o644); err != nil {
		return err
	}
	if c, ok := r.throughputChart(); ok {
		if err := writeChart(filepath.Join(dir, "throughput.svg"), c); err != nil {
			return err
		}
	}
	if c, ok := r.stagesChart(); ok {
		return writeChart(filepath.Join(dir, "stages.svg"), c)
	}
	return nil
}

func (r *Report) markdown(b *bytes.Buffer) {
	o := r.Options
	fmt.Fprintf(b, "# sluice capacity report\n\n%s, host %s, %d CPUs. Load: %s; OTLP/%s.\n\n", r.Time.Format("2006-01-02 15:04 UTC"), r.Host, r.CPUs, r.Profile, r.Protocol)
	if o.TargetRate > 0 {
		unit := o.TargetUnit
		if unit == "" {
			unit = "items"
		}
		fmt.Fprintf(b, "## Replicas for %s %s/s\n\n", human(o.TargetRate), unit)
		fmt.Fprintf(b, "Each replica with %g cores used to %.0f%% (headroom for bursts and for losing one), from the CPU each stage spent per item in this run:\n\n", o.CoresPerReplica, o.Utilization*100)
		fmt.Fprintf(b, "| stage | items/s per core | replicas |\n|---|---:|---:|\n")
		for _, s := range r.Stages {
			fmt.Fprintf(b, "| %s | %s | %d |\n", s.Role, human(s.ItemsPerCore()), s.Replicas(o.TargetRate, o.CoresPerReplica, o.Utilization))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Load\n\n")
	if _, ok := r.throughputChart(); ok {
		b.WriteString("![acknowledged items per second](throughput.svg)\n\n")
	}
	if o.Rate > 0 {
		fmt.Fprintf(b, "Open loop at %s items/s (latency counted from when each request was due).\n\n", human(o.Rate))
	} else {
		b.WriteString("Closed loop: each connection sends its next request when the last is answered; the step where throughput stops rising while latency climbs is where the ingest tier saturates on this machine.\n\n")
	}
	b.WriteString("| connections | requests | failed | items/s acknowledged | MB/s | p50 | p90 | p99 | p99.9 |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(b, "| %d | %d | %d | %s | %.1f | %v | %v | %v | %v |\n", s.Connections, s.Requests, s.Failed, human(s.ItemsPerSecond()),
			float64(s.Bytes)/s.Elapsed.Seconds()/1e6, s.Quantile(0.5), s.Quantile(0.9), s.Quantile(0.99), s.Quantile(0.999))
		for _, e := range s.Errors {
			fmt.Fprintf(b, "\n> %s\n", e)
		}
	}
	if len(r.Stages) == 0 {
		return
	}
	b.WriteString("\n## Stages\n\n")
	if _, ok := r.stagesChart(); ok {
		b.WriteString("![items per second per core](stages.svg)\n\n")
	}
	b.WriteString("From each process's own metrics (process_cpu_seconds_total and its items counter) over the whole run:\n\n")
	var sent int64 // OTLP bytes acknowledged, over all steps
	for _, st := range r.Steps {
		sent += st.Bytes
	}
	b.WriteString("| stage | admin | items | CPU-s | CPU-s per million items | CPU-s per MB of OTLP sent | items/s per core | bytes on the raw topics per item (Kafka, compressed) |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Stages {
		bus, perMB := "–", "–"
		if s.BusBytes > 0 && s.Items > 0 {
			bus = fmt.Sprintf("%.1f", s.BusBytes/s.Items)
		}
		if sent > 0 {
			perMB = fmt.Sprintf("%.3f", s.CPU/(float64(sent)/1e6))
		}
		fmt.Fprintf(b, "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %s |\n", s.Role, s.URL, s.Items, s.CPU, s.CPUPerMillion(), perMB, human(s.ItemsPerCore()), bus)
	}
	if !math.IsNaN(r.DelayP50) {
		fmt.Fprintf(b, "\nEnd-to-end delay, the ingester's receipt to a sink's delivery (`sluice_sink_delivery_delay_seconds`): p50 %.3fs, p99 %.3fs.\n", r.DelayP50, r.DelayP99)
	}
	if r.SettleError != "" {
		fmt.Fprintf(b, "\n> %s: the stages' figures count less than the whole load.\n", r.SettleError)
	}
}

// throughputChart plots the items acknowledged each second; false when
// none were.
func (r *Report) throughputChart() (chart.Chart, bool) {
	var series []chart.Series
	t0 := 0.0
	for _, s := range r.Steps {
		xs, ys := make([]float64, 0, len(s.PerSecond)), make([]float64, 0, len(s.PerSecond))
		per := s.PerSecond
		if len(per) > 1 && s.Elapsed%time.Second != 0 {
			per = per[:len(per)-1] // the last second, partly run, would look like a drop
		}
		for i, v := range per {
			xs, ys = append(xs, t0+float64(i)), append(ys, float64(v))
		}
		if len(xs) == 1 { // a line needs two points
			xs, ys = append(xs, xs[0]+1), append(ys, ys[0])
		}
		if len(xs) > 0 {
			series = append(series, chart.ContinuousSeries{Name: fmt.Sprintf("%d connections", s.Connections), XValues: xs, YValues: ys})
		}
		t0 += s.Elapsed.Seconds()
	}
	top := 1.0
	for _, s := range r.Steps {
		for _, v := range s.PerSecond {
			top = max(top, float64(v))
		}
	}
	c := chart.Chart{Title: "items acknowledged per second", Width: 800, Height: 360,
		XAxis: chart.XAxis{Name: "seconds", ValueFormatter: func(v any) string { return fmt.Sprintf("%.0f", v) }},
		YAxis: chart.YAxis{Name: "items/s", Range: &chart.ContinuousRange{Min: 0, Max: top * 1.1}, ValueFormatter: humanValue}, Series: series,
		Background: chart.Style{Padding: chart.Box{Top: 40, Left: 20, Right: 20, Bottom: 20}}}
	c.Elements = []chart.Renderable{chart.LegendLeft(&c)}
	return c, len(series) > 0
}

// humanValue formats an axis value with human.
func humanValue(v any) string {
	if f, ok := v.(float64); ok {
		return human(f)
	}
	return fmt.Sprint(v)
}

// stagesChart plots the stages' items/s per core; false when none took
// in anything.
func (r *Report) stagesChart() (chart.BarChart, bool) {
	var bars []chart.Value
	top := 1.0
	for _, s := range r.Stages {
		if v := s.ItemsPerCore(); v > 0 {
			bars = append(bars, chart.Value{Label: s.Role, Value: v})
			top = max(top, v)
		}
	}
	return chart.BarChart{Title: "items/s per core", Width: 600, Height: 360, BarWidth: 80, Bars: bars,
		YAxis:      chart.YAxis{Range: &chart.ContinuousRange{Min: 0, Max: top * 1.1}, ValueFormatter: humanValue},
		Background: chart.Style{Padding: chart.Box{Top: 40}}}, len(bars) > 0
}

type renderer interface {
	Render(rp chart.RendererProvider, w io.Writer) error
}

func writeChart(path string, c renderer) error {
	var b bytes.Buffer
	if err := c.Render(chart.SVG, &b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// human writes n with k, M or G.
func human(n float64) string {
	switch {
	case math.IsNaN(n):
		return "–"
	case n >= 1e9:
		return strconv.FormatFloat(n/1e9, 'f', 2, 64) + " G"
	case n >= 1e6:
		return strconv.FormatFloat(n/1e6, 'f', 2, 64) + " M"
	case n >= 1e3:
		return strconv.FormatFloat(n/1e3, 'f', 1, 64) + " k"
	}
	return strconv.FormatFloat(n, 'f', 0, 64)
}
