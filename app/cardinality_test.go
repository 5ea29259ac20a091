package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/stream/cardinality"
)

// The config's defaults are the tracker's (internal/config cannot import
// stream/cardinality, so they are written twice).
func TestCardinalityConfigDefaultsAreTheTrackers(t *testing.T) {
	got := config.Default().Worker.Cardinality
	want := config.Cardinality{Enabled: true, MaxMetrics: cardinality.DefaultMaxMetrics, MaxLabels: cardinality.DefaultMaxLabels,
		Window: cardinality.DefaultWindow, MaxTenants: cardinality.DefaultMaxTenants}
	if got != want {
		t.Errorf("config defaults %+v, tracker defaults %+v", got, want)
	}
}

// podMetrics is an OTLP/JSON metrics request: one gauge, http_requests,
// with a point per pod (pods distinct values of "pod", each on one of two
// routes), and one point of "up".
func podMetrics(pods int) string {
	var pts []string
	for i := range pods {
		pts = append(pts, fmt.Sprintf(`{"asInt":"%d","attributes":[{"key":"pod","value":{"stringValue":"web-%d"}},{"key":"route","value":{"stringValue":"/%c"}}]}`,
			i, i, 'a'+i%2))
	}
	return `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},"scopeMetrics":[{"metrics":[
		{"name":"http_requests","gauge":{"dataPoints":[` + strings.Join(pts, ",") + `]}},
		{"name":"up","gauge":{"dataPoints":[{"asInt":"1"}]}}]}]}]}`
}

// getCardinality fetches the admin server's report.
func getCardinality(t *testing.T, p *Process, query string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.AdminAddr() + "/api/v1/cardinality" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricOf returns the metric called name in the tenant's report.
func metricOf(r cardinality.Report, tenant, name string) (cardinality.MetricReport, bool) {
	for _, tr := range r.Tenants {
		if tr.Tenant != tenant {
			continue
		}
		for _, m := range tr.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return cardinality.MetricReport{}, false
}

func labelOf(m cardinality.MetricReport, key string) cardinality.LabelReport {
	for _, l := range m.Labels {
		if l.Key == key {
			return l
		}
	}
	return cardinality.LabelReport{Key: key}
}

// A rule deletes a high-cardinality label: metrics sent over OTLP/HTTP go
// through the worker, and /api/v1/cardinality shows the series of the
// metric before the rule (one per pod) and after it (one per route), and
// the label's distinct values before and after.
func TestCardinalityEndToEnd(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	os.WriteFile(filepath.Join(rulesDir, "pods.yaml"), []byte(`rules:
  - name: drop-pod
    signal: metrics
    delete: ['attributes["pod"]']
`), 0o644)
	cfg := testConfig(t, dir, "rules:\n  dir: "+rulesDir+"\nworker:\n  cardinality:\n    window: 1h\n")
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	if code, body := getCardinality(t, p, ""); code != 200 || !strings.Contains(body, `"tenants":[]`) {
		t.Fatalf("before any data: %d %s", code, body)
	}
	postJSON(t, p, "/v1/metrics", podMetrics(40))

	var rep cardinality.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getCardinality(t, p, "?tenant=anonymous&top=5")
		if code != 200 {
			t.Fatalf("GET /api/v1/cardinality: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if m, ok := metricOf(rep, "anonymous", "http_requests"); ok && m.SeriesBefore == 40 && m.SeriesAfter == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report of the rule's effect: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m, _ := metricOf(rep, "anonymous", "http_requests")
	for _, want := range []cardinality.LabelReport{
		{Key: "pod", ValuesBefore: 40, ValuesAfter: 0},
		{Key: "route", ValuesBefore: 2, ValuesAfter: 2},
		{Key: "service.name", ValuesBefore: 1, ValuesAfter: 1},
	} {
		if got := labelOf(m, want.Key); got != want {
			t.Errorf("label %s: got %+v, want %+v", want.Key, got, want)
		}
	}
	if m.Labels[0].Key != "pod" {
		t.Errorf("labels not by most values: %+v", m.Labels)
	}
	if up, ok := metricOf(rep, "anonymous", "up"); !ok || up.SeriesBefore != 1 || up.SeriesAfter != 1 {
		t.Errorf("up: %+v", up)
	}
	if tr := rep.Tenants[0]; len(rep.Tenants) != 1 || tr.SeriesBefore != 41 || tr.SeriesAfter != 3 {
		t.Errorf("tenants: %+v", rep.Tenants)
	}

	if code, body := getCardinality(t, p, "?tenant=nobody"); code != 200 || !strings.Contains(body, `"tenants":[]`) {
		t.Errorf("unknown tenant: %d %s", code, body)
	}
	if code, body := getCardinality(t, p, "?top=-1"); code != 400 {
		t.Errorf("top=-1: %d %s", code, body)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	if !strings.Contains(text.String(), "pod 40→0") {
		t.Errorf("text report:\n%s", text.String())
	}
}

// Without a worker, or with tracking off, the endpoint answers 404 and
// says why it is not there.
func TestCardinalityEndpointNeedsATrackingWorker(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "worker:\n  cardinality:\n    enabled: false\n")
	p, err := Start(context.Background(), cfg, Roles{Worker: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	code, body := getCardinality(t, p, "")
	p.Stop()
	if code != 404 || !strings.Contains(body, "worker.cardinality.enabled: false") {
		t.Errorf("tracking off: %d %q", code, body)
	}

	cfg = testConfig(t, t.TempDir(), "")
	p, err = Start(context.Background(), cfg, Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if code, _ := getCardinality(t, p, ""); code != 404 {
		t.Errorf("ingest only: %d", code)
	}
}
