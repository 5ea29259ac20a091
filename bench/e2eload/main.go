// Command e2eload measures sluice end to end on the workload of issue 10
// (internal/otlptest.K8sLoad: 100 pods × 100 gauge series with Kubernetes
// resource attributes and a debug_id unique per series), every role a
// process of its own on a real Kafka broker, and prints a markdown table:
//
//  1. OTLP/gRPC → Kafka, one data point per request over 16 connections:
//     `sluice ingest`'s CPU-seconds per million points (and the broker's);
//  2. the same with 1,000 points per request (an agent's batch);
//  3. a backlog of 3 M points in the raw topic drained by `sluice worker`
//     (rules of bench/e2e/rules: drop one route of ten, set an attribute,
//     delete debug_id, so every kept point goes through the aggregator)
//     and `sluice sink` (prometheus_remote_write) into a real Prometheus:
//     each process' CPU-seconds per million input points and peak RSS, and
//     the samples Prometheus holds against the exact number expected.
//
// CPU times and peak RSS come from /proc/<pid>/stat and VmHWM; they cover a
// process from its start to the end of its stage. bench/e2e.sh starts the
// broker and runs this command (`make bench-e2e`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/testproc"
)

type options struct {
	sluice, prometheus, brokers, brokerPidFile, work, rules string
	partitions                                              int
	connections                                             int
	points1, points2, backlog                               int
	step                                                    time.Duration
	compression                                             string
	kafkaYAML, workerYAML, sinkYAML                         string
	localMerge                                              bool
	stages                                                  string
	timeout, maxWall                                        time.Duration
	profile, stall                                          time.Duration
	report, steps, target, capacityRules                    string
	stepTime                                                time.Duration
	coresPerReplica                                         float64
}

func main() {
	var o options
	flag.StringVar(&o.sluice, "sluice", "bin/sluice", "the sluice binary")
	flag.StringVar(&o.prometheus, "prometheus", "prometheus", "the Prometheus binary")
	flag.StringVar(&o.brokers, "brokers", "127.0.0.1:19292", "the Kafka broker")
	flag.StringVar(&o.brokerPidFile, "broker-pid-file", "", "file holding the broker's pid (for its CPU time); empty skips it")
	flag.StringVar(&o.work, "work", ".cache/bench-e2e", "directory for configs, logs and Prometheus' data")
	flag.StringVar(&o.rules, "rules", "bench/e2e/rules", "rules of the worker (stage 3)")
	flag.StringVar(&o.capacityRules, "capacity-rules", "bench/e2e/rules-unmerged", "rules of the worker (stage 4)")
	flag.IntVar(&o.partitions, "partitions", 6, "partitions of every topic")
	flag.IntVar(&o.connections, "connections", 16, "OTLP/gRPC connections of stages 1 and 2, one request in flight each")
	flag.IntVar(&o.points1, "points1", 1_000_000, "data points of stage 1 (one per request), at most")
	flag.DurationVar(&o.maxWall, "max-wall", time.Minute, "stages 1 and 2 send for at most this long")
	flag.IntVar(&o.points2, "points2", 3_000_000, "data points of stage 2 (1,000 per request)")
	flag.IntVar(&o.backlog, "backlog", 3_000_000, "data points of the backlog of stage 3")
	flag.DurationVar(&o.step, "step", time.Second, "time between two points of a series; must equal the merge interval of the rules")
	flag.StringVar(&o.compression, "compression", "", "bus.kafka.compression (empty: sluice's default)")
	flag.StringVar(&o.kafkaYAML, "kafka-yaml", "", "extra keys of the bus.kafka section, as YAML lines (e.g. 'zstd_raw_literals: true')")
	flag.StringVar(&o.workerYAML, "worker-yaml", "", "extra keys of the worker section, as YAML lines (e.g. 'aggregator: true')")
	flag.BoolVar(&o.localMerge, "local-merge", true, "worker.local_merge: the worker merges the points of stage 3 in their raw partition (the ingesters partition them by resource and the rules keep resources); false: through the aggregation topic and the aggregators")
	flag.StringVar(&o.sinkYAML, "sink-yaml", "", "extra keys of the prometheus_remote_write sink entry, as YAML lines")
	flag.StringVar(&o.stages, "stages", "1,2,3,4", "stages to run (4: the capacity report of the whole pipeline under load)")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	flag.StringVar(&o.report, "report", "bench/results/e2e", "stage 4: directory of the capacity report")
	flag.StringVar(&o.steps, "steps", "4,16", "stage 4: connections of each step of the closed-loop ramp")
	flag.DurationVar(&o.stepTime, "step-time", 20*time.Second, "stage 4: length of each step")
	flag.StringVar(&o.target, "target", "5M-datapoints/s", "stage 4: the rate the report sizes the deployment for")
	flag.Float64Var(&o.coresPerReplica, "cores-per-replica", 2, "stage 4: cores of each replica, for -target")
	flag.DurationVar(&o.stall, "stall", 0, "stage 3: stop the worker's process (SIGSTOP) for this long, once, when it has taken in a third of the backlog (a stall longer than the rules' grace must make no point late)")
	flag.DurationVar(&o.profile, "profile", 0, "CPU-profile for this long the ingester of stages 1 and 2 from its first measured request (into -work, ingest<stage>-cpu.pb) the worker and the sink of stage 3 from their start (<role>-cpu.pb), and the three processes of stage 4 from their start (capacity-<role>-cpu.pb); each with a heap profile taken at its end (-heap.pb)")
	flag.Parse()
	if o.localMerge {
		o.workerYAML = "local_merge: true\n" + o.workerYAML
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel2 := context.WithTimeout(ctx, o.timeout)
	err := run(ctx, o)
	cancel2()
	cancel()
	stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2eload:", err)
		os.Exit(1)
	}
}

