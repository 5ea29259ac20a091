package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

// The rules of issue 10's workload: drop the points of one route of ten,
// set one attribute, delete debug_id (unique per series, so every point's
// series changes and every point kept goes through the aggregators: 100
// series of a pod collapse into 20). Draining a backlog, the raw partitions
// advance by bytes, not by time; the aggregators' watermark follows the
// slowest raw partition, so a short grace loses no point.
const workloadRules = `merge:
  interval: 1m
  grace: 10s
rules:
  - name: drop-health
    signal: metrics
    when: attributes["http.route"] == "/health"
    drop: true
  - name: set-cluster
    signal: metrics
    set:
      attributes["k8s.cluster.name"]: '"eu-1"'
  - name: drop-debug-id
    signal: metrics
    delete: ['attributes["debug_id"]']
`

// k8sRequests returns the metrics-k8s corpus (internal/otlptest) as a
// message whose point times setTimes moves to the second after base.
func k8sRequest(t testing.TB) (*colmetrics.ExportMetricsServiceRequest, func(base time.Time)) {
	t.Helper()
	i := slices.IndexFunc(otlptest.Corpora(), func(c otlptest.Corpus) bool { return c.Name == "metrics-k8s" })
	req := &colmetrics.ExportMetricsServiceRequest{}
	if err := proto.Unmarshal(otlptest.Corpora()[i].Body, req); err != nil {
		t.Fatal(err)
	}
	var offsets []uint64 // each point's time within its second
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.GetGauge().DataPoints {
					offsets = append(offsets, p.TimeUnixNano%uint64(time.Second))
				}
			}
		}
	}
	return req, func(base time.Time) {
		j := 0
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					for _, p := range m.GetGauge().DataPoints {
						p.TimeUnixNano = uint64(base.UnixNano()) + offsets[j]
						p.StartTimeUnixNano = 0
						j++
					}
				}
			}
		}
	}
}

// workerConfig is the config of a `sluice worker` on the real Kafka broker
// (topics under prefix, 6 partitions, the group <prefix>-worker) with the
// rules of rulesDir, its admin server at admin, workerKeys (YAML lines of
// the worker section, indented by two) and the log level.
func workerConfig(prefix, broker, admin, rulesDir, workerKeys, level string) []byte {
	return fmt.Appendf(nil, `
bus:
  kind: kafka
  topic_prefix: %s
  partitions: 6
  kafka:
    brokers: [%q]
admin:
  listen: %s
  pprof: true
worker:
  group: %s-worker
%s
rules:
  dir: %q
log:
  level: %s
`, prefix, broker, admin, prefix, workerKeys, rulesDir, level)
}

// writeBacklog writes requests copies of req through ing, the k-th with its
// points at base + k×step, and returns the points, raw records and bytes of
// OTLP written.
func writeBacklog(t *testing.T, ing *ingest.Ingester, req *colmetrics.ExportMetricsServiceRequest, setTimes func(time.Time),
	base time.Time, requests int, step time.Duration) (points, records, rawBytes int) {
	t.Helper()
	for k := range requests {
		setTimes(base.Add(time.Duration(k) * step))
		body, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ing.Export(context.Background(), otlpwire.Metrics, "", body)
		if err != nil {
			t.Fatal(err)
		}
		points += res.Items
		records += res.Records
		rawBytes += len(body)
	}
	return points, records, rawBytes
}

// k8sBacklog writes, through an ingester on bus (of conf), a backlog of
// requests seconds of metrics-k8s ten minutes old, a request a second, and
// returns its points and the request.
func k8sBacklog(t *testing.T, conf *config.Config, bus stream.Bus, prefix string, requests int) (int, *colmetrics.ExportMetricsServiceRequest) {
	t.Helper()
	ing, err := ingest.New(ingest.Config{Topics: stream.Topics{Prefix: prefix}, MaxRecordBytes: int(conf.Bus.MaxRecordBytes), MaxRequestBytes: 64 << 20,
		MaxInflightBytes: 1 << 30, ProduceTimeout: time.Minute}, bus)
	if err != nil {
		t.Fatal(err)
	}
	req, setTimes := k8sRequest(t)
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	points, _, _ := writeBacklog(t, ing, req, setTimes, base, requests, time.Second)
	return points, req
}

