package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream/cardinality"
)

// startSluice writes a config with the embedded bus, admin.listen on a free
// port and extra appended, and runs roles in this process until the test
// ends. It returns the process and the config's path.
func startSluice(t *testing.T, roles app.Roles, extra string) (*app.Process, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(path, fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 2
ingest:
  grpc_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
  trust_tenant_header: true # the test names its tenants in X-Scope-OrgID, as a gateway would
admin:
  listen: %s
log:
  level: warn
%s`, filepath.Join(dir, "data"), testproc.FreeAddr(t), extra), 0o644)
	cfg, err := app.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := app.Start(context.Background(), cfg, roles, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p, path
}

// podRequest is an OTLP/JSON request of one gauge with a point per pod, on
// two routes.
func podRequest(pods int) string {
	var pts []string
	for i := range pods {
		pts = append(pts, fmt.Sprintf(`{"asInt":"1","attributes":[{"key":"pod","value":{"stringValue":"web-%d"}},{"key":"route","value":{"stringValue":"/%c"}}]}`, i, 'a'+i%2))
	}
	return `{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"http_requests","gauge":{"dataPoints":[` + strings.Join(pts, ",") + `]}}]}]}]}`
}

func postMetrics(t *testing.T, p *app.Process, tenant, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.HTTPAddr()+"/v1/metrics", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/metrics: %d %s", resp.StatusCode, b)
	}
}

// sluiceCLI runs `sluice <args>` as a process of its own (the test binary
// standing in for sluice) and returns its output and exit code.
func sluiceCLI(t *testing.T, args string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_MAIN="+args)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// A rule deletes the label pod: `sluice cardinality` shows the metric's
// series before the rule (one per pod) and after it (one per route), and
// pod's distinct values going to none. The process runs on the embedded
// bus; the command finds its admin server through -c, or --admin.
func TestCardinalityCommand(t *testing.T) {
	rulesDir := t.TempDir()
	os.WriteFile(filepath.Join(rulesDir, "pods.yaml"), []byte(`rules:
  - name: drop-pod
    signal: metrics
    delete: ['attributes["pod"]']
`), 0o644)
	p, cfgPath := startSluice(t, app.Roles{Ingest: true, Worker: true}, "rules:\n  dir: "+rulesDir+"\n")

	out, err := run(t, "cardinality", "-c", cfgPath)
	if err != nil || out != "no active series\n" {
		t.Fatalf("before any data: %q, %v", out, err)
	}
	postMetrics(t, p, "acme", podRequest(30))
	postMetrics(t, p, "globex", podRequest(4))

	row := regexp.MustCompile(`(?m)^http_requests +30 +2 +pod 30→0, route 2→2$`)
	deadline := time.Now().Add(30 * time.Second)
	for !row.MatchString(out) || !strings.Contains(out, "tenant globex") {
		if time.Now().After(deadline) {
			t.Fatalf("no report of the rule's effect:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
		if out, err = run(t, "cardinality", "-c", cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("sluice cardinality -c %s:\n%s", cfgPath, out)
	if !strings.Contains(out, "tenant acme: 30 active series before the rules, 2 after (-93.3%)") {
		t.Errorf("no tenant summary:\n%s", out)
	}

	// One tenant, by --admin, in a process of its own.
	stdout, stderr, code := sluiceCLI(t, "cardinality --admin "+p.AdminAddr()+" --tenant globex --top 1")
	if code != 0 || strings.Contains(stdout, "acme") ||
		!regexp.MustCompile(`(?m)^http_requests +4 +2 +pod 4→0$`).MatchString(stdout) {
		t.Errorf("--tenant globex --top 1: exit %d\n%s%s", code, stdout, stderr)
	}
	if out, err := run(t, "cardinality", "--admin", p.AdminAddr(), "--tenant", "initech"); err != nil || out != "no active series for tenant \"initech\"\n" {
		t.Errorf("unknown tenant: %q, %v", out, err)
	}

	// --json is the server's report.
	out, err = run(t, "cardinality", "--admin", "http://"+p.AdminAddr()+"/", "--json", "--tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	var rep cardinality.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if len(rep.Tenants) != 1 || len(rep.Tenants[0].Metrics) != 1 {
		t.Fatalf("--json: %s", out)
	}
	m := rep.Tenants[0].Metrics[0]
	if m.Name != "http_requests" || m.SeriesBefore != 30 || m.SeriesAfter != 2 || m.Labels[0] != (cardinality.LabelReport{Key: "pod", ValuesBefore: 30}) {
		t.Errorf("--json: %+v", m)
	}
}

// The command says what is wrong when it gets no report.
func TestCardinalityCommandErrors(t *testing.T) {
	ingestOnly, ingestCfg := startSluice(t, app.Roles{Ingest: true}, "")
	off, _ := startSluice(t, app.Roles{Worker: true}, "worker:\n  cardinality:\n    enabled: false\n")
	noAdmin := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(noAdmin, []byte("admin:\n  listen: \"\"\n"), 0o644)
	randomPort := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(randomPort, []byte("admin:\n  listen: 127.0.0.1:0\n"), 0o644)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing listening", []string{"--admin", testproc.FreeAddr(t)}, "cannot reach sluice's admin server at 127.0.0.1:"},
		{"no worker", []string{"-c", ingestCfg}, "no worker in the process at " + ingestOnly.AdminAddr() + ": cardinality is tracked by workers"},
		{"tracking off", []string{"--admin", off.AdminAddr()}, "404 Not Found: cardinality tracking is off in this worker (worker.cardinality.enabled: false)"},
		{"no config", []string{"-c", filepath.Join(t.TempDir(), "missing.yaml")}, "finding the admin server (or give --admin): open "},
		{"admin off", []string{"-c", noAdmin}, "admin.listen is empty, the admin server is off; give --admin"},
		{"random port", []string{"-c", randomPort}, `admin.listen: "127.0.0.1:0" does not say which port`},
		{"bad address", []string{"--admin", "localhost"}, `--admin: want host:port or a URL, not "localhost"`},
		{"negative top", []string{"--admin", ingestOnly.AdminAddr(), "--top", "-1"}, "--top must be 0 (all) or more"},
		{"not sluice", []string{"--admin", ingestOnly.HTTPAddr()}, ingestOnly.HTTPAddr() + " answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append([]string{"cardinality"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, %v; want an error with %q", out, err, tc.want)
			}
		})
	}

	// As a process: the message on stderr, exit 1.
	stdout, stderr, code := sluiceCLI(t, "cardinality -c "+ingestCfg)
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "sluice: no worker in the process at ") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestDialURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9464":         "http://127.0.0.1:9464",
		":9464":                  "http://127.0.0.1:9464",
		"0.0.0.0:9464":           "http://127.0.0.1:9464",
		"[::]:9464":              "http://[::1]:9464",
		"sluice-worker-0:9464":   "http://sluice-worker-0:9464",
		"http://10.0.0.7:9464/":  "http://10.0.0.7:9464",
		"https://sluice.example": "https://sluice.example",
	} {
		if got, err := dialURL(in); err != nil || got != want {
			t.Errorf("dialURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "localhost", "127.0.0.1:0", ":0", "http://"} {
		if got, err := dialURL(in); err == nil {
			t.Errorf("dialURL(%q) = %q, accepted", in, got)
		}
	}
}