// result is one row of the table.
type result struct {
	stage, process string
	points         int
	wall           time.Duration
	cpu            float64 // CPU-seconds over the stage
	rss            int64   // peak RSS, 0 if not measured
	target         string
	info           bool // a process measured for information (broker, Prometheus)
}

func run(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	var err error
	if o.work, err = filepath.Abs(o.work); err != nil {
		return err
	}
	if o.rules, err = filepath.Abs(o.rules); err != nil {
		return err
	}
	if o.capacityRules, err = filepath.Abs(o.capacityRules); err != nil {
		return err
	}
	brokerPid := 0
	if o.brokerPidFile != "" {
		b, err := os.ReadFile(o.brokerPidFile)
		if err != nil {
			return err
		}
		if brokerPid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return fmt.Errorf("%s: %w", o.brokerPidFile, err)
		}
	}
	stages := strings.Split(o.stages, ",")
	id := strconv.FormatInt(time.Now().Unix(), 36)
	var rows []result
	var notes []string
	if slices.Contains(stages, "1") {
		r, err := ingestStage(ctx, o, "e2e"+id+"a", "ingest1", 1, o.points1, o.connections, brokerPid)
		if err != nil {
			return fmt.Errorf("stage 1: %w", err)
		}
		r[0].stage = fmt.Sprintf("OTLP/gRPC → Kafka, 1 point per request, %d connections", o.connections)
		r[0].target = "≤ 0.5 (Collector 3.9–4.3)"
		rows = append(rows, r...)
	}
	if slices.Contains(stages, "2") {
		r, err := ingestStage(ctx, o, "e2e"+id+"b", "ingest2", 1000, o.points2, o.connections, brokerPid)
		if err != nil {
			return fmt.Errorf("stage 2: %w", err)
		}
		r[0].stage = fmt.Sprintf("OTLP/gRPC → Kafka, 1,000 points per request, %d connections", o.connections)
		r[0].target = "≤ 0.4 (Collector 2.9–3.4)"
		rows = append(rows, r...)
	}
	if slices.Contains(stages, "3") {
		r, n, err := drainStage(ctx, o, "e2e"+id+"c", brokerPid)
		notes = append(notes, n...)
		rows = append(rows, r...)
		if err != nil {
			printTable(o, rows, notes)
			return fmt.Errorf("stage 3: %w", err)
		}
	}
	printTable(o, rows, notes)
	if slices.Contains(stages, "4") {
		if err := capacityStage(ctx, o, "e2e"+id+"d"); err != nil {
			return fmt.Errorf("stage 4: %w", err)
		}
	}
	return nil
}

