package cardinality

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestWriteText(t *testing.T) {
	r := Report{
		Tenants: []TenantReport{{
			Tenant: "acme", SeriesBefore: 12400, SeriesAfter: 1210,
			Metrics: []MetricReport{
				{Name: "http.server.request.duration", SeriesBefore: 10000, SeriesAfter: 100, Labels: []LabelReport{{"k8s.pod.name", 1000, 0}, {"http.route", 10, 10}}},
				{Name: "up", SeriesBefore: 2400, SeriesAfter: 1110, LabelsTruncated: true},
			},
			Other: &OtherReport{MetricsBefore: 3, SeriesBefore: 0, SeriesAfter: 0},
		}, {Tenant: "empty", Metrics: []MetricReport{}}},
		DroppedBatches: 2, DroppedPoints: 1234567,
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `tenant acme: 12,400 active series before the rules, 1,210 after (-90.2%)
METRIC                        BEFORE  AFTER  TOP LABELS (distinct values before → after)
http.server.request.duration  10,000    100  k8s.pod.name 1,000→0, http.route 10→10
up                             2,400  1,110  (more keys, not counted)
(3 other metrics)                  0      0  (not tracked by name)

tenant empty: 0 active series before the rules, 0 after
METRIC  BEFORE  AFTER  TOP LABELS (distinct values before → after)

not tracked (tenants beyond the limit): 2 batches, 1,234,567 points
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := (Report{}).WriteText(&b); err != nil || b.String() != "no active series\n" {
		t.Errorf("empty report: %q, %v", b.String(), err)
	}
}

// TestWriteTextEstimates: the table shows the tracker's figures.
func TestWriteTextEstimates(t *testing.T) {
	tr := New(Config{})
	podsAndRoutes(t, tr, "acme", t0)
	r := tr.Report("acme", 5, t0)
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	m := r.Tenants[0].Metrics[0]
	pod, _ := labelOf(m, "k8s.pod.name")
	for _, s := range []string{
		"tenant acme: " + num(m.SeriesBefore) + " active series before the rules, 20 after (-99.9%)",
		"m       " + num(m.SeriesBefore) + "     20  k8s.pod.name " + num(pod.ValuesBefore) + "→0, http.route 20→20,",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, b.String())
		}
	}
	t.Logf("\n%s", b.String())
}

func TestNum(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 12345: "12,345", 123456: "123,456", 1234567: "1,234,567"} {
		if got := num(n); got != want {
			t.Errorf("num(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHandler(t *testing.T) {
	tr := New(Config{})
	tr.now = func() time.Time { return t0 }
	podsAndRoutes(t, tr, "acme", t0)
	observe(t, tr, "other", Before, (&req{}).add(nil, "secret_metric", kvs("k", "v")), t0)
	srv := httptest.NewServer(tr.Handler())
	defer srv.Close()

	get := func(query string, wantCode int) map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/v1/cardinality" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != wantCode {
			t.Fatalf("%s: status %d, want %d", query, resp.StatusCode, wantCode)
		}
		if wantCode != http.StatusOK {
			return nil
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	v := get("?tenant=acme&top=1", http.StatusOK)
	tenants := v["tenants"].([]any)
	if len(tenants) != 1 {
		t.Fatalf("tenants %v", tenants)
	}
	ten := tenants[0].(map[string]any)
	if ten["tenant"] != "acme" || ten["series_before"].(float64) < 19000 || ten["series_after"] != 20.0 {
		t.Errorf("tenant %v", ten)
	}
	ms := ten["metrics"].([]any)
	if len(ms) != 1 {
		t.Fatalf("metrics %v", ms)
	}
	m := ms[0].(map[string]any)
	ls := m["labels"].([]any)
	if m["name"] != "m" || m["series_after"] != 20.0 || len(ls) != 1 {
		t.Errorf("metric %v", m)
	}
	l := ls[0].(map[string]any)
	if l["key"] != "k8s.pod.name" || l["values_after"] != 0.0 || l["values_before"].(float64) < 970 {
		t.Errorf("label %v", l)
	}
	if _, ok := v["dropped_batches"]; ok {
		t.Error("dropped counts in a tenant's report")
	}
	if body := get("?tenant=acme", http.StatusOK); strings.Contains(mustJSON(t, body), "secret_metric") {
		t.Error("tenant acme sees another tenant's metric")
	}

	all := get("", http.StatusOK)["tenants"].([]any)
	if len(all) != 2 || all[0].(map[string]any)["tenant"] != "acme" || all[1].(map[string]any)["tenant"] != "other" {
		t.Errorf("all tenants: %v", all)
	}
	if ls := all[0].(map[string]any)["metrics"].([]any)[0].(map[string]any)["labels"].([]any); len(ls) != 4 {
		t.Errorf("default top: %d labels, want all 4", len(ls))
	}
	if got := get("?tenant=nobody", http.StatusOK)["tenants"].([]any); len(got) != 0 {
		t.Errorf("unknown tenant: %v", got)
	}
	get("?top=x", http.StatusBadRequest)
	get("?top=-1", http.StatusBadRequest)

	resp, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
