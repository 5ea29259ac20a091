package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
)

// With worker.local_merge, a worker process killed (SIGKILL) in the middle
// of a backlog on the real Kafka broker, after its first checkpoint, loses
// no merged point: the next worker restores the state of the raw
// partitions from that checkpoint and reads what was not committed again.
// The processed topic ends with every output series' point of every second
// of the backlog, a point written twice (closed again after the restore)
// always with the same value, and nothing went through the aggregation
// topic.
func TestLocalMergeSurvivesAKill(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.Topic(t, "lmerge")
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rules := strings.Replace(workloadRules, "interval: 1m\n  grace: 10s", "interval: 1s\n  grace: 2s", 1)
	if err := os.WriteFile(filepath.Join(rulesDir, "workload.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(admin string) string {
		path := filepath.Join(dir, "sluice-"+admin[strings.LastIndexByte(admin, ':')+1:]+".yaml")
		// The coordinator gives the killed member 6 s.
		conf := strings.Replace(string(workerConfig(prefix, brokers[0], admin, rulesDir, "  local_merge: true", "warn")),
			"\nadmin:", "\n    session_timeout: 6s\nadmin:", 1)
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	admin := testproc.FreeAddr(t)
	cfg := config(admin)
	conf, bus := openBus(t, cfg)
	defer bus.Close()
	// 200 seconds of metrics-k8s (2 M points: the worker checkpoints
	// every million), ten minutes old.
	const requests = 200
	points, req := k8sBacklog(t, conf, bus, prefix, requests)
	series := outputSeries(req)

	p, logs := sluiceRole(t, "worker -c "+cfg, admin)
	deadline := time.Now().Add(2 * time.Minute)
	for metricSum(admin, `sluice_stage_items_total{stage="worker"}`) <= 0 { // the first checkpoint committed
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint\n%s\n%s", logs, metricLines(admin, "sluice_stage", "sluice_worker"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	read := metricSum(admin, `sluice_worker_items_in_total`)
	committed := metricSum(admin, `sluice_stage_items_total{stage="worker"}`)
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	if read >= float64(points) {
		t.Fatalf("the worker had read the whole backlog (%d points) at its first checkpoint", points)
	}
	admin2 := testproc.FreeAddr(t)
	sluiceRole(t, "worker -c "+config(admin2), admin2)

	// Read the processed topic until every (series, second) is there.
	c, err := bus.Consume(stream.ConsumerConfig{Group: prefix + "-reader", Topics: []string{stream.Topics{Prefix: prefix}.Processed(otlpwire.Metrics)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[string]float64{}
	written := 0
	for len(got) < series*requests {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d merged points in the processed topic\n%s", len(got), series*requests, metricLines(admin2, "sluice_aggregate", "sluice_stage", "sluice_worker"))
		}
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		recs, _ := c.Poll(pctx)
		cancel()
		for _, r := range recs {
			pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			written += gaugePoints(t, pb, got)
		}
	}
	perSeries := map[string]int{}
	for k := range got {
		perSeries[k[:strings.LastIndexByte(k, '@')]]++
	}
	for s, n := range perSeries {
		if n != requests {
			t.Errorf("series %s: %d points, want %d", s, n, requests)
			break
		}
	}
	if len(perSeries) != series {
		t.Errorf("%d output series, want %d", len(perSeries), series)
	}
	if n := metricSum(admin2, "sluice_worker_points_aggregated_total"); n != 0 {
		t.Errorf("%.0f points written to the aggregation topic, want none", n)
	}
	t.Logf("killed with %.0f of %d points read and %.0f committed; %d merged points written (%d distinct, %d series × %d s)",
		read, points, committed, written, len(got), series, requests)
}

// gaugePoints adds the gauge points of the OTLP request pb to got, keyed by
// resource, metric, attributes and time, failing on a point written again
// with another value; it returns how many it read.
func gaugePoints(t *testing.T, pb []byte, got map[string]float64) int {
	t.Helper()
	var req colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(pb, &req); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rm := range req.ResourceMetrics {
		res := fmt.Sprint(rm.GetResource().GetAttributes())
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.GetGauge().GetDataPoints() {
					attrs := make([]string, 0, len(p.Attributes))
					for _, kv := range p.Attributes {
						attrs = append(attrs, kv.Key+"="+fmt.Sprint(kv.Value))
					}
					slices.Sort(attrs)
					k := fmt.Sprintf("%s %s %s@%d", res, m.Name, strings.Join(attrs, ","), p.TimeUnixNano)
					v := p.GetAsDouble() + float64(p.GetAsInt())
					if old, ok := got[k]; ok && old != v {
						t.Fatalf("%s written as %v and as %v", k, old, v)
					}
					got[k] = v
					n++
				}
			}
		}
	}
	return n
}