// config writes a sluice config of the bus under prefix with the given
// admin and gRPC ports; remoteWrite empty leaves the sink out.
func config(o options, path, prefix string, grpcPort, adminPort int, partitionKey, remoteWrite string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bus:\n  kind: kafka\n  topic_prefix: %s\n  partitions: %d\n  kafka:\n    brokers: [%q]\n", prefix, o.partitions, o.brokers)
	if o.compression != "" {
		fmt.Fprintf(&b, "    compression: %s\n", o.compression)
	}
	if o.kafkaYAML != "" {
		b.WriteString(indent(o.kafkaYAML, "    "))
	}
	fmt.Fprintf(&b, "ingest:\n  grpc_listen: 127.0.0.1:%d\n  http_listen: \"\"\n", grpcPort)
	if partitionKey != "" {
		fmt.Fprintf(&b, "  partition_key:\n    metrics: %s\n", partitionKey)
	}
	// pprof on: -profile fetches CPU and heap profiles from the admin port.
	fmt.Fprintf(&b, "admin:\n  listen: 127.0.0.1:%d\n  pprof: true\nrules:\n  dir: %q\n", adminPort, o.rules)
	if o.workerYAML != "" {
		fmt.Fprintf(&b, "worker:\n%s", indent(o.workerYAML, "  "))
	}
	if remoteWrite != "" {
		fmt.Fprintf(&b, "sinks:\n  - name: prom\n    type: prometheus_remote_write\n    signals: [metrics]\n    url: %s\n", remoteWrite)
		if o.sinkYAML != "" {
			b.WriteString(indent(o.sinkYAML, "    "))
		}
	}
	b.WriteString("log:\n  level: warn\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func indent(s, by string) string {
	var b strings.Builder
	for line := range strings.Lines(strings.TrimRight(s, "\n") + "\n") {
		b.WriteString(by + line)
	}
	return b.String()
}

// startIngest starts `sluice ingest` on prefix and waits until it is ready.
func startIngest(o options, name, prefix string) (p *proc, grpcAddr, admin string, err error) {
	gp, err := testproc.FreePort()
	if err != nil {
		return nil, "", "", err
	}
	ap, err := testproc.FreePort()
	if err != nil {
		return nil, "", "", err
	}
	cfg := filepath.Join(o.work, name+".yaml")
	if err := config(o, cfg, prefix, gp, ap, "", ""); err != nil {
		return nil, "", "", err
	}
	p, err = startProc("sluice ingest", filepath.Join(o.work, name+".log"), o.sluice, "ingest", "-c", cfg)
	if err != nil {
		return nil, "", "", err
	}
	admin = fmt.Sprintf("127.0.0.1:%d", ap)
	if err := waitHTTP(p, "http://"+admin+"/readyz", time.Minute); err != nil {
		return nil, "", "", err
	}
	return p, fmt.Sprintf("127.0.0.1:%d", gp), admin, nil
}

// ingestStage sends points points in requests of perReq over conns
// connections to a `sluice ingest` of its own and measures it and the
// broker from the first request to the last answer. With o.profile, the
// ingester is profiled from the first measured request into
// <profileName>-cpu.pb (and -heap.pb), and kept running until the profile
// is written.
func ingestStage(ctx context.Context, o options, prefix, profileName string, perReq, points, conns, brokerPid int) ([]result, error) {
	requests := (points + perReq - 1) / perReq
	l, err := newLoad(o, perReq, requests)
	if err != nil {
		return nil, err
	}
	p, target, admin, err := startIngest(o, prefix, prefix)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	// A warm-up outside the measurement: connections, topic metadata.
	if _, err := send(ctx, target, l, conns, conns, time.Time{}, false); err != nil {
		return nil, err
	}
	bus0 := produceStats(admin)
	cpu0, err := cpuSeconds(p.pid())
	if err != nil {
		return nil, err
	}
	b0, _ := cpuSeconds(brokerPid)
	self0, _ := cpuSeconds(os.Getpid())
	fmt.Fprintf(os.Stderr, "e2eload: %s: %d requests of %d points over %d connections\n", prefix, requests, perReq, conns)
	if o.profile > 0 {
		profiled := make(chan struct{})
		go func() { profile(admin, filepath.Join(o.work, profileName), o.profile); close(profiled) }()
		defer func() { <-profiled }() // before p.stop
	}
	s, err := send(ctx, target, l, requests, conns, time.Now().Add(o.maxWall), false)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.tail())
	}
	cpu1, err := cpuSeconds(p.pid())
	if err != nil {
		return nil, err
	}
	b1, _ := cpuSeconds(brokerPid)
	self1, _ := cpuSeconds(os.Getpid())
	fmt.Fprintf(os.Stderr, "e2eload: %s: %d points in %v (%d retried requests); load generator %.2f CPU-s\n",
		prefix, s.points, s.wall.Round(time.Millisecond), s.retries, self1-self0)
	if bus := produceStats(admin).sub(bus0); bus.records > 0 && s.points > 0 {
		fmt.Fprintf(os.Stderr, "e2eload: %s: %.0f records of %.0f points (group commit); %.1f bytes per point produced (Kafka framing included), %.1f once compressed\n",
			prefix, bus.records, float64(s.points)/bus.records, bus.bytes/float64(s.points), bus.compressed/float64(s.points))
	}
	rows := []result{{process: "sluice ingest", points: s.points, wall: s.wall, cpu: cpu1 - cpu0, rss: testproc.StatusBytes(p.pid(), "VmHWM")}}
	if brokerPid > 0 {
		rows = append(rows, result{process: "Kafka broker", points: s.points, wall: s.wall, cpu: b1 - b0, info: true})
	}
	return rows, nil
}