// outputSeries is how many series the workload rules leave of one request
// of req: the points not dropped, distinct once debug_id is gone.
func outputSeries(req *colmetrics.ExportMetricsServiceRequest) int {
	seen := map[string]bool{}
	for _, rm := range req.ResourceMetrics {
		res := fmt.Sprint(rm.Resource.Attributes)
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.GetGauge().DataPoints {
					var key []string
					drop := false
					for _, kv := range p.Attributes {
						switch {
						case kv.Key == "http.route" && kv.Value.GetStringValue() == "/health":
							drop = true
						case kv.Key != "debug_id":
							key = append(key, kv.Key+"="+fmt.Sprint(kv.Value))
						}
					}
					if !drop {
						seen[res+m.Name+strings.Join(key, ",")] = true
					}
				}
			}
		}
	}
	return len(seen)
}

// workerBacklogTest: requests × 10,000 points of the metrics-k8s corpus
// (each series one point a second, ending 15 minutes ago) wait on the raw
// topic of the real Kafka broker before `sluice worker` starts with the
// workload rules; it drains them through its aggregator. Every point is
// accounted for (dropped by the rule, or merged into an output point on
// the processed topic; none late, none lost) and the worker process' peak
// RSS stays under maxRSS.
func workerBacklogTest(t *testing.T, requests int, maxRSS int64, workerKeys string) {
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.Topic(t, "wmem")
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	os.WriteFile(filepath.Join(rulesDir, "workload.yaml"), []byte(workloadRules), 0o644)
	cfg := filepath.Join(dir, "sluice.yaml")
	writeConfig := func(admin string) {
		os.WriteFile(cfg, workerConfig(prefix, brokers[0], admin, rulesDir, workerKeys, cmp.Or(os.Getenv("SLUICE_MEMTEST_LOG"), "warn")), 0o644)
	}
	writeConfig(testproc.FreeAddr(t))
	conf, bus := openBus(t, cfg)
	defer bus.Close()
	ctx := context.Background()
	topics := stream.Topics{Prefix: prefix}
	ing, err := ingest.New(ingest.Config{Topics: topics, MaxRecordBytes: int(conf.Bus.MaxRecordBytes), MaxRequestBytes: 64 << 20,
		MaxInflightBytes: 1 << 30, ProduceTimeout: time.Minute}, bus)
	if err != nil {
		t.Fatal(err)
	}

	// The backlog, written as the ingester writes it.
	req, setTimes := k8sRequest(t)
	perRequest := outputSeries(req)
	const step, interval = time.Second, time.Minute
	base := time.Now().Add(-15*time.Minute - time.Duration(requests)*step).Truncate(interval)
	start := time.Now()
	points, records, rawBytes := writeBacklog(t, ing, req, setTimes, base, requests, step)
	t.Logf("backlog: %d points in %d raw records (%.0f MB of OTLP), written in %s",
		points, records, float64(rawBytes)/1e6, time.Since(start).Round(time.Millisecond))

	// The worker drains it, its RSS read every 100ms.
	admin := testproc.FreeAddr(t)
	writeConfig(admin)
	start = time.Now()
	p, logs := sluiceRole(t, "worker -c "+cfg, admin)
	profiles := os.Getenv("SLUICE_MEMTEST_PROFILES") // a directory: heap profiles every second, for diagnosis
	var peak int64
	deadline := time.Now().Add(time.Duration(points/20000+60) * time.Second)
	last := time.Now()
	for metricSum(admin, `sluice_stage_items_total{stage="worker"}`) < float64(points) {
		peak = max(peak, p.status("VmRSS"))
		if time.Now().After(deadline) {
			t.Fatalf("the worker took %v of %d points in %s\n%s", metricSum(admin, `sluice_stage_items_total{stage="worker"}`), points, time.Since(start), logs)
		}
		if profiles != "" && time.Since(last) > time.Second {
			last = time.Now()
			saveProfile(t, admin, filepath.Join(profiles, fmt.Sprintf("heap-%03d.pb.gz", int(time.Since(start).Seconds()))))
		}
		time.Sleep(100 * time.Millisecond)
	}
	drain := time.Since(start)
	cpu := metricSum(admin, "process_cpu_seconds_total")
	t.Logf("drained %d points in %s (%.0f points/s, start included; %.2f CPU-s, %.2f CPU-s per million); worker RSS peak so far %.1f MB (VmHWM %.1f MB)",
		points, drain.Round(time.Millisecond), float64(points)/drain.Seconds(), cpu, cpu/(float64(points)/1e6), float64(max(peak, p.status("VmRSS")))/(1<<20), float64(p.status("VmHWM"))/(1<<20))

	// A last request, now: its points move the aggregators' watermark past
	// the grace of every interval of the backlog, which closes them (raw
	// partitions that send an aggregation partition nothing stop holding
	// its watermark after the grace).
	setTimes(time.Now().Add(-time.Minute))
	body, _ := proto.Marshal(req)
	last1, err := ing.Export(ctx, otlpwire.Metrics, "", body)
	if err != nil {
		t.Fatal(err)
	}
	total := float64(points + last1.Items)
	intervals := (time.Duration(requests-1)*step)/interval + 1
	want := float64(int(intervals) * perRequest)
	for metricSum(admin, `sluice_stage_items_total{stage="worker"}`) < total ||
		metricSum(admin, "sluice_aggregator_points_in_total") < metricSum(admin, "sluice_worker_points_aggregated_total") ||
		metricSum(admin, "sluice_aggregator_points_out_total") < want {
		peak = max(peak, p.status("VmRSS"))
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator wrote %v of %v points\n%s\n%s", metricSum(admin, "sluice_aggregator_points_out_total"), want, logs, metricLines(admin, "sluice_aggregat", "sluice_stage", "sluice_worker"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	hwm := p.status("VmHWM")
	peak = max(peak, p.status("VmRSS"))

	// What came out on the processed topic.
	kb, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	c, err := kb.Consume(stream.ConsumerConfig{Group: prefix + "-reader", Topics: []string{topics.Processed(otlpwire.Metrics)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got int64
	for got < int64(want) && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		recs, _ := c.Poll(pctx)
		cancel()
		for _, r := range recs {
			n, _ := strconv.ParseInt(string(r.Header(stream.HeaderItems)), 10, 64)
			got += n
		}
	}
	// Nothing more than that.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	for recs, err := c.Poll(pctx); err == nil; recs, err = c.Poll(pctx) {
		for _, r := range recs {
			n, _ := strconv.ParseInt(string(r.Header(stream.HeaderItems)), 10, 64)
			got += n
		}
	}
	cancel()

	in := metricSum(admin, "sluice_worker_items_in_total")
	dropped := metricSum(admin, "sluice_rule_dropped_total")
	merged := metricSum(admin, "sluice_worker_points_aggregated_total")
	direct := metricSum(admin, "sluice_worker_items_out_total")
	aggIn := metricSum(admin, "sluice_aggregator_points_in_total")
	late := metricSum(admin, "sluice_aggregate_points_late_total")
	ooo := metricSum(admin, "sluice_aggregate_points_out_of_order_total")
	t.Logf("worker RSS peak %.1f MB (VmHWM %.1f MB), the aggregators' last intervals written", float64(peak)/(1<<20), float64(hwm)/(1<<20))
	t.Logf("in %v (of which %d the last request), dropped %v, to the aggregators %v, written as they were %v; aggregators: in %v, late %v, out of order %v; processed topic: %d merged points, want %v",
		in, last1.Items, dropped, merged, direct, aggIn, late, ooo, got, want)
	if got != int64(want) {
		t.Errorf("the processed topic has %d points, want %v (%d intervals × %d output series)", got, want, intervals, perRequest)
	}
	if in != dropped+merged+direct || aggIn != merged || late != 0 || ooo != 0 {
		t.Errorf("points unaccounted for: in %v != dropped %v + merged %v + direct %v, or aggregator in %v != merged, or late %v, out of order %v",
			in, dropped, merged, direct, aggIn, late, ooo)
	}
	if hwm > maxRSS || peak > maxRSS {
		t.Errorf("worker peak RSS %d MB (VmHWM %d MB), want < %d MB", peak>>20, hwm>>20, maxRSS>>20)
	}
}

// saveProfile writes the admin server's heap profile to path.
func saveProfile(t *testing.T, admin, path string) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/heap")
	if err != nil {
		t.Log(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	os.WriteFile(path, b, 0o644)
}

// A 3 M-point backlog drained by `sluice worker` with its default bounds
// (worker.max_poll_bytes, max_batch_items; memory_limit auto) stays under 256
// MiB of RSS, about 25 s on 2 cores. For measuring: SLUICE_MEMTEST_WORKER
// adds worker keys (YAML lines indented by two), SLUICE_MEMTEST_REQUESTS
// sets the backlog in requests of 10,000 points, SLUICE_MEMTEST_PROFILES
// names a directory for heap profiles every second, SLUICE_MEMTEST_LOG the
// worker's log level.
func TestWorkerDrainsBacklogInBoundedMemory(t *testing.T) {
	n := 300
	if s := os.Getenv("SLUICE_MEMTEST_REQUESTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	workerBacklogTest(t, n, 256<<20, os.Getenv("SLUICE_MEMTEST_WORKER"))
}

// metricLines are the lines of the admin server's /metrics that start with
// one of prefixes.
func metricLines(admin string, prefixes ...string) string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out strings.Builder
	for line := range strings.Lines(string(body)) {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out.WriteString(line)
				break
			}
		}
	}
	return out.String()
}
