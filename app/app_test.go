package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream/bustest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// loadYAML writes y as dir/sluice.yaml and loads it.
func loadYAML(t *testing.T, dir, y string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testConfig is the example config with every listener on a free port and
// every path in dir.
func testConfig(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`
bus:
  kind: embedded
  data_dir: %q
  partitions: 3
ingest:
  grpc_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
sinks:
  - name: archive
    type: file
    signals: [metrics, logs, traces]
    path: %q
log:
  level: warn
%s`, filepath.Join(dir, "data"), filepath.Join(dir, "out"), extra)
	cfg := loadYAML(t, dir, y)
	return cfg
}

func testLogger(t *testing.T) *slog.Logger { return bustest.Logger(t, slog.LevelWarn) }

// sender sends OTLP the three ways clients do and counts the items that got
// a success answer.
type sender struct {
	t    *testing.T
	p    *Process
	sent [3]int
	seed int
}

func (s *sender) sendAll(rounds int) {
	s.t.Helper()
	conn, err := grpc.NewClient(s.p.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	mc := colmetrics.NewMetricsServiceClient(conn)
	shape := otlptest.Shape{Resources: 3, Items: 4, Points: 5}
	for range rounds {
		s.seed++
		shape.Seed = s.seed
		// metrics over OTLP/gRPC
		if _, err := mc.Export(context.Background(), otlptest.Metrics(shape)); err != nil {
			s.t.Fatal(err)
		}
		s.sent[otlpwire.Metrics] += shape.ItemCount(otlpwire.Metrics)
		// logs over OTLP/HTTP protobuf
		s.post("/v1/logs", "application/x-protobuf", otlptest.Request(otlpwire.Logs, shape))
		s.sent[otlpwire.Logs] += shape.ItemCount(otlpwire.Logs)
		// traces over OTLP/HTTP JSON
		js, err := otlpjson.MarshalRequest(otlpwire.Traces, otlptest.Request(otlpwire.Traces, shape), nil)
		if err != nil {
			s.t.Fatal(err)
		}
		s.post("/v1/traces", "application/json", js)
		s.sent[otlpwire.Traces] += shape.ItemCount(otlpwire.Traces)
	}
}

func (s *sender) post(path, ct string, body []byte) {
	s.t.Helper()
	resp, err := http.Post("http://"+s.p.HTTPAddr()+path, ct, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		s.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
}

// outItems counts the items in the file sink's output under dir, per
// signal, over all tenants. Only complete lines count: the sink may be in
// the middle of writing the last.
func outItems(t *testing.T, dir string) [3]int {
	t.Helper()
	var n [3]int
	for _, tn := range tenantItems(t, dir) {
		for sig := range n {
			n[sig] += tn[sig]
		}
	}
	return n
}

// tenantItems counts the items of the file sink's output under dir by
// tenant (its directories) and signal; only complete lines count.
func tenantItems(t *testing.T, dir string) map[string][3]int {
	t.Helper()
	out := map[string][3]int{}
	tenants, _ := os.ReadDir(dir)
	for _, d := range tenants {
		var n [3]int
		for _, sig := range otlpwire.Signals {
			files, _ := filepath.Glob(filepath.Join(dir, d.Name(), sig.String()+"*.jsonl"))
			for _, name := range files {
				b, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				for {
					line, rest, complete := bytes.Cut(b, []byte{'\n'})
					if !complete {
						break
					}
					b = rest
					pb, err := otlpjson.UnmarshalRequest(sig, line, nil)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					c, err := otlpwire.Count(sig, pb)
					if err != nil {
						t.Fatal(err)
					}
					n[sig] += c
				}
			}
		}
		out[d.Name()] = n
	}
	return out
}

// waitForOutput waits until the file sink has written want items (it may
// take a few polls), failing if more arrive or it takes far too long.
func waitForOutput(t *testing.T, dir string, want [3]int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := outItems(t, dir)
		if got == want {
			return
		}
		for i := range got {
			if got[i] > want[i] {
				t.Fatalf("more items out than in: got %v, sent %v", got, want)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("items out %v, sent %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The all-in-one pipeline: OTLP in over gRPC, HTTP protobuf and HTTP JSON,
// the embedded bus, the worker (no rules), the file sink; counts equal.
// Then a restart on the same data directory resumes where it stopped.
func TestRunEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, p: p}
	s.sendAll(10)
	waitForOutput(t, filepath.Join(dir, "out"), s.sent)

	// Ready, and the metrics show what went through.
	for _, c := range [][2]string{{"/readyz", "ready"}, {"/metrics", "sluice_ingest_items_total"}, {"/metrics", "sluice_arrow_live_bytes"}} {
		path, want := c[0], c[1]
		resp, err := http.Get("http://" + p.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, no %q", path, resp.StatusCode, want)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	// Restart: nothing is read twice, new data flows.
	p, err = Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	s.p = p
	s.sendAll(5)
	waitForOutput(t, filepath.Join(dir, "out"), s.sent)
}

// Roles in separate processes share the bus: ingest only, then worker and
// sink only, against a remote (not embedded) bus.
func TestRolesOnKafka(t *testing.T) { testRolesOnKafka(t, false) }

// The same with the worker's Kafka transactions: output equals input.
func TestRolesOnKafkaExactlyOnce(t *testing.T) { testRolesOnKafka(t, true) }

func testRolesOnKafka(t *testing.T, exactlyOnce bool) {
	brokers := kafkatest.Brokers(t)
	dir := t.TempDir()
	prefix := kafkatest.Topic(t, "app")
	cfg := testConfig(t, dir, "")
	cfg.Bus.Kind = "kafka"
	cfg.Bus.Kafka.Brokers = brokers
	cfg.Bus.TopicPrefix = prefix
	cfg.Worker.Group = prefix + "-worker"
	cfg.Worker.ExactlyOnce = exactlyOnce
	cfg.Worker.TransactionalID = prefix + "-tx"
	cfg.Sinks[0].Group = prefix + "-sink"

	ing, err := Start(context.Background(), cfg, Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, p: ing}
	s.sendAll(5)
	if err := ing.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg.Ingest.GRPCListen, cfg.Ingest.HTTPListen = "", ""
	rest, err := Start(context.Background(), cfg, Roles{Worker: true, AllSinks: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rest.Stop()
	waitForOutput(t, filepath.Join(dir, "out"), s.sent)
}

// What the embedded bus acknowledged survives a restart of the process:
// ingest only, stop, then worker and sink only on the same data directory.
func TestEmbeddedBusKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	p, err := Start(context.Background(), cfg, Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, p: p}
	s.sendAll(5)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := outItems(t, filepath.Join(dir, "out")); got != [3]int{} {
		t.Fatalf("output before the sink ran: %v", got)
	}
	p, err = Start(context.Background(), cfg, Roles{Worker: true, AllSinks: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	waitForOutput(t, filepath.Join(dir, "out"), s.sent)
}

// The ingester's tokens file reloads on SIGHUP (ReloadIngest): the old
// token is refused and the new one accepted, each writing as its tenant.
func TestIngestTokensReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	tokPath := filepath.Join(dir, "tokens.yaml")
	os.WriteFile(tokPath, []byte("tokens:\n  - token: old-token\n    tenant: team-a\n"), 0o600)
	cfg := testConfig(t, dir, "")
	cfg.Ingest.TokensFile = tokPath
	cfg.Ingest.ReloadInterval = time.Hour // only SIGHUP reloads here
	p, err := Start(context.Background(), cfg, Roles{Ingest: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	post := func(token, tenant string) int {
		req, _ := http.NewRequest("POST", "http://"+p.HTTPAddr()+"/v1/logs", bytes.NewReader(nil))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Authorization", "Bearer "+token)
		if tenant != "" {
			req.Header.Set("X-Scope-OrgID", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if post("old-token", "") != 200 || post("new-token", "") != 401 || post("old-token", "team-b") != 403 {
		t.Fatal("before the reload: the old token does not work, or the new one does, or the old one writes as team-b")
	}
	os.WriteFile(tokPath, []byte("tokens:\n  - token: new-token\n    tenant: team-b\n"), 0o600)
	p.ReloadIngest()
	for deadline := time.Now().Add(10 * time.Second); post("new-token", "") != 200; {
		if time.Now().After(deadline) {
			t.Fatal("the new token is not accepted after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := post("old-token", ""); code != 401 {
		t.Errorf("old token after the reload: %d, want 401", code)
	}
	if code := post("new-token", "team-b"); code != 200 {
		t.Errorf("new token as its tenant: %d, want 200", code)
	}
}
