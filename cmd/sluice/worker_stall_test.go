package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/testproc"
)

// A worker process stopped (SIGSTOP) for longer than twice the grace in
// the middle of a backlog, on the real Kafka broker, loses no merged
// point: its raw partitions are behind, so the aggregator's watermark waits
// for them rather than follow the wall clock past their points. Every point
// is counted in and out: the worker takes in the backlog, the aggregator
// merges every point it was sent, none late, and writes one point per
// output series per second of the backlog. With worker.local_merge the
// worker merges them itself, and holds its raw partitions' watermarks
// across its own stop as well.
func TestWorkerStallLosesNoMergedPoint(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprint("local_merge=", local), func(t *testing.T) { workerStall(t, local) })
	}
}

func workerStall(t *testing.T, local bool) {
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.Topic(t, "wstall")
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const grace = 2 * time.Second
	rules := strings.Replace(workloadRules, "interval: 1m\n  grace: 10s", fmt.Sprintf("interval: 1s\n  grace: %v", grace), 1)
	if rules == workloadRules {
		t.Fatal("the workload's rules no longer merge by the minute with a grace of 10s")
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "workload.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := testproc.FreeAddr(t)
	cfg := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfg, workerConfig(prefix, brokers[0], admin, rulesDir, fmt.Sprint("  local_merge: ", local), "warn"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf, bus := openBus(t, cfg)
	defer bus.Close()
	// A backlog of 60 seconds of metrics-k8s, ten minutes old.
	const requests = 60
	points, req := k8sBacklog(t, conf, bus, prefix, requests)
	want := float64(requests * outputSeries(req))

	p, logs := sluiceRole(t, "worker -c "+cfg, admin)
	deadline := time.Now().Add(2 * time.Minute)
	in := func() float64 { return metricSum(admin, `sluice_worker_items_in_total`) }
	wait := func(what string, done func() bool) {
		t.Helper()
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out\n%s\n%s", what, logs, metricLines(admin, "sluice_aggregat", "sluice_stage", "sluice_worker"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("a third of the backlog in", func() bool { return in() >= float64(points)/3 })
	stalledAt := in()
	if err := p.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2*grace + 3*time.Second)
	if err := p.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Sent to the aggregators and merged there, or merged in the worker.
	sent, mergedIn, mergedOut := "sluice_worker_points_aggregated_total", "sluice_aggregator_points_in_total", "sluice_aggregator_points_out_total"
	if local {
		sent, mergedIn, mergedOut = "sluice_worker_points_merged_total", "sluice_worker_points_merged_total", "sluice_worker_merged_points_out_total"
	}
	wait("every point merged and written", func() bool {
		return in() >= float64(points) && metricSum(admin, mergedOut) >= want
	})
	merged := metricSum(admin, sent)
	aggIn := metricSum(admin, mergedIn)
	late := metricSum(admin, "sluice_aggregate_points_late_total")
	out := metricSum(admin, mergedOut)
	t.Logf("stopped for %v at %.0f of %d points in; to the aggregator %.0f, merged in %.0f, late %.0f, written %.0f of %.0f",
		2*grace+3*time.Second, stalledAt, points, merged, aggIn, late, out, want)
	if stalledAt >= float64(points) {
		t.Fatalf("the worker had read the whole backlog (%d points) when it was stopped", points)
	}
	if late != 0 || aggIn != merged || out != want {
		t.Errorf("%.0f points late, %.0f of %.0f merged, %.0f of %.0f merged points written", late, aggIn, merged, out, want)
	}
}