// busStats are the ingester's counters of what it wrote to the bus.
type busStats struct{ records, bytes, compressed float64 }

func produceStats(admin string) busStats {
	m := func(name string) float64 {
		v, _, _ := benchutil.MetricSum(admin, name)
		return v
	}
	return busStats{m("sluice_ingest_records_total"), m("sluice_kafka_produce_bytes_total"), m("sluice_kafka_produce_compressed_bytes_total")}
}

func (a busStats) sub(b busStats) busStats {
	return busStats{a.records - b.records, a.bytes - b.bytes, a.compressed - b.compressed}
}

// newLoad is the workload for requests of perReq points, its points ending
// a minute before now.
func newLoad(o options, perReq, requests int) (*otlptest.K8sLoad, error) {
	probe, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{PerRequest: perReq, Step: o.step, Partitions: int32(o.partitions)})
	if err != nil {
		return nil, err
	}
	steps := (requests + probe.RequestsPerStep() - 1) / probe.RequestsPerStep()
	start := time.Now().Add(-time.Minute - time.Duration(steps)*o.step)
	return otlptest.NewK8sLoad(otlptest.K8sLoadConfig{PerRequest: perReq, Step: o.step, Partitions: int32(o.partitions), Start: start})
}

func printTable(o options, rows []result, notes []string) {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "\n`make bench-e2e`, %s, %s, %d cores, %d partitions, Kafka compression %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		host, runtime.NumCPU(), o.partitions, or(o.compression, "default")+kafkaExtra(o.kafkaYAML))
	b.WriteString("| stage | process | data points | wall | points/s | CPU-s per million points | points/s per core | peak RSS | target (issue 10) |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		name := r.process
		if r.info {
			name += " (for information)"
		}
		rss := ""
		if r.rss > 0 {
			rss = fmt.Sprintf("%.0f MB", float64(r.rss)/1e6)
		}
		perCore := ""
		if r.cpu > 0 {
			perCore = thousands(int(float64(r.points) / r.cpu))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f s | %s | %.2f | %s | %s | %s |\n", r.stage, name, thousands(r.points), r.wall.Seconds(),
			thousands(int(float64(r.points)/r.wall.Seconds())), r.cpu/(float64(r.points)/1e6), perCore, rss, r.target)
	}
	for _, n := range notes {
		b.WriteString("\n" + n + "\n")
	}
	fmt.Print(b.String())
	os.WriteFile(filepath.Join(o.work, "table.md"), []byte(b.String()), 0o644)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// kafkaExtra names the extra bus.kafka keys of a run in its table's title.
func kafkaExtra(yaml string) string {
	if yaml = strings.TrimSpace(yaml); yaml == "" {
		return ""
	}
	return " (" + strings.ReplaceAll(yaml, "\n", ", ") + ")"
}
