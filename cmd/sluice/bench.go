package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/internal/loadgen"
)

// newBenchCmd is `sluice bench`: a realistic OTLP load against running
// ingesters, and a capacity report from what it measured and from the
// sluice processes' own metrics.
func newBenchCmd() *cobra.Command {
	var (
		t                        loadgen.Target
		profile                  string
		pods, series, perRequest int
		churn                    float64
		churnEvery               int
		bodyMedian               int
		bodySigma                float64
		spansPerTrace            int
		seed                     uint64
		connections              int
		steps                    []int
		rate                     float64
		duration                 time.Duration
		requests                 int
		stages                   []string
		target                   string
		cores, utilization       float64
		reportDir                string
		settle                   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Send a realistic OTLP load to running ingesters and write a capacity report",
		Long: `bench sends OTLP requests shaped like a Kubernetes cluster's telemetry to a
sluice ingester (or any OTLP endpoint) over gRPC or HTTP, and measures the
acknowledged throughput and the latency of every request (HDR histogram).
Requests are made from --seed: the same flags send the same data.

Profiles: metrics (--pods x --series gauge series with Kubernetes resource
attributes and a label unique per series, --churn of the pods replaced every
--churn-every steps), logs (bodies of a log-normal size around --log-body
bytes) and traces (traces of --spans-per-trace spans).

A closed loop (--connections, or a ramp of --steps) sends each connection's
next request when the last is answered: where throughput stops rising is
where the ingest tier saturates. --rate sends an open loop at that many
items/s, latency counted from when each request was due.

With --stage ROLE=ADMIN_URL for each sluice process (ingest, worker, sink, or
run for the all-in-one), bench reads their CPU time and item counters before
and after (waiting up to --settle for the workers and sinks to catch up), and
the report gives each stage's CPU-seconds per million items, items/s per
core, bytes on the bus per item, the end-to-end delay to the sinks, and with
--target the replicas each stage needs for that rate. --report DIR writes
report.md with its plots (SVG).`,
		Example: `  sluice bench --endpoint 127.0.0.1:4317 --duration 30s --connections 16
  sluice bench --steps 1,2,4,8,16 --duration 20s --per-request 1000 \
    --stage ingest=http://10.0.0.5:9464 --stage worker=http://10.0.0.6:9464 --stage sink=http://10.0.0.7:9464 \
    --target 5M-datapoints/s --cores-per-replica 2 --report bench/results/$(date +%F)
  sluice bench --profile logs --protocol http --endpoint 127.0.0.1:4318 --rate 50000 --duration 1m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p loadgen.Profile
			var err error
			switch profile {
			case "metrics":
				p, err = loadgen.NewK8sMetrics(&loadgen.K8sMetrics{Pods: pods, Series: series, PerRequest: perRequest, Churn: churn, ChurnEvery: churnEvery, Seed: seed})
			case "logs":
				p, err = loadgen.NewLogs(loadgen.LogsConfig{Pods: pods, PerRequest: perRequest, BodyMedian: bodyMedian, BodySigma: bodySigma, Seed: seed})
			case "traces":
				p, err = loadgen.NewTraces(loadgen.TracesConfig{Pods: pods, PerRequest: perRequest, SpansPerTrace: spansPerTrace, Seed: seed})
			default:
				err = fmt.Errorf("--profile %q: want metrics, logs or traces", profile)
			}
			if err != nil {
				return err
			}
			o := loadgen.BenchOptions{Options: loadgen.Options{Profile: p, Target: t, Connections: connections, Rate: rate, Duration: duration, Requests: requests},
				Steps: steps, Settle: settle, CoresPerReplica: cores, Utilization: utilization}
			if target != "" {
				if o.TargetRate, o.TargetUnit, err = loadgen.ParseTarget(target); err != nil {
					return err
				}
			}
			for _, s := range stages {
				role, url, ok := strings.Cut(s, "=")
				if !ok {
					return fmt.Errorf("--stage %q: want ROLE=ADMIN_URL, e.g. ingest=http://127.0.0.1:9464", s)
				}
				if !strings.Contains(url, "://") {
					url = "http://" + url
				}
				o.Stages = append(o.Stages, loadgen.Stage{Role: role, URL: url})
			}
			out := cmd.OutOrStdout()
			o.Log = func(format string, args ...any) { fmt.Fprintf(out, "bench: "+format+"\n", args...) }
			fmt.Fprintf(out, "bench: %s, OTLP/%s to %s\n", p, t.Protocol, t.Addr)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			rep, err := loadgen.Bench(ctx, o)
			if err != nil {
				return err
			}
			for _, s := range rep.Stages {
				fmt.Fprintf(out, "bench: %s (%s): %.0f items, %.2f CPU-s per million, %.0f items/s per core\n", s.Role, s.URL, s.Items, s.CPUPerMillion(), s.ItemsPerCore())
				if o.TargetRate > 0 {
					fmt.Fprintf(out, "bench: %s: %d replicas of %g cores for %s\n", s.Role, s.Replicas(o.TargetRate, o.CoresPerReplica, o.Utilization), o.CoresPerReplica, target)
				}
			}
			if rep.SettleError != "" {
				fmt.Fprintf(out, "bench: warning: %s\n", rep.SettleError)
			}
			if reportDir != "" {
				if err := rep.Write(reportDir); err != nil {
					return err
				}
				fmt.Fprintf(out, "bench: report written to %s\n", reportDir)
			}
			for _, s := range rep.Steps {
				if s.Failed > 0 {
					return fmt.Errorf("%d of %d requests failed at %d connections (first: %s)", s.Failed, s.Requests, s.Connections, s.Errors[0])
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&t.Addr, "endpoint", "127.0.0.1:4317", "OTLP endpoint (host:port) of the ingesters")
	f.StringVar(&t.Protocol, "protocol", "grpc", "grpc or http (OTLP/HTTP protobuf)")
	f.StringVar(&t.Token, "token", "", "bearer token sent with each request")
	f.StringVar(&t.Tenant, "tenant", "", "X-Scope-OrgID sent with each request")
	f.StringVar(&profile, "profile", "metrics", "metrics, logs or traces")
	f.IntVar(&pods, "pods", 100, "pods sending")
	f.IntVar(&series, "series", 100, "metrics: gauge series per pod")
	f.IntVar(&perRequest, "per-request", 1000, "items per request (1: an SDK or telemetrygen; thousands: an agent's batch)")
	f.Float64Var(&churn, "churn", 0, "metrics: fraction of the pods replaced every --churn-every steps (new series)")
	f.IntVar(&churnEvery, "churn-every", 60, "metrics: steps (one point per series each) between two replacements")
	f.IntVar(&bodyMedian, "log-body", 200, "logs: median body size in bytes")
	f.Float64Var(&bodySigma, "log-sigma", 1, "logs: spread of the log-normal body size")
	f.IntVar(&spansPerTrace, "spans-per-trace", 8, "traces: spans per trace")
	f.Uint64Var(&seed, "seed", 1, "seed of the data: the same seed and flags send the same requests")
	f.IntVar(&connections, "connections", 16, "connections, one request in flight each")
	f.IntSliceVar(&steps, "steps", nil, "a closed-loop ramp: connections of each step, e.g. 1,2,4,8,16 (default: one step of --connections)")
	f.Float64Var(&rate, "rate", 0, "open loop: items per second (0: closed loop)")
	f.DurationVar(&duration, "duration", 30*time.Second, "length of each step")
	f.IntVar(&requests, "requests", 0, "requests of each step at most (0: no limit but --duration)")
	f.StringArrayVar(&stages, "stage", nil, "ROLE=ADMIN_URL of a sluice process to measure (ingest, worker, sink, run); repeatable")
	f.StringVar(&target, "target", "", "size the deployment for this rate, e.g. 5M-datapoints/s")
	f.Float64Var(&cores, "cores-per-replica", 1, "cores of each replica, for --target")
	f.Float64Var(&utilization, "utilization", 0.7, "share of a replica's cores it may use, for --target")
	f.StringVar(&reportDir, "report", "", "write report.md and its plots into this directory")
	f.DurationVar(&settle, "settle", 2*time.Minute, "how long to wait for the workers and sinks to take in the load")
	return cmd
}
