// Package backendtest starts real metric backends for tests: Prometheus
// (with the remote-write receiver and native histograms) and
// VictoriaMetrics, each on a free port of 127.0.0.1 with its data in a
// temporary directory, stopped when the test ends. The binaries are looked
// up on PATH (`prometheus`, `victoria-metrics`); scripts/backends/install.sh
// (run by `make test`) installs them. Without them the test is skipped.
package backendtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testproc"
)

const startTimeout = 60 * time.Second

// Backend is a running server.
type Backend struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
	// WriteURL is its remote write endpoint.
	WriteURL string

	proc *process
}

// Stop stops the server (SIGTERM to its process group, SIGKILL after 20s)
// and waits until it has exited; its data directory and port stay
// reserved for Restart.
func (b Backend) Stop(tb testing.TB) {
	tb.Helper()
	if b.proc == nil {
		tb.Fatal("backendtest: Stop of a Backend not started by this package")
	}
	b.proc.stop()
}

// Restart starts the server again (after stopping it if it is running) on
// the same port and data directory, and waits until it is ready.
func (b Backend) Restart(tb testing.TB) {
	tb.Helper()
	if b.proc == nil {
		tb.Fatal("backendtest: Restart of a Backend not started by this package")
	}
	b.proc.stop()
	b.proc.start(tb)
}

// Flush makes what was written searchable at once (VictoriaMetrics
// buffers recent rows; Prometheus needs nothing).
func (b Backend) Flush(tb testing.TB) {
	resp, err := http.Get(b.URL + "/internal/force_flush")
	if err == nil {
		resp.Body.Close()
	}
}

// Prometheus starts `prometheus --web.enable-remote-write-receiver
// --enable-feature=native-histograms` for tb.
func Prometheus(tb testing.TB) Backend {
	tb.Helper()
	bin := lookPath(tb, "prometheus")
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\nscrape_configs: []\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	port := freePort(tb)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	p := start(tb, dir, base+"/-/ready", bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--web.enable-remote-write-receiver",
		"--enable-feature=native-histograms",
		"--log.level=warn",
	)
	return Backend{URL: base, WriteURL: base + "/api/v1/write", proc: p}
}

// VictoriaMetrics starts single-node `victoria-metrics` for tb. Its remote
// write endpoint is /api/v1/write; queries are /api/v1/query (Prometheus
// API). Call Flush before querying what was just written.
func VictoriaMetrics(tb testing.TB) Backend {
	tb.Helper()
	bin := lookPath(tb, "victoria-metrics")
	dir := tb.TempDir()
	port := freePort(tb)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	p := start(tb, dir, base+"/health", bin,
		"-storageDataPath="+filepath.Join(dir, "data"),
		"-httpListenAddr=127.0.0.1:"+strconv.Itoa(port),
		"-search.disableCache",
		"-search.latencyOffset=0s",
		"-loggerLevel=ERROR",
	)
	return Backend{URL: base, WriteURL: base + "/api/v1/write", proc: p}
}

func lookPath(tb testing.TB, name string) string {
	bin, err := exec.LookPath(name)
	if err != nil {
		tb.Skipf("no %s binary on PATH: run `make test` (scripts/backends/install.sh installs it)", name)
	}
	return bin
}

func freePort(tb testing.TB) int {
	port, err := testproc.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// process is a backend server process that can be stopped and started
// again with the same arguments.
type process struct {
	dir, ready, bin, logPath string
	args                     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs bin in its own process group (killed with the test binary),
// waits until ready answers 200, and stops it at cleanup.
func start(tb testing.TB, dir, ready, bin string, args ...string) *process {
	tb.Helper()
	p := &process{dir: dir, ready: ready, bin: bin, args: args, logPath: filepath.Join(dir, filepath.Base(bin)+".log")}
	tb.Cleanup(p.stop)
	p.start(tb)
	return p
}

func (p *process) start(tb testing.TB) {
	tb.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("backendtest: starting %s: %v", p.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := http.Get(p.ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			tb.Fatalf("backendtest: %s exited during startup: %s\n%s", filepath.Base(p.bin), cmd.ProcessState, tail(p.logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("backendtest: %s not ready within %s\n%s", filepath.Base(p.bin), startTimeout, tail(p.logPath))
		}
	}
}

// stop terminates the running process, if any, and waits for it.
func (p *process) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("%s", b)
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs the instant PromQL query q at time at (now when zero) against
// the Prometheus-compatible API at base, failing the test on an error.
func Query(tb testing.TB, base, q string, at time.Time) []Sample {
	tb.Helper()
	v := url.Values{"query": {q}}
	if !at.IsZero() {
		v.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	resp, err := http.Get(base + "/api/v1/query?" + v.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		tb.Fatalf("query %s: %v %s", q, err, body)
	}
	out := make([]Sample, len(r.Data.Result))
	for i, s := range r.Data.Result {
		out[i].Metric = s.Metric
		if str, ok := s.Value[1].(string); ok {
			out[i].Value, _ = strconv.ParseFloat(str, 64)
		}
	}
	return out
}
