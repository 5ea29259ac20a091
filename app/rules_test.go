package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func postJSON(t *testing.T, p *Process, path, body string) {
	t.Helper()
	resp, err := http.Post("http://"+p.HTTPAddr()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
}

// output returns what the file sink wrote for signal, waiting until it
// contains every string of want (or a deadline passes).
func output(t *testing.T, dir, signal string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var all []byte
		files, _ := filepath.Glob(filepath.Join(dir, "*", signal+"*.jsonl")) // one directory per tenant
		for _, f := range files {
			b, _ := os.ReadFile(f)
			all = append(all, b...)
		}
		s := string(all)
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s output lacks %q:\n%s", signal, missing, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// `run` with the example rules: health-check spans gone, e-mails hashed,
// debug logs dropped, routes tidied, in the file sink's output.
func TestRunAppliesExampleRules(t *testing.T) {
	dir := t.TempDir()
	rulesDir, _ := filepath.Abs("../examples/rules")
	cfg := testConfig(t, dir, "rules:\n  dir: "+rulesDir+"\n")
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	out := filepath.Join(dir, "out")

	postJSON(t, p, "/v1/traces", `{"resourceSpans":[{"scopeSpans":[{"spans":[
		{"name":"GET /healthz","traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","attributes":[{"key":"http.route","value":{"stringValue":"/healthz"}}]},
		{"name":"checkout","traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203332","attributes":[{"key":"user.email","value":{"stringValue":"alice@example.com"}}]},
		{"name":"GET /api/orders","traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203333","attributes":[{"key":"http.route","value":{"stringValue":"/api/orders"}}]}]}]}]}`)
	postJSON(t, p, "/v1/logs", `{"resourceLogs":[{"scopeLogs":[{"logRecords":[
		{"severityNumber":5,"body":{"stringValue":"debug: cache miss"}},
		{"severityNumber":9,"body":{"stringValue":"order placed"}}]}]}]}`)
	postJSON(t, p, "/v1/metrics", `{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"http_requests","gauge":{"dataPoints":[
		{"asInt":"7","attributes":[{"key":"route","value":{"stringValue":"/api/v1/items/123"}},{"key":"user.id","value":{"stringValue":"42"}},{"key":"k8s.pod.name","value":{"stringValue":"web-1"}}]}]}}]}]}]}`)

	traces := output(t, out, "traces", "GET /api/orders", "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976")
	if strings.Contains(traces, "/healthz") || strings.Contains(traces, "alice@example.com") {
		t.Errorf("traces output still has the health check or the e-mail:\n%s", traces)
	}
	logs := output(t, out, "logs", "order placed")
	if strings.Contains(logs, "cache miss") {
		t.Errorf("debug log not dropped:\n%s", logs)
	}
	metrics := output(t, out, "metrics", `"/api/v1/items/{id}"`, `"key":"pod"`)
	if strings.Contains(metrics, "user.id") || strings.Contains(metrics, "k8s.pod.name") {
		t.Errorf("user.id or k8s.pod.name left:\n%s", metrics)
	}
}

// The rules directory is reloaded when a file changes: the new rules apply
// to the next batch; a broken file keeps the old rules and is counted.
func TestRulesReload(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	write := func(name, content string) {
		// A new file and rename, as git checkouts do.
		tmp := filepath.Join(rulesDir, ".tmp")
		os.WriteFile(tmp, []byte(content), 0o644)
		os.Rename(tmp, filepath.Join(rulesDir, name))
	}
	p, send, out := reloadRules(t, dir, rulesDir, func(content string) { write("r.yaml", content) })

	write("broken.yaml", "rules:\n  - name: x\n    signal: logs\n    when: nosuchfield > 1\n    drop: true\n")
	waitFor(t, p, `sluice_rules_reloads_total{result="error"} 1`)
	send("b2", "c3")
	if s := output(t, out, "logs", `"c3"`); strings.Count(s, `"b2"`) != 0 {
		t.Fatalf("a broken file replaced the rules in use:\n%s", s)
	}
}

// reloadRules starts the pipeline with a rule dropping the log "a",
// published by publish into rulesDir, and then publishes one dropping "b2"
// instead: each set applies to the logs sent after it. It returns the
// process, a sender of logs by body and the file sink's directory.
func reloadRules(t *testing.T, dir, rulesDir string, publish func(content string)) (*Process, func(bodies ...string), string) {
	t.Helper()
	rule := func(body string) string {
		return "rules:\n  - name: drop-one\n    signal: logs\n    when: body == \"" + body + "\"\n    drop: true\n"
	}
	publish(rule("a"))
	cfg := testConfig(t, dir, "rules:\n  dir: "+rulesDir+"\n  reload_interval: 50ms\n")
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	out := filepath.Join(dir, "out")
	send := func(bodies ...string) {
		var recs []string
		for _, b := range bodies {
			recs = append(recs, `{"body":{"stringValue":"`+b+`"}}`)
		}
		postJSON(t, p, "/v1/logs", `{"resourceLogs":[{"scopeLogs":[{"logRecords":[`+strings.Join(recs, ",")+`]}]}]}`)
	}
	send("a", "b1")
	if s := output(t, out, "logs", `"b1"`); strings.Contains(s, `"a"`) {
		t.Fatalf("first rules not applied:\n%s", s)
	}
	publish(rule("b2"))
	waitFor(t, p, `sluice_rules_reloads_total{result="ok"} 1`)
	send("a2", "b2")
	if s := output(t, out, "logs", `"a2"`); strings.Contains(s, `"b2"`) {
		t.Fatalf("reloaded rules not applied:\n%s", s)
	}
	return p, send, out
}

// waitFor waits until the admin /metrics page contains line.
func waitFor(t *testing.T, p *Process, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.AdminAddr() + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), line) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in /metrics", line)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// SIGHUP (ReloadRules) reloads at once, whatever the interval.
func TestRulesReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	os.WriteFile(filepath.Join(rulesDir, "r.yaml"), []byte("rules:\n  - name: a\n    signal: logs\n    when: body == \"x\"\n    drop: true\n"), 0o644)
	cfg := testConfig(t, dir, "rules:\n  dir: "+rulesDir+"\n  reload_interval: 1h\n")
	p, err := Start(context.Background(), cfg, Roles{Worker: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	before := p.rules.current.Load().Version()
	os.WriteFile(filepath.Join(rulesDir, "r.yaml"), []byte("rules:\n  - name: a\n    signal: logs\n    when: body == \"y\"\n    drop: true\n"), 0o644)
	p.ReloadRules()
	waitFor(t, p, `sluice_rules_reloads_total{result="ok"} 1`)
	if after := p.rules.current.Load().Version(); after == before {
		t.Errorf("version still %s after the reload", after)
	}
}

// A rules directory mounted from a ConfigMap: the kubelet writes each
// version into a hidden directory and swaps the ..data symlink to it, the
// rule files being symlinks through ..data (so their own entries never
// change). The worker still sees the new set, and never a half-written one.
func TestRulesReloadFromConfigMapVolume(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	version := 0
	publish := func(content string) {
		version++
		ts := fmt.Sprintf("..2026_12_06_03_00_%02d.%d", version, version)
		if err := os.Mkdir(filepath.Join(rulesDir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rulesDir, ts, "r.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(rulesDir, "..data_tmp")
		if err := os.Symlink(ts, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(rulesDir, "..data")); err != nil {
			t.Fatal(err)
		}
		if version == 1 {
			if err := os.Symlink(filepath.Join("..data", "r.yaml"), filepath.Join(rulesDir, "r.yaml")); err != nil {
				t.Fatal(err)
			}
		}
	}
	reloadRules(t, dir, rulesDir, publish)
}
