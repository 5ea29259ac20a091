package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/internal/testproc"
)

// countQuery counts the samples of the workload's series in Prometheus
// (target_info, one per resource and record, is not part of the workload).
const countQuery = `sum(count_over_time({__name__!="target_info",job=~"shop/.+"}[1h]))`

// drainStage writes a backlog of o.backlog points to the raw topic of
// prefix (through a `sluice ingest`, unmeasured), then starts Prometheus,
// `sluice worker` and `sluice sink` and waits until Prometheus holds every
// sample the rules keep. The worker and the sink are measured from their
// start to that moment.
func drainStage(ctx context.Context, o options, prefix string, brokerPid int) ([]result, []string, error) {
	const perReq = 1000
	requests := (o.backlog + perReq - 1) / perReq
	l, err := newLoad(o, perReq, requests)
	if err != nil {
		return nil, nil, err
	}
	// One connection per request template, or a divisor of them: every
	// series reaches its partition in time order (see send).
	conns := 1
	for c := range min(o.connections, l.RequestsPerStep()) + 1 {
		if c > 0 && l.RequestsPerStep()%c == 0 {
			conns = c
		}
	}
	points := requests * perReq
	expected := points - l.Excluded(requests)

	ing, target, _, err := startIngest(o, prefix+"-fill", prefix)
	if err != nil {
		return nil, nil, err
	}
	s, err := send(ctx, target, l, requests, conns, time.Time{}, true)
	ing.stop()
	if err != nil {
		return nil, nil, fmt.Errorf("writing the backlog: %w", err)
	}
	fmt.Fprintf(os.Stderr, "e2eload: %s: backlog of %d points written in %v over %d connections; %d samples expected in Prometheus\n",
		prefix, s.points, s.wall.Round(time.Millisecond), conns, expected)

	prom, promAddr, err := startPrometheus(o)
	if err != nil {
		return nil, nil, err
	}
	defer prom.stop()

	cfgs, err := roleConfigs(o, prefix, promAddr, "worker", "sink")
	if err != nil {
		return nil, nil, err
	}
	admins := map[string]string{"worker": cfgs["worker"].admin, "sink": cfgs["sink"].admin}
	b0, _ := cpuSeconds(brokerPid)
	p0, _ := cpuSeconds(prom.pid())
	start := time.Now()
	worker, err := startProc("sluice worker", filepath.Join(o.work, prefix+"-worker.log"), o.sluice, "worker", "-c", cfgs["worker"].path)
	if err != nil {
		return nil, nil, err
	}
	defer worker.stop()
	sink, err := startProc("sluice sink", filepath.Join(o.work, prefix+"-sink.log"), o.sluice, "sink", "-c", cfgs["sink"].path)
	if err != nil {
		return nil, nil, err
	}
	defer sink.stop()
	if o.profile > 0 {
		for role, admin := range admins {
			go profile(admin, filepath.Join(o.work, role), o.profile)
		}
	}

	metric := func(role, name string) float64 {
		v, _, _ := benchutil.MetricSum(admins[role], name)
		return v
	}
	var drained time.Duration // until the worker stage took in every point
	var count, head, lastHead float64
	stalled := false
	lastMove := time.Now()
	lastLog := time.Now()
	var failure error
	for {
		if err := ctx.Err(); err != nil {
			failure = fmt.Errorf("Prometheus has %.0f of %d samples: %w", count, expected, err)
			break
		}
		for _, p := range []*proc{worker, sink, prom} {
			if p.exited() {
				return nil, nil, fmt.Errorf("%s exited\n%s", p.name, p.tail())
			}
		}
		time.Sleep(time.Second)
		// The worker's metrics are read each second only until it took in
		// the backlog: a scrape costs the process a little (and, with its
		// heap near the soft limit, a collection), which a measuring
		// harness should not add while it only waits for the last merged
		// intervals (Prometheus scrapes every 15 s or so).
		in := float64(points)
		if drained == 0 {
			// Decoded, not committed: with local_merge the worker
			// commits at checkpoints, seconds after it read the points.
			in = metric("worker", "sluice_worker_items_in_total")
			if in >= float64(points) {
				drained = time.Since(start)
			}
		}
		if o.stall > 0 && !stalled && in >= float64(points)/3 {
			stalled = true
			if err := worker.stall(o.stall); err != nil {
				return nil, nil, err
			}
			fmt.Fprintf(os.Stderr, "e2eload: the worker's process stopped for %v at %.0f points in\n", o.stall, in)
		}
		head, _, _ = benchutil.MetricSum(promAddr, "prometheus_tsdb_head_samples_appended_total")
		if head != lastHead {
			lastHead, lastMove = head, time.Now()
		}
		if head >= float64(expected) {
			if count, err = promCount(promAddr); err != nil {
				return nil, nil, err
			}
			if count >= float64(expected) {
				break
			}
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			fmt.Fprintf(os.Stderr, "e2eload: %v: worker in %.0f, merged in the worker %.0f, to aggregators %.0f, merged out %.0f (late %.0f, out of order %.0f); sink samples %.0f; Prometheus appended %.0f; RSS worker %d MB, sink %d MB\n",
				time.Since(start).Round(time.Second), in, metric("worker", "sluice_worker_points_merged_total"), metric("worker", "sluice_worker_points_aggregated_total"),
				metric("worker", "sluice_aggregator_points_out_total")+metric("worker", "sluice_worker_merged_points_out_total"),
				metric("worker", "sluice_aggregate_points_late_total"), metric("worker", "sluice_aggregate_points_out_of_order_total"),
				metric("sink", "sluice_sink_samples_sent_total"), head, testproc.StatusBytes(worker.pid(), "VmRSS")>>20, testproc.StatusBytes(sink.pid(), "VmRSS")>>20)
		}
		// The last intervals close two graces after the last point (one
		// to find the partition idle, one for the watermark to pass them).
		if drained > 0 && time.Since(lastMove) > 90*time.Second {
			count, _ = promCount(promAddr)
			failure = fmt.Errorf("Prometheus has %.0f of %d samples and took none for 90 s", count, expected)
			break
		}
	}
	wall := time.Since(start)
	if drained == 0 {
		drained = wall // it never did
	}
	if failure != nil { // until the last sample Prometheus took
		wall = lastMove.Sub(start)
	}
	wc, err1 := cpuSeconds(worker.pid())
	sc, err2 := cpuSeconds(sink.pid())
	if err1 != nil || err2 != nil {
		return nil, nil, fmt.Errorf("CPU time: %v %v", err1, err2)
	}
	b1, _ := cpuSeconds(brokerPid)
	p1, _ := cpuSeconds(prom.pid())
	wr, sr := testproc.StatusBytes(worker.pid(), "VmHWM"), testproc.StatusBytes(sink.pid(), "VmHWM")
	late := metric("worker", "sluice_aggregate_points_late_total")
	ooo := metric("worker", "sluice_aggregate_points_out_of_order_total")
	// Merged in the worker (worker.local_merge) or by its aggregator.
	aggIn := metric("worker", "sluice_aggregator_points_in_total") + metric("worker", "sluice_worker_points_merged_total")
	aggOut := metric("worker", "sluice_aggregator_points_out_total") + metric("worker", "sluice_worker_merged_points_out_total")
	dead := metric("sink", "sluice_sink_dead_letters_total")
	dropped := metric("sink", "sluice_sink_dropped_points_total")
	stage := fmt.Sprintf("Kafka → rules → remote write → Prometheus, %s-point backlog", thousands(points))
	rows := []result{
		{stage: stage, process: "sluice worker (with its aggregator)", points: points, wall: wall, cpu: wc, rss: wr, target: "≤ 0.8, ≤ 256 MB"},
		{process: "sluice sink", points: points, wall: wall, cpu: sc, rss: sr, target: "≤ 0.5, ≤ 128 MB"},
		{process: "worker + sink", points: points, wall: wall, cpu: wc + sc, target: "≤ 1.3 (Collector 10.0, 152 MB)"},
		{process: "Prometheus", points: points, wall: wall, cpu: p1 - p0, rss: testproc.StatusBytes(prom.pid(), "VmHWM"), info: true},
	}
	if brokerPid > 0 {
		rows = append(rows, result{process: "Kafka broker", points: points, wall: wall, cpu: b1 - b0, info: true})
	}
	notes := []string{fmt.Sprintf("Stage 3: Prometheus holds %s samples of the workload, %s expected (the points the rules keep); the worker and its aggregator merged %.0f points, wrote %.0f merged points and counted %.0f late and %.0f out-of-order ones (%.0f still held in open intervals); the sink dead-lettered %.0f records and dropped %.0f points. The worker took in the whole backlog in %.1f s (%s points/s); wall time is from the start of the worker and sink to the last sample in Prometheus (the last merged intervals close after the rules' grace). CPU-seconds and peak RSS (VmHWM) are the processes' whole lives, start-up included, per million input points.",
		thousands(int(count)), thousands(expected), aggIn, aggOut, late, ooo, aggIn-aggOut-late-ooo, dead, dropped, drained.Seconds(), thousands(int(float64(points)/drained.Seconds())))}
	if late > 0 {
		notes = append(notes, "Late points are gauge points whose merge interval had closed when they were merged (the watermark had passed their interval's end plus the grace of bench/e2e/rules), and a gauge merge drops them. The watermark follows the raw partition (merged in the worker) or the slowest raw partition (the aggregators), and moves by the wall clock only for raw partitions the workers are not behind on (docs/aggregation.md): a late point here is a defect to report.")
	}
	if o.stall > 0 {
		notes = append(notes, fmt.Sprintf("The worker's process was stopped (SIGSTOP) for %v once it had taken in a third of the backlog.", o.stall))
	}
	return rows, notes, failure
}

