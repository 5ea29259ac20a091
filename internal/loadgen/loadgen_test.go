package loadgen

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

var start = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func profiles(t *testing.T, seed uint64) []Profile {
	t.Helper()
	m, err := NewK8sMetrics(&K8sMetrics{Pods: 10, Series: 20, PerRequest: 50, Churn: 0.2, ChurnEvery: 2, Seed: seed, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLogs(LogsConfig{Pods: 10, PerRequest: 100, BodyMedian: 120, BodySigma: 1, Seed: seed, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTraces(TracesConfig{Pods: 10, PerRequest: 64, SpansPerTrace: 8, Seed: seed, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	return []Profile{m, l, tr}
}

// The same seed makes the same requests, whatever was asked before; every
// request is valid OTLP holding the items it says.
func TestProfilesAreDeterministic(t *testing.T) {
	a, b, other := profiles(t, 1), profiles(t, 1), profiles(t, 2)
	for i := range a {
		sig := a[i].Signal()
		for _, j := range []int{7, 0, 3, 200, 64, 71} {
			ra, na := a[i].Request(nil, j)
			rb, nb := b[i].Request(nil, j)
			if !bytes.Equal(ra, rb) || na != nb {
				t.Fatalf("%s request %d differs between two profiles of one seed", sig, j)
			}
			if ro, _ := other[i].Request(nil, j); bytes.Equal(ra, ro) {
				t.Errorf("%s request %d is the same for seeds 1 and 2", sig, j)
			}
			if n, err := otlpwire.Count(sig, ra); err != nil || n != na {
				t.Errorf("%s request %d: %d items (%v), says %d", sig, j, n, err, na)
			}
			var m proto.Message
			switch sig {
			case otlpwire.Metrics:
				m = &colmetrics.ExportMetricsServiceRequest{}
			case otlpwire.Logs:
				m = &collogs.ExportLogsServiceRequest{}
			default:
				m = &coltrace.ExportTraceServiceRequest{}
			}
			if err := proto.Unmarshal(ra, m); err != nil {
				t.Errorf("%s request %d: %v", sig, j, err)
			}
		}
	}
}

// Requests of one template differ in their times and ids (a trace is sent
// once), and the times are near the start.
func TestTemplatesArePatched(t *testing.T) {
	tr := profiles(t, 1)[2]
	a, _ := tr.Request(nil, 1)
	b, _ := tr.Request(nil, 1+templates)
	var ra, rb coltrace.ExportTraceServiceRequest
	proto.Unmarshal(a, &ra)
	proto.Unmarshal(b, &rb)
	sa, sb := ra.ResourceSpans[0].ScopeSpans[0].Spans, rb.ResourceSpans[0].ScopeSpans[0].Spans
	if bytes.Equal(sa[0].TraceId, sb[0].TraceId) || bytes.Equal(sa[1].SpanId, sb[1].SpanId) {
		t.Error("two requests of one template share trace or span ids")
	}
	if !bytes.Equal(sa[1].ParentSpanId, sa[0].SpanId) || !bytes.Equal(sa[1].TraceId, sa[0].TraceId) {
		t.Error("a child span lost its parent or trace")
	}
	for _, s := range sa {
		st, end := time.Unix(0, int64(s.StartTimeUnixNano)), time.Unix(0, int64(s.EndTimeUnixNano))
		if st.Before(start) || st.After(start.Add(time.Hour)) || end.Before(st) {
			t.Fatalf("span times %v to %v", st, end)
		}
	}
	if sa[0].StartTimeUnixNano == sb[0].StartTimeUnixNano {
		t.Error("two requests of one template have the same times")
	}
}

// Churn replaces a fraction of the pods every ChurnEvery steps.
func TestChurnReplacesPods(t *testing.T) {
	m := profiles(t, 1)[0].(*K8sMetrics)
	pods := func(j int) map[string]bool {
		out := map[string]bool{}
		for k := range m.perStep { // one step: every series once
			b, _ := m.Request(nil, j*m.perStep+k)
			var req colmetrics.ExportMetricsServiceRequest
			proto.Unmarshal(b, &req)
			for _, rm := range req.ResourceMetrics {
				for _, a := range rm.Resource.Attributes {
					if a.Key == "k8s.pod.name" {
						out[a.Value.GetStringValue()] = true
					}
				}
			}
		}
		return out
	}
	p0, p1, p2 := pods(0), pods(1), pods(2) // steps 0 and 1: period 0; step 2: period 1
	if len(p0) != 10 || !equalSets(p0, p1) {
		t.Fatalf("period 0: %d pods, steps 0 and 1 equal: %v", len(p0), equalSets(p0, p1))
	}
	gone := 0
	for p := range p0 {
		if !p2[p] {
			gone++
		}
	}
	if len(p2) != 10 || gone != 2 {
		t.Errorf("after one period: %d pods, %d replaced, want 10 and 2 (20%%)", len(p2), gone)
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		unit string
	}{{"2M-datapoints/s", 2e6, "datapoints"}, {"500k/s", 5e5, ""}, {"1e6", 1e6, ""}, {"1.5G-spans/s", 1.5e9, "spans"}} {
		got, unit, err := ParseTarget(c.in)
		if err != nil || got != c.want || unit != c.unit {
			t.Errorf("ParseTarget(%q) = %v %q %v, want %v %q", c.in, got, unit, err, c.want, c.unit)
		}
	}
	for _, bad := range []string{"", "fast", "-1", "0/s", "2X-points/s"} {
		if _, _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
}

func TestReplicas(t *testing.T) {
	s := StageResult{CPU: 2, Items: 2e6}          // 1 M items/s per core
	if got := s.Replicas(5e6, 2, 0.7); got != 4 { // 5 M / (1 M × 2 × 0.7) = 3.6
		t.Errorf("replicas = %d, want 4", got)
	}
	if s.CPUPerMillion() != 1 || s.ItemsPerCore() != 1e6 {
		t.Errorf("CPU-s per million %v, items/s per core %v", s.CPUPerMillion(), s.ItemsPerCore())
	}
	if got := (StageResult{}).Replicas(5e6, 2, 0.7); got != 0 {
		t.Errorf("a stage that took nothing: %d replicas", got)
	}
}

func TestDelayQuantile(t *testing.T) {
	inf := math.Inf(1)
	before := map[float64]float64{0.1: 0, 1: 0, inf: 0}
	after := map[float64]float64{0.1: 50, 1: 100, inf: 100} // half below 0.1s, all below 1s
	if q := delayQuantile(before, after, 0.5); q != 0.1 {
		t.Errorf("p50 = %v", q)
	}
	if q := delayQuantile(before, after, 0.75); math.Abs(q-0.55) > 1e-9 {
		t.Errorf("p75 = %v, want 0.55", q)
	}
	if q := delayQuantile(before, before, 0.5); !math.IsNaN(q) {
		t.Errorf("no observations: %v", q)
	}
}

func TestProfileStrings(t *testing.T) {
	for _, p := range profiles(t, 1) {
		if s := p.String(); !strings.Contains(s, "seed 1") {
			t.Errorf("%q does not name its seed", s)
		}
	}
}

// A report writes its Markdown and plots; without acknowledged items or
// stage figures it leaves the plots out instead of failing.
func TestReportWrite(t *testing.T) {
	h := func() *Result {
		r := &Result{Latency: newLatency(), Requests: 10, Items: 1000, Bytes: 50_000, Elapsed: 2 * time.Second, PerSecond: []int64{600, 400}}
		r.Latency.RecordValue(1500)
		return r
	}
	full := &Report{Time: start, Profile: "p", Protocol: "grpc", DelayP50: 0.2, DelayP99: 1.5,
		Steps:   []Step{{Connections: 1, Result: h()}, {Connections: 2, Result: h()}},
		Stages:  []StageResult{{Stage: Stage{Role: "ingest", URL: "http://i"}, CPU: 1, Items: 2000, BusBytes: 60_000}, {Stage: Stage{Role: "sink", URL: "http://s"}, CPU: 0.5, Items: 2000}},
		Options: BenchOptions{TargetRate: 1e6, TargetUnit: "datapoints", CoresPerReplica: 2, Utilization: 0.5}}
	empty := &Report{Time: start, Steps: []Step{{Connections: 1, Result: &Result{Latency: newLatency(), Requests: 3, Failed: 3, Errors: []string{"request 0: refused"}}}},
		Stages: []StageResult{{Stage: Stage{Role: "worker"}}}, DelayP50: math.NaN()}
	for name, c := range map[string]struct {
		r     *Report
		svgs  int
		wants []string
	}{
		"full":  {full, 2, []string{"| ingest | 2.0 k | 500 |", "| sink | 4.0 k | 250 |", "| ingest | http://i | 2000 | 1.00 | 500.00 | 10.000 | 2.0 k | 30.0 |", "p50 0.200s, p99 1.500s", "(throughput.svg)", "(stages.svg)"}},
		"empty": {empty, 0, []string{"> request 0: refused", "| worker |  | 0 | 0.00 | NaN | – | – | – |"}},
	} {
		dir := t.TempDir()
		if err := c.r.Write(dir); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
		for _, w := range c.wants {
			if !strings.Contains(string(md), w) {
				t.Errorf("%s: report lacks %q:\n%s", name, w, md)
			}
		}
		svgs, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
		if len(svgs) != c.svgs {
			t.Errorf("%s: plots %v, want %d", name, svgs, c.svgs)
		}
	}
}
