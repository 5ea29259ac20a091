//go:build linux

package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// mountTmpfs mounts a tmpfs of size bytes at dir, or skips the test when
// this process may not mount (not root, or no CAP_SYS_ADMIN in a
// container). The tmpfs is unmounted when the test ends, failed or not.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs as a full disk")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dk", size>>10), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs at %s (no permission to mount here?): %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; unmounting lazily", dir, err, out)
			if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
				t.Errorf("umount -l %s: %v: %s", dir, err, out)
			}
		}
	})
}

// fillDisk writes a file at path that leaves about leave bytes free on
// its file system.
func fillDisk(t *testing.T, path string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free <= leave {
		t.Fatalf("only %d bytes free, wanted to leave %d", free, leave)
	}
	if err := os.WriteFile(path, make([]byte, free-leave), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A real full disk under the embedded bus (a tmpfs smaller than
// max_store): ingest answers 503 with Retry-After, never 200 for what it
// could not store; the process stays up and /readyz names the bus. Once
// space is freed, requests succeed again without a restart of sluice,
// exactly the items answered 200 reach the file sink (which writes outside
// the full disk), and no record counts as lost to retention.
func TestEmbeddedDiskFullRecovers(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mountTmpfs(t, data, 8<<20)
	y := fmt.Sprintf(`
bus:
  kind: embedded
  data_dir: %q
  partitions: 1
  produce_timeout: 2s
  embedded:
    max_store: 1GiB
ingest:
  grpc_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
  retry_after: 1s
admin:
  listen: 127.0.0.1:0
sinks:
  - name: archive
    type: file
    signals: [logs]
    path: %q
`, data, filepath.Join(dir, "out"))
	cfg := loadYAML(t, dir, y)
	p, err := Start(context.Background(), cfg, All, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	filler := filepath.Join(data, "filler")
	fillDisk(t, filler, 512<<10)

	shape := otlptest.Shape{Resources: 2, Items: 50, Points: 1}
	seed := 0
	post := func() int {
		seed++
		shape.Seed = seed
		resp, err := http.Post("http://"+p.HTTPAddr()+"/v1/logs", "application/x-protobuf",
			bytes.NewReader(otlptest.Request(otlpwire.Logs, shape)))
		if err != nil {
			t.Fatalf("request %d: %v (is the process still up?)", seed, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("request %d: %d without Retry-After", seed, resp.StatusCode)
			}
		default:
			t.Fatalf("request %d: answer %d, want 200, or 503/429 with Retry-After", seed, resp.StatusCode)
		}
		return resp.StatusCode
	}
	healthy := func() {
		t.Helper()
		resp, err := http.Get("http://" + p.AdminAddr() + "/healthz")
		if err != nil {
			t.Fatalf("healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
	}

	perRequest := shape.ItemCount(otlpwire.Logs)
	var accepted, refused, okBefore int
	for refused == 0 && seed < 2000 {
		if post() == http.StatusOK {
			accepted += perRequest
			okBefore++
		} else {
			refused++
		}
	}
	if refused == 0 || okBefore == 0 {
		t.Fatalf("%d requests answered 200, %d refused: the disk never filled", okBefore, refused)
	}
	// Still full: still refused, and the process is up, not ready.
	for range 3 {
		if post() == http.StatusOK {
			t.Fatal("answered 200 while the disk is still full")
		}
		refused++
	}
	healthy()
	if body := waitReady(t, p, http.StatusServiceUnavailable); !strings.Contains(body, "bus: ") || !strings.Contains(body, "cannot be written") {
		t.Errorf("readyz does not name the bus's store: %q", body)
	}
	admin := "http://" + p.AdminAddr()
	if v, _ := metricSum(t, admin, "sluice_bus_store_write_failing"); v != 1 {
		t.Errorf("sluice_bus_store_write_failing = %v while the disk is full, want 1", v)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for post() != http.StatusOK {
		refused++
		if time.Now().After(deadline) {
			t.Fatalf("still refused 60s after space was freed (%d refused in all)", refused)
		}
		time.Sleep(200 * time.Millisecond)
	}
	accepted += perRequest
	okAfter := 1
	for range 10 {
		if post() != http.StatusOK {
			t.Fatal("refused again after recovering")
		}
		accepted += perRequest
		okAfter++
	}
	healthy()
	waitReady(t, p, http.StatusOK)
	if v, ok := metricSum(t, admin, "sluice_bus_store_write_failing"); !ok || v != 0 {
		t.Errorf("sluice_bus_store_write_failing = %v (present: %v) after recovering, want 0", v, ok)
	}
	t.Logf("%d requests answered 200 before the disk filled, %d refused, %d answered 200 after space was freed: %d log records in",
		okBefore, refused, okAfter, accepted)
	waitForOutput(t, filepath.Join(dir, "out"), [3]int{otlpwire.Logs: accepted})
	// A sequence a failed write used up is no record lost to retention.
	if lost, _ := metricSum(t, admin, "sluice_bus_records_lost_total"); lost != 0 {
		t.Errorf("sluice_bus_records_lost_total = %v after the disk was full, want 0: nothing acknowledged was removed", lost)
	}
}

// waitReady waits (30s at most) for /readyz to answer code and returns
// the answer's body.
func waitReady(t *testing.T, p *Process, code int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.AdminAddr() + "/readyz")
		if err != nil {
			t.Fatalf("readyz: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == code {
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz answers %d (%s), want %d", resp.StatusCode, bytes.TrimSpace(body), code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
