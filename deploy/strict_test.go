package deploy

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
)

// The decoder refuses what the API server would not know: a misspelt
// field at any depth, a field of the wrong type, a duplicate key, a kind
// the chart may not render.
func TestDecodeIsStrict(t *testing.T) {
	good := `apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: sluice
          image: sluice
          readinessProbe:
            httpGet: {path: /readyz, port: admin}
`
	if o, err := decode([]byte(good)); err != nil || o == nil || o.Name != "w" {
		t.Fatalf("the good object: %v, %v", o, err)
	}
	for name, tc := range map[string]struct{ from, to, want string }{
		"misspelt top field":    {"  selector:", "  selectr:", `Deployment w: json: unknown field "selectr"`},
		"misspelt nested field": {"httpGet: {path", "httpGet: {pth", `unknown field "pth"`},
		"wrong type":            {"name: sluice", "name: [sluice]", "cannot unmarshal array"},
		"duplicate key":         {"          image: sluice", "          image: sluice\n          image: other", `"image" already set`},
		"unknown kind":          {"kind: Deployment", "kind: Deploymnet", `kind "Deploymnet": not a kind the chart may render`},
	} {
		_, err := decode([]byte(strings.Replace(good, tc.from, tc.to, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	// The KEDA subset is strict too.
	keda := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w}\nspec:\n  scaleTargetRef: {name: w}\n  triggers:\n    - {type: kafka, metadata: {lagThreshold: \"5\"}}\n"
	if _, err := decode([]byte(keda)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		strings.Replace(keda, "triggers:", "trigers:", 1),
		strings.Replace(keda, `lagThreshold: "5"`, "lagThreshold: 5", 1), // KEDA's metadata is strings
	} {
		if _, err := decode([]byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// A template with a misspelt field, or a number where the API wants a
// string, fails the rendering test: the chart is loaded, one template
// broken, and rendered.
func TestMisspeltTemplateFails(t *testing.T) {
	for _, tc := range []struct{ file, from, to, want string }{
		{"templates/_helpers.tpl", "terminationGracePeriodSeconds: {{", "terminationGracePeriodSecond: {{", `worker.yaml: Deployment sluice-worker: json: unknown field "terminationGracePeriodSecond"`},
		{"templates/ingest.yaml", "  maxUnavailable:", "  maxUnavailabe:", `ingest.yaml: PodDisruptionBudget sluice-ingest: json: unknown field "maxUnavailabe"`},
		{"templates/_helpers.tpl", "prometheus.io/port: {{ $v.ports.admin | quote }}", "prometheus.io/port: {{ $v.ports.admin }}", "Deployment sluice-worker: json: cannot unmarshal number into Go struct field ObjectMeta.spec.template.metadata.annotations of type string"},
		{"templates/worker.yaml", "lagThreshold: {{ $.Values.worker.keda.lagThreshold | int64 | quote }}", "lagThreshold: {{ $.Values.worker.keda.lagThreshold | int64 }}", "ScaledObject sluice-worker: json: cannot unmarshal number"},
	} {
		ch := loadChart(t)
		patch(t, ch, tc.file, tc.from, tc.to)
		vals := parseValues(t, "worker: {keda: {enabled: true}}")
		_, err := renderChart(ch, vals)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %q: %v, want %q", tc.file, tc.to, err, tc.want)
		}
	}
}

// patch replaces from with to in one of the chart's templates.
func patch(t *testing.T, ch *chart.Chart, file, from, to string) {
	t.Helper()
	for _, tpl := range ch.Templates {
		if tpl.Name == file {
			s := string(tpl.Data)
			if !strings.Contains(s, from) {
				t.Fatalf("%s: no %q", file, from)
			}
			tpl.Data = []byte(strings.Replace(s, from, to, 1))
			return
		}
	}
	t.Fatalf("no template %s", file)
}

// Values the chart refuses, with a message naming the value.
func TestChartRefusesBadValues(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct{ values, want string }{
		{"terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds must exceed the 30 s drain"},
		{"config: {sinks: [{name: a, type: file}]}", "config.sinks: list the sinks under sinks"},
		{"kafka: {brokers: null}", "kafka.brokers"},
		{"kafka: {sasl: {enabled: true, username: u}}", "kafka.sasl.passwordSecret.name is required"},
		{"worker: {keda: {enabled: true}}\nkafka: {tls: {enabled: true}}", "worker.keda.authenticationRef"},
		{"sinks: [{name: a, config: {type: file, signals: [logs], path: /a}}, {name: a, config: {type: file, signals: [logs], path: /b}}]", `the name "a" is used twice`},
		{"sinks: [{name: a, config: {type: file, signals: [logs]}}]", "sinks[0].config.path is required for a file sink"},
		{"mode: single\nsinks: [{name: a, config: {type: file, signals: [logs], path: /data/a}}]", "in mode single a file sink writes under single.mountPath"},
		{"rules: {gitSync: {enabled: true}}", "rules.gitSync.repo is required"},
		{"sinks: [{name: My_Sink, config: {type: loki, signals: [logs], url: http://l}}]", `sinks[0].name "My_Sink": it names the sink's workload`},
		{"networkPolicy: {adminFrom: []}", "networkPolicy.adminFrom"},
		{"config: {admin: {listen: 0.0.0.0:9000}}", `config.admin.listen "0.0.0.0:9000": the probes, Services and NetworkPolicies use ports (9464)`},
	} {
		_, err := renderChart(ch, parseValues(t, tc.values))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.values, err, tc.want)
		}
	}
}
