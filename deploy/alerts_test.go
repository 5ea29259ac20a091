package deploy

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

const alertsDir = "helm/sluice/alerts"

// ruleGroups is the rule file format of Prometheus (rulefmt), decoded
// strictly: a misspelt key is an error.
type ruleGroups struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The shipped alerting rules parse, every metric they use is one sluice's
// code registers, the chart ships them unchanged as the ConfigMap
// sluice-alerts and as a PrometheusRule, and promtool (when on PATH)
// accepts the shipped file and its unit tests pass.
func TestAlertRules(t *testing.T) {
	file := filepath.Join(alertsDir, "sluice.rules.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rules ruleGroups
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s: %v", file, err)
	}

	registered := registeredMetrics(t)
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert or expr: %+v", g.Name, r)
				continue
			}
			if slices.Contains(alerts, r.Alert) {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts = append(alerts, r.Alert)
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary", r.Alert)
			}
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("alert %s uses no sluice metric: %s", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !registered[n] {
					t.Errorf("alert %s uses %s, which sluice's code does not register", r.Alert, n)
				}
			}
		}
	}
	for _, want := range []string{"SluiceSinkConfigRefused", "SluiceBusRecordsLost", "SluiceBusStoreNearlyFull", "SluiceSinkDeadLetters"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s (alerts: %v)", want, alerts)
		}
	}

	// The chart ships the file as it is: the ConfigMap sluice-alerts by
	// default, and the PrometheusRule's groups when asked.
	objs, err := renderChart(loadChart(t), parseValues(t, "alerts: {prometheusRule: {enabled: true}}"))
	if err != nil {
		t.Fatal(err)
	}
	var shipped, rule bool
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *corev1.ConfigMap:
			if x.Name == "sluice-alerts" {
				shipped = x.Data["sluice.rules.yaml"] == string(data)
			}
		case *monitoringv1.PrometheusRule:
			var got []string
			for _, g := range x.Spec.Groups {
				for _, r := range g.Rules {
					got = append(got, r.Alert)
					if r.Alert == "SluiceBusRecordsLost" && !strings.Contains(r.Annotations["summary"], "{{ $labels.topic }}") {
						t.Errorf("PrometheusRule: the summary's template was rendered by Helm: %q", r.Annotations["summary"])
					}
				}
			}
			rule = slices.Equal(got, alerts)
		}
	}
	if !shipped {
		t.Error("no ConfigMap sluice-alerts with sluice.rules.yaml as it is")
	}
	if !rule {
		t.Error("no PrometheusRule with the alerts of sluice.rules.yaml")
	}

	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("no promtool on PATH")
		}
		for _, args := range [][]string{{"check", "rules", "sluice.rules.yaml"}, {"test", "rules", "sluice.rules.test.yaml"}} {
			cmd := exec.Command(promtool, args...)
			cmd.Dir = alertsDir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
}

// The check of the metric names finds a name that is not registered, and
// takes a histogram's series for its name.
func TestAlertMetricNameCheck(t *testing.T) {
	registered := registeredMetrics(t)
	for name, want := range map[string]bool{
		"sluice_bus_records_lost_total":                     true,
		"sluice_stage_handle_duration_seconds":              true,
		"sluice_bus_records_lost":                           false,
		"sluice_sink_dead_letter_total":                     false,
		"sluice_stage_handle_duration_seconds_bucket":       true,
		"sluice_stage_handle_duration_seconds_bucket_total": false,
	} {
		names := metricNames("rate(" + name + "[5m]) > 0")
		if len(names) != 1 {
			t.Fatalf("%s: names %v", name, names)
		}
		if got := registered[names[0]]; got != want {
			t.Errorf("%s: registered %v, want %v", name, got, want)
		}
	}
}

var (
	// metricRef is a sluice metric in a PromQL expression.
	metricRef = regexp.MustCompile(`\bsluice_[a-z0-9_]*[a-z0-9]\b`)
	// metricDef is where the code names a metric it registers: the Name
	// of prometheus.*Opts, or prometheus.NewDesc's first argument.
	metricDef = regexp.MustCompile(`(?:\bName:\s*|NewDesc\(\s*)"(sluice_[a-z0-9_]+)"`)
)

// metricNames are the sluice metrics expr uses, a histogram's series
// (_bucket, _sum, _count) under the histogram's name.
func metricNames(expr string) []string {
	var out []string
	for _, n := range metricRef.FindAllString(expr, -1) {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, s); ok && !strings.HasSuffix(base, "_total") {
				n = base
				break
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// registeredMetrics are the metric names the sluice module's code (tests,
// benchmarks and this module aside) registers.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(root, path); rel == "bench" || rel == "deploy" || strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricDef.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in the code: %v", len(names), names)
	}
	return names
}