// roleConfig is the config of one role's process.
type roleConfig struct{ path, admin, grpc string }

// roleConfigs writes a config for each role on prefix, with ports of its
// own and the remote-write sink into Prometheus at promAddr.
func roleConfigs(o options, prefix, promAddr string, roles ...string) (map[string]roleConfig, error) {
	out := map[string]roleConfig{}
	for _, role := range roles {
		gp, err := testproc.FreePort()
		if err != nil {
			return nil, err
		}
		ap, err := testproc.FreePort()
		if err != nil {
			return nil, err
		}
		c := roleConfig{filepath.Join(o.work, prefix+"-"+role+".yaml"), fmt.Sprintf("127.0.0.1:%d", ap), fmt.Sprintf("127.0.0.1:%d", gp)}
		if err := config(o, c.path, prefix, gp, ap, "", "http://"+promAddr+"/api/v1/write"); err != nil {
			return nil, err
		}
		out[role] = c
	}
	return out, nil
}

// startPrometheus starts Prometheus with the remote-write receiver, an
// empty data directory and no scraping, and waits until it is ready.
func startPrometheus(o options) (*proc, string, error) {
	dir := filepath.Join(o.work, "prometheus")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\nscrape_configs: []\n"), 0o644); err != nil {
		return nil, "", err
	}
	port, err := testproc.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProc("Prometheus", filepath.Join(o.work, "prometheus.log"), o.prometheus,
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr,
		"--web.enable-remote-write-receiver", "--log.level=warn")
	if err != nil {
		return nil, "", err
	}
	if err := waitHTTP(p, "http://"+addr+"/-/ready", time.Minute); err != nil {
		return nil, "", err
	}
	return p, addr, nil
}

// promCount runs countQuery.
func promCount(addr string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(countQuery))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, fmt.Errorf("Prometheus query: %w", err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("Prometheus query %s: %s", countQuery, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return 0, nil
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// profile writes a CPU profile of d from the admin endpoint's pprof to
// base-cpu.pb and then a heap profile to base-heap.pb; failures are
// reported, not fatal.
func profile(admin, base string, d time.Duration) {
	get := func(path, file string, timeout time.Duration) {
		c := http.Client{Timeout: timeout}
		resp, err := c.Get("http://" + admin + path)
		if err == nil {
			defer resp.Body.Close()
			var f *os.File
			if f, err = os.Create(file); err == nil {
				_, err = io.Copy(f, resp.Body)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2eload: profile %s: %v\n", file, err)
		}
	}
	for range 100 { // until the admin server listens
		if resp, err := http.Get("http://" + admin + "/metrics"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), base+"-cpu.pb", d+time.Minute)
	get("/debug/pprof/heap", base+"-heap.pb", time.Minute)
}
