package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
)

// TestMain lets the test binary stand in for the sluice binary, so that the
// kill test can run sluice as a process of its own and kill it.
func TestMain(m *testing.M) {
	if args := os.Getenv("SLUICE_TEST_MAIN"); args != "" {
		os.Args = append([]string{"sluice"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	kafkatest.Main(m)
}

// sender posts OTLP/protobuf requests to url, numbered from 1 (request n's
// body is body(n)), noting in acked the numbers of those answered with
// success.
type sender struct {
	url   string
	body  func(n int) []byte
	n     int
	acked map[int]bool
}

// send posts requests, one after another, for d.
func (s *sender) send(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for ctx.Err() == nil {
		s.n++
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body(s.n)))
		req.Header.Set("Content-Type", "application/x-protobuf")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			s.acked[s.n] = true
		}
	}
}

// sluice killed with SIGKILL while clients send and data flows to the file
// sink: after a restart on the same data directory, every item that got a
// success answer is in the output (duplicates allowed: at least once).
func TestKilledProcessLosesNothing(t *testing.T) {
	dir := t.TempDir()
	httpAddr, admin := testproc.FreeAddr(t), testproc.FreeAddr(t)
	cfg := filepath.Join(dir, "sluice.yaml")
	out := filepath.Join(dir, "out")
	os.WriteFile(cfg, fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 3
  ack_wait: 5s
ingest:
  grpc_listen: ""
  http_listen: %s
admin:
  listen: %s
sinks:
  - name: archive
    type: file
    signals: [logs]
    path: %q
log:
  level: warn
`, filepath.Join(dir, "data"), httpAddr, admin, out), 0o644)

	shape := otlptest.Shape{Resources: 2, Items: 10}
	acked := map[int]bool{}
	send := (&sender{url: "http://" + httpAddr + "/v1/logs", acked: acked, body: func(seed int) []byte {
		shape.Seed = seed
		return otlptest.Request(otlpwire.Logs, shape)
	}}).send

	p, _ := sluiceRole(t, "run -c "+cfg, admin)
	go func() {
		time.Sleep(700 * time.Millisecond)
		p.Process.Signal(syscall.SIGKILL)
	}()
	send(time.Second) // the kill comes while requests are being answered
	p.Wait()
	before := len(acked)

	sluiceRole(t, "run -c "+cfg, admin)
	send(300 * time.Millisecond)
	if len(acked) == before || before == 0 {
		t.Fatalf("acknowledged %d requests before the kill and %d after", before, len(acked)-before)
	}

	// Wait until every acknowledged request is in the output.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var content []byte
		files, _ := filepath.Glob(filepath.Join(out, "*", "logs*.jsonl")) // one directory per tenant
		for _, f := range files {
			b, _ := os.ReadFile(f)
			content = append(content, b...)
		}
		seen := map[string]bool{} // every "inst-<request>-<resource>" in the output
		for rest := content; ; {
			i := bytes.Index(rest, []byte(`"inst-`))
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			if j := bytes.IndexByte(rest, '"'); j > 0 {
				seen[string(rest[:j])] = true
			}
		}
		var missing []int
		for s := range acked {
			for r := range shape.Resources {
				if !seen[fmt.Sprintf("inst-%d-%d", s, r)] {
					missing = append(missing, s)
					break
				}
			}
		}
		if len(missing) == 0 {
			t.Logf("%d requests acknowledged (%d before the kill), all in the output", len(acked), before)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged requests missing from the output, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
