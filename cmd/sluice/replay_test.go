package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream"
)

// `sluice replay --dry-run` beside a running process on the embedded bus
// (reached at bus.embedded.listen): the table and the JSON report say
// what a rule that merges the pods does to the traffic received.
func TestReplayCommandDryRun(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules-next")
	os.MkdirAll(rules, 0o755)
	os.WriteFile(filepath.Join(rules, "pods.yaml"), []byte(`
rules:
  - name: without-pod
    signal: metrics
    aggregate: {without: [pod], interval: 30s}
`), 0o644)
	path := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(path, fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 2
  embedded:
    listen: %s
    token: secret
ingest:
  grpc_listen: ""
  http_listen: 127.0.0.1:0
  trust_tenant_header: true
admin:
  listen: ""
log:
  level: warn
sinks:
  - name: mimir
    type: prometheus_remote_write
    signals: [metrics]
    url: http://127.0.0.1:1/api/v1/push
    max_age: 1m
`, filepath.Join(dir, "data"), testproc.FreeAddr(t)), 0o644)
	cfg, err := app.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := app.Start(context.Background(), cfg, app.Roles{Ingest: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	postMetrics(t, p, "acme", podRequest(6))
	postMetrics(t, p, "acme", podRequest(6))

	out, err := run(t, "replay", "-c", path, "--from", "-1h", "--rules", rules, "--sink", "mimir", "--dry-run")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"dry run (nothing written), topic raw, 2 records, 12 items: complete",
		"without-pod", "http_requests", "metrics  2        12        "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, "replay", "-c", path, "--from", "-1h", "--rules", rules, "--dry-run", "--signal", "metrics", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep app.ReplayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.RuleHits) != 1 || rep.RuleHits[0].Matched != 12 || rep.RuleHits[0].Merged != 12 {
		t.Errorf("rules %+v, want without-pod matching and merging 12 points", rep.RuleHits)
	}
	if len(rep.Series) != 1 || rep.Series[0].Before != 6 || rep.Series[0].After != 2 {
		t.Errorf("series %+v, want http_requests 6 before (pods), 2 after (routes)", rep.Series)
	}
}

func TestReplayCommandFlags(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"", time.Time{}, ""},
		{"now", now, ""},
		{"-6h", now.Add(-6 * time.Hour), ""},
		{"2026-12-05T00:00:00Z", time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), ""},
		{"yesterday", time.Time{}, "neither an RFC 3339 time"},
		{"-6x", time.Time{}, "neither an RFC 3339 time"},
	} {
		got, err := parseWhen(tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseWhen(%q): %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want stream.Positions
		err  bool
	}{
		{"", nil, false},
		{"120", stream.Positions{stream.AllPartitions: 120}, false},
		{"0:10,2:30", stream.Positions{0: 10, 2: 30}, false},
		{"-1", nil, true},
		{"0:10,x", nil, true},
		{"1:-5", nil, true},
	} {
		got, err := parseOffsets(tc.in)
		if (err != nil) != tc.err || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parseOffsets(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := run(t, "replay", "-c", "../../examples/sluice.yaml", "--from", "-1h", "--from-offset", "3", "--dry-run"); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("--from with --from-offset: %v", err)
	}
	if _, err := run(t, "replay", "-c", "../../examples/sluice.yaml", "--from", "-1h", "--rate-bytes", "lots", "--dry-run"); err == nil || !strings.Contains(err.Error(), "not a size") {
		t.Errorf("--rate-bytes lots: %v", err)
	}
}
